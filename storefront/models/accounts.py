"""People who sign in: producers today, customers later."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime


class Role(StrEnum):
    PRODUCER = "producer"
    CUSTOMER = "customer"


class User(UserMixin, Base):
    """An account: the address as typed (lower-cased, mail goes there) and its canonical key (one per mailbox)."""

    # Not "user": a reserved word in PostgreSQL, which would need quoting in every hand-written query.
    __tablename__ = "user_account"
    __table_args__ = (CheckConstraint("role IN ('producer', 'customer')", name="role_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # buyer_key(email, ignore_plus_tags=False): "Ann@X.ie" and "ann@x.ie" (or a fullwidth look-alike) are one account.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_producer(self) -> bool:
        return self.role == Role.PRODUCER

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"
