"""Waitlists: people waiting for a sold-out run's freed numbers or a product's next batch, and the offers they get.

An entry waits either for one release (its freed numbers, and early access to the product's next batches) or
for a product alone (its next batches). Only confirmed entries count, in order of confirmation. A freed number of a
sold-out release is offered to the next confirmed waiter through a WaitlistOffer that owns a hold on that unit, so
no public claim can take it; one waiter gets at most one offer per release (the unique constraint says so).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime
from storefront.models.catalog import Product, Release


def new_token() -> str:
    return secrets.token_urlsafe(18)


class WaitlistStatus(StrEnum):
    PENDING = "pending"  # joined, has not clicked the confirmation link: never mailed anything else
    CONFIRMED = "confirmed"  # in line, from `confirmed_at`
    UNSUBSCRIBED = "unsubscribed"  # asked to stop: never mailed again unless they join and confirm again
    REMOVED = "removed"  # taken off the list by the producer


class OfferStatus(StrEnum):
    LIVE = "live"  # the unit is held for the waiter until the offer's time runs out
    CLAIMED = "claimed"  # the waiter went to pay: the hold is an ordinary payment hold now
    PURCHASED = "purchased"  # paid: the hold became an order
    DECLINED = "declined"  # the waiter said no, or left the payment page
    LAPSED = "lapsed"  # nobody answered in time (or the payment failed)
    WITHDRAWN = "withdrawn"  # the waiter unsubscribed or was removed while it was live
    SKIPPED = "skipped"  # passed over without a unit: the waiter already had the per-customer limit


LIVE_OFFER_STATUSES = (OfferStatus.LIVE, OfferStatus.CLAIMED)


class WaitlistEntry(Base):
    """One address waiting for a release's freed numbers (release_id set) or a product's next batches (unset)."""

    __tablename__ = "waitlist_entry"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'confirmed', 'unsubscribed', 'removed')", name="status_known"),
        # One entry per mailbox per list. NULL release ids are distinct, so the product lists get their own index.
        UniqueConstraint("release_id", "email_key"),
        Index(
            "ix_waitlist_entry_product_list",
            "product_id",
            "email_key",
            unique=True,
            postgresql_where=text("release_id IS NULL"),
            sqlite_where=text("release_id IS NULL"),
        ),
        # The offer engine walks a release's confirmed waiters in order of confirmation.
        Index("ix_waitlist_entry_line", "release_id", "status", "confirmed_at"),
        Index("ix_waitlist_entry_email_key", "email_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The waiter's handle in the position link ("you are 4th in line"): unguessable, unlike the id.
    token: Mapped[str] = mapped_column(String(40), unique=True, default=new_token)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("release.id"))
    # As typed (mail goes there); the key one mailbox maps to (storefront.domain.accounts.email_key); and the key
    # the per-customer limit counts by (storefront.domain.buyers.buyer_key, with the shop's plus-tag setting).
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    buyer_key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(16), default=WaitlistStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the last confirmation mail was queued: a form posted again within minutes does not mail again.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    product: Mapped[Product] = relationship()
    release: Mapped[Release | None] = relationship()


class WaitlistOffer(Base):
    """A freed number offered to one waiter: a hold on that unit, theirs to claim until the offer's time runs out."""

    __tablename__ = "waitlist_offer"
    __table_args__ = (
        CheckConstraint(
            "status IN ('live', 'claimed', 'purchased', 'declined', 'lapsed', 'withdrawn', 'skipped')",
            name="status_known",
        ),
        CheckConstraint("status = 'skipped' OR (unit_id IS NOT NULL AND hold_id IS NOT NULL)", name="offer_has_unit"),
        # One offer per waiter per release, ever: declining or letting it lapse passes the turn on for good.
        UniqueConstraint("release_id", "entry_id"),
        # A unit is in at most one offer that is still open.
        Index(
            "ix_waitlist_offer_live_unit",
            "unit_id",
            unique=True,
            postgresql_where=text("status IN ('live', 'claimed')"),
            sqlite_where=text("status IN ('live', 'claimed')"),
        ),
        Index("ix_waitlist_offer_release_status", "release_id", "status"),
        # Offers made but not yet mailed: the worker's queue.
        Index(
            "ix_waitlist_offer_unnotified",
            "created_at",
            postgresql_where=text("notified_at IS NULL AND status = 'live'"),
            sqlite_where=text("notified_at IS NULL AND status = 'live'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The waiter's handle in the offer link: unguessable, unlike the id.
    token: Mapped[str] = mapped_column(String(40), unique=True, default=new_token)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("waitlist_entry.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    number: Mapped[int | None]
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.LIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the offer mail was queued: its time to claim runs from then (WAITLIST_OFFER_MINUTES).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it was skipped, for the producer's list.
    note: Mapped[str] = mapped_column(String(200), default="")

    entry: Mapped[WaitlistEntry] = relationship()
    release: Mapped[Release] = relationship()
