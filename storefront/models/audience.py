"""The shop's audience: people who asked to hear about new batches, and the announcements sent to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime
from storefront.models.catalog import Release


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, has not clicked the confirmation link yet: never mailed anything else
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"  # never mailed again, whatever form they fill in later, until they confirm again


class Subscriber(Base):
    """Someone who asked to be told about new batches (double opt-in). The waitlist builds on this table."""

    __tablename__ = "subscriber"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'confirmed', 'unsubscribed')", name="status_known"),
        Index("ix_subscriber_status", "status", "confirmed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # As typed (mail goes there), and the canonical key one mailbox always maps to (storefront.domain.buyers).
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the last confirmation mail was queued: a form posted again within minutes does not mail again.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Announcement(Base):
    """A release announced to the confirmed subscribers: once per release (the unique release_id says so)."""

    __tablename__ = "announcement"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("release.id"), unique=True)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recipient_count: Mapped[int] = mapped_column(default=0)
    subject: Mapped[str] = mapped_column(String(300), default="")

    release: Mapped[Release] = relationship()
