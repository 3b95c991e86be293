"""The shop itself: settings the producer keeps in the workspace, and the pages linked from every footer."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime


class ShopSettings(Base):
    """One row (id 1): who sells, how to reach them, how fast orders leave, which categories need an age notice."""

    __tablename__ = "shop_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    # The address buyers write to, shown on the contact page and in every order mail; empty: MAIL_FROM's.
    contact_email: Mapped[str] = mapped_column(String(320), default="")
    # "within 2 working days": the shipping line reads "Dispatched {dispatch_time}".
    dispatch_time: Mapped[str] = mapped_column(String(120), default="")
    # Product categories (comma-separated, compared case-insensitively) whose releases link the age notice.
    age_restricted_categories: Mapped[str] = mapped_column(String(400), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ShopPageKind(StrEnum):
    """The pages every footer links to, once the producer has written them; the value is the page's slug."""

    SHIPPING = "shipping"
    RETURNS = "returns"
    CONTACT = "contact"
    TERMS = "terms"
    PRIVACY = "privacy"
    AGE = "age-notice"


class ShopPage(Base):
    """A page the producer writes in Markdown (sanitised when shown): shipping, returns, contact, terms..."""

    __tablename__ = "shop_page"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('shipping', 'returns', 'contact', 'terms', 'privacy', 'age-notice')", name="kind_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
