"""Orders: what a buyer paid for, and the numbered units it owns."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime

if TYPE_CHECKING:
    from storefront.models.catalog import Release
    from storefront.models.inventory import Unit


class OrderStatus(StrEnum):
    PAID = "paid"
    REFUNDING = "refunding"  # a refund is asked for and not yet confirmed by the gateway
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway refused for good; a person must look at it


def new_order_reference() -> str:
    """Return a short reference a buyer can read out on the phone (no 0/O or 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "SB-" + "".join(secrets.choice(alphabet) for _ in range(8))


class Order(Base):
    """A paid purchase of one or more numbered units of a release."""

    __tablename__ = "order"
    __table_args__ = (
        CheckConstraint("amount_total >= 0", name="amount_not_negative"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("status IN ('paid', 'refunding', 'refunded')", name="status_known"),
        Index("ix_order_buyer", "release_id", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True, default=new_order_reference)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    # One order per hold: a second fulfilment of the same payment fails on this constraint.
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    quantity: Mapped[int]
    amount_total: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PAID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The payment: one order per Checkout Session, so a second delivery of "paid" cannot make a second order.
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    shipping_name: Mapped[str] = mapped_column(String(300), default="")
    shipping_address: Mapped[dict] = mapped_column(JSON, default=dict)
    # Why the buyer did not get the numbers they held, when that happened (late payment after expiry).
    note: Mapped[str] = mapped_column(Text, default="")
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    release: Mapped[Release] = relationship()
    units: Mapped[list[Unit]] = relationship(back_populates="order", order_by="Unit.number")
    refunds: Mapped[list[Refund]] = relationship(back_populates="order", order_by="Refund.id")


class Refund(Base):
    """Money going back to a buyer; recorded first, then sent to the gateway (and retried) by the worker."""

    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.PENDING)
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    order: Mapped[Order] = relationship(back_populates="refunds")


class PaymentEvent(Base):
    """A gateway webhook event, recorded once in the same transaction as its effect."""

    __tablename__ = "payment_event"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's evt_... id
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
