"""Orders: what a buyer paid for, and the numbered units it owns."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime

if TYPE_CHECKING:
    from storefront.models.catalog import Release
    from storefront.models.inventory import Unit


class OrderStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


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

    release: Mapped[Release] = relationship()
    units: Mapped[list[Unit]] = relationship(back_populates="order", order_by="Unit.number")
