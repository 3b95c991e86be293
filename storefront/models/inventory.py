"""Stock: one row per numbered unit, and the holds that keep units for a buyer while they pay."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime

if TYPE_CHECKING:
    from storefront.models.catalog import Release
    from storefront.models.orders import Order


class UnitStatus(StrEnum):
    AVAILABLE = "available"
    HELD = "held"
    SOLD = "sold"
    WITHHELD = "withheld"  # kept back by the producer (a number promised to someone, a damaged bottle)


class HoldStatus(StrEnum):
    ACTIVE = "active"
    CONVERTED = "converted"
    RELEASED = "released"


def new_token() -> str:
    return secrets.token_urlsafe(18)


class Hold(Base):
    """Units kept for one buyer until `expires_at` while they pay; becomes an order or is released."""

    __tablename__ = "hold"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("status IN ('active', 'converted', 'released')", name="status_known"),
        # The per-customer limit counts a buyer's holds by their canonical key, under one advisory lock.
        Index("ix_hold_buyer", "release_id", "buyer_key", "status"),
        # Claims and the sweeper look for live holds past their time; ended holds never need scanning again.
        Index(
            "ix_hold_active_expiry",
            "release_id",
            "expires_at",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The buyer's handle on their hold in URLs: unguessable, unlike the id.
    token: Mapped[str] = mapped_column(String(40), unique=True, default=new_token)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    # The address as the buyer typed it (mail goes there), and the canonical key one mailbox always maps to
    # (storefront.domain.buyers.buyer_key), by which the per-customer limit counts.
    buyer_email: Mapped[str] = mapped_column(String(320))
    buyer_key: Mapped[str] = mapped_column(String(320))
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it ended: cancelled, expired, payment_failed, paid...
    end_reason: Mapped[str | None] = mapped_column(String(40))
    # The payment session that pays for it (Stripe Checkout), and what the gateway last said of it.
    payment_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_status: Mapped[str | None] = mapped_column(String(40))
    payment_url: Mapped[str | None] = mapped_column(String(2000))
    # What the shop asked the gateway for when it opened the session: the one payment that may convert this hold.
    expected_amount: Mapped[int | None]
    unit_amount: Mapped[int | None]
    # The shipping asked for with it (part of expected_amount), once per order.
    shipping_amount: Mapped[int | None]
    payment_currency: Mapped[str | None] = mapped_column(String(3))
    checkout_numbers: Mapped[list[int] | None] = mapped_column(JSON)
    # Why the hold is ending, recorded before the gateway is asked to close the session: the first reason wins,
    # so the expiry event a cancel causes cannot rewrite the cancel as "ran out of time".
    end_requested: Mapped[str | None] = mapped_column(String(40))
    # Made by the waitlist for an offer (storefront.domain.waitlist): only the sweeper ends it when its time is up,
    # never a public claim passing by, so a lapsed offer's unit goes to the next waiter, not to the public.
    for_offer: Mapped[bool] = mapped_column(default=False)
    # A sweeper worker that is ending this hold with the gateway owns it until then; others skip it.
    sweep_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    release: Mapped[Release] = relationship()
    units: Mapped[list[Unit]] = relationship(back_populates="hold", order_by="Unit.number")


class Unit(Base):
    """One numbered unit of a release: "No. 17 of 240"."""

    __tablename__ = "unit"
    __table_args__ = (
        UniqueConstraint("release_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("status IN ('available', 'held', 'sold', 'withheld')", name="status_known"),
        # A unit's status and its links must agree, so a faulty query fails instead of selling twice.
        CheckConstraint(
            "(status = 'available' AND hold_id IS NULL AND order_id IS NULL AND held_until IS NULL)"
            " OR (status = 'held' AND hold_id IS NOT NULL AND order_id IS NULL AND held_until IS NOT NULL)"
            " OR (status = 'sold' AND order_id IS NOT NULL)"
            " OR (status = 'withheld' AND order_id IS NULL)",
            name="status_matches_links",
        ),
        # The claim walks this index: it only ever contains claimable units, so claims stay at the front
        # of the run however many units are already gone (see ../shared/PERFORMANCE.md, lesson 1).
        Index(
            "ix_unit_available",
            "release_id",
            "number",
            postgresql_where=text("status = 'available'"),
            sqlite_where=text("status = 'available'"),
        ),
        Index("ix_unit_release_status", "release_id", "status"),
        # The dashboard's "sold over time" chart buckets sold units by time, per release.
        Index(
            "ix_unit_release_sold_at",
            "release_id",
            "sold_at",
            postgresql_where=text("sold_at IS NOT NULL"),
            sqlite_where=text("sold_at IS NOT NULL"),
        ),
        Index("ix_unit_hold_id", "hold_id"),
        Index("ix_unit_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=UnitStatus.AVAILABLE)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))
    sold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    release: Mapped[Release] = relationship()
    hold: Mapped[Hold | None] = relationship(back_populates="units")
    order: Mapped[Order | None] = relationship(back_populates="units")
