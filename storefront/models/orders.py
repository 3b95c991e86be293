"""Orders: what a buyer paid for, and the numbered units it owns."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
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


class FulfilmentStatus(StrEnum):
    """Where the goods are, apart from the money (OrderStatus): a partly refunded order still ships its other units."""

    UNFULFILLED = "unfulfilled"
    PACKED = "packed"
    SHIPPED = "shipped"


class RefundStatus(StrEnum):
    """A refund is a leased state machine: pending -> sending -> succeeded, or back to pending, or failed."""

    PENDING = "pending"  # waiting for its next attempt (`next_attempt_at`)
    SENDING = "sending"  # one worker holds the lease (`lease_until`) and is asking the gateway
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway refused for good, or retries ran out: a person must look at it


def new_order_reference() -> str:
    """Return a short reference a buyer can read out on the phone (no 0/O or 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "SB-" + "".join(secrets.choice(alphabet) for _ in range(8))


class Order(Base):
    """A paid purchase of one or more numbered units of a release."""

    __tablename__ = "order"
    __table_args__ = (
        CheckConstraint("amount_total >= 0", name="amount_not_negative"),
        CheckConstraint("shipping_amount >= 0", name="shipping_not_negative"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("status IN ('paid', 'refunding', 'refunded')", name="status_known"),
        CheckConstraint("fulfilment_status IN ('unfulfilled', 'packed', 'shipped')", name="fulfilment_status_known"),
        Index("ix_order_buyer", "release_id", "buyer_key"),
        # The producer's orders list: newest first, within a release or across the shop.
        Index("ix_order_release_created", "release_id", "created_at"),
        Index("ix_order_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True, default=new_order_reference)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    # One order per hold: a second fulfilment of the same payment fails on this constraint.
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    # The buyer's canonical key (storefront.domain.buyers), by which the per-customer limit counts.
    buyer_key: Mapped[str] = mapped_column(String(320))
    quantity: Mapped[int]
    # The price of one unit when it was sold: a later price change does not rewrite what this buyer paid.
    unit_amount: Mapped[int]
    # What the order paid for shipping (part of amount_total): units × unit_amount + shipping_amount = amount_total.
    shipping_amount: Mapped[int] = mapped_column(default=0)
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
    # Fulfilment, kept apart from the money: packed, then shipped with a carrier and (mostly) a tracking number.
    fulfilment_status: Mapped[str] = mapped_column(String(16), default=FulfilmentStatus.UNFULFILLED)
    packed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    carrier: Mapped[str] = mapped_column(String(40), default="")
    tracking_number: Mapped[str] = mapped_column(String(100), default="")
    tracking_url: Mapped[str] = mapped_column(String(500), default="")

    release: Mapped[Release] = relationship()
    units: Mapped[list[Unit]] = relationship(back_populates="order", order_by="Unit.number")
    refunds: Mapped[list[Refund]] = relationship(back_populates="order", order_by="Refund.id")
    events: Mapped[list[OrderEvent]] = relationship(back_populates="order", order_by="OrderEvent.id")


class OrderEvent(Base):
    """One line of an order's timeline: paid, reassigned, packed, shipped, refund asked/sent/failed, a note."""

    __tablename__ = "order_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # paid, reassigned, packed, shipped, refund_requested, refunded, refund_failed, note, ...
    kind: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    # Who did it: a producer's address, or empty for the shop itself (webhook, worker).
    actor_email: Mapped[str] = mapped_column(String(320), default="")

    order: Mapped[Order] = relationship(back_populates="events")


class RefundLine(Base):
    """One numbered unit a refund pays back, and whether it goes back on sale once the gateway has paid it back.

    A unit is refunded at most once: the partial unique index admits one live (not voided) line per unit. A refund
    the gateway refuses for good voids its lines, so the unit can be refunded again later.
    """

    __tablename__ = "refund_line"
    __table_args__ = (
        UniqueConstraint("refund_id", "unit_id"),
        Index(
            "ix_refund_line_live_unit",
            "unit_id",
            unique=True,
            postgresql_where=text("voided_at IS NULL"),
            sqlite_where=text("voided_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refund.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    # Kept as they were when refunded: the unit may be sold again to someone else afterwards.
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    number: Mapped[int]
    return_to_sale: Mapped[bool] = mapped_column(default=False)
    # When the unit went back on sale (after the gateway confirmed the refund); None while pending or if retired.
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    refund: Mapped[Refund] = relationship(back_populates="lines")


class UnmatchedPayment(Base):
    """A payment the shop did not ask for in this form: not the session it opened for the hold it names, or
    another amount or currency. It never touches anyone's units; it is refunded and logged for a person."""

    __tablename__ = "unmatched_payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_session_id: Mapped[str] = mapped_column(String(255), unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str] = mapped_column(String(320), default="")
    # The hold the session claimed to pay for (its metadata), if it named one of ours.
    claimed_hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    refunds: Mapped[list[Refund]] = relationship(back_populates="unmatched_payment", order_by="Refund.id")


class Refund(Base):
    """Money going back to a buyer; recorded first, then sent to the gateway (and retried) by the worker."""

    __tablename__ = "refund"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'sending', 'succeeded', 'failed')", name="status_known"),
        # Money goes back either on an order or on a payment that never became one.
        CheckConstraint("(order_id IS NULL) <> (unmatched_payment_id IS NULL)", name="one_payment"),
        CheckConstraint("status <> 'sending' OR lease_until IS NOT NULL", name="sending_is_leased"),
        Index(
            "ix_refund_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"), index=True)
    unmatched_payment_id: Mapped[int | None] = mapped_column(ForeignKey("unmatched_payment.id"), index=True)
    payment_intent_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.PENDING)
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # The worker sending it owns it until `lease_until`; a crashed worker's refund is taken over after that.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Retries stop here (3 days after it was asked for) and a person is asked to look.
    retry_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Who asked for it: a producer's address, or empty when the shop refunded on its own (a payment it cannot honour).
    requested_by: Mapped[str] = mapped_column(String(320), default="")
    # A refund made in Stripe's own dashboard, learnt from charge.refunded: recorded, never sent again.
    from_gateway: Mapped[bool] = mapped_column(default=False)

    order: Mapped[Order | None] = relationship(back_populates="refunds")
    unmatched_payment: Mapped[UnmatchedPayment | None] = relationship(back_populates="refunds")
    lines: Mapped[list[RefundLine]] = relationship(back_populates="refund", order_by="RefundLine.number")


class PeriodicRun(Base):
    """The last period each periodic task ran for: every worker's scheduler fires it, one run takes the period."""

    __tablename__ = "periodic_run"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)


class PaymentEvent(Base):
    """A gateway webhook event, recorded once in the same transaction as its effect."""

    __tablename__ = "payment_event"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's evt_... id
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
