"""The activity log: who changed what in the producer's workspace, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime


class ActivityEntry(Base):
    """One thing a producer did: "ann@harrowvale.ie paused release rye-batch-7"."""

    __tablename__ = "activity_entry"
    __table_args__ = (
        Index("ix_activity_entry_occurred_at", "occurred_at"),
        Index("ix_activity_entry_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The account that acted (None for the CLI or the demo loader), and its address, kept as it was then.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_email: Mapped[str] = mapped_column(String(320), default="")
    # A verb: created, edited, paused, resumed, announced, withheld, ...
    action: Mapped[str] = mapped_column(String(40))
    # What it was done to: "product", "batch", "release", "photo", and its id.
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    # One line a person reads: 'release "Winter Rye" paused'.
    summary: Mapped[str] = mapped_column(String(500))
