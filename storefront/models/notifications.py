"""The outbox: mail queued inside the transaction that decided to send it, sent by the worker after commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (
        Index(
            "ix_outbox_message_unsent",
            "created_at",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    # The same message as HTML, sent beside the text as multipart/alternative; empty for text-only mail.
    html_body: Mapped[str] = mapped_column(Text, default="")
    # Extra headers (List-Unsubscribe, List-Unsubscribe-Post) and attachments ([{"filename", "content_type",
    # "content"}], text only: an .ics invitation), both decided when the mail is queued.
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    attachments: Mapped[list[dict]] = mapped_column(JSON, default=list)
    # The order this mail is about (confirmation, shipping, refund), for the order's timeline of mails sent.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # A worker sending this message owns it until then; a crashed worker's message is picked up after it.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
