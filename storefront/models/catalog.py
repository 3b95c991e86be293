"""The catalogue: products, their production batches, and the numbered releases each batch is sold as."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from storefront.clock import utcnow
from storefront.models.base import Base, UTCDateTime

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


class InvalidValue(ValueError):
    """A value the shop refuses to store; the message is meant for the person who typed it."""


def require_whole_number(field: str, value: object, minimum: int) -> int:
    """Return `value` if it is an int of at least `minimum`; explain the problem otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{field} must be a whole number, got {value!r}")
    if value < minimum:
        raise InvalidValue(f"{field} must be at least {minimum}, got {value}")
    return value


def require_slug(field: str, value: str) -> str:
    if not isinstance(value, str) or not SLUG_PATTERN.match(value) or len(value) > 120:
        raise InvalidValue(f"{field} must be lowercase letters, digits and single hyphens, got {value!r}")
    return value


class Product(Base):
    """What the producer makes (a rye whiskey, a washed Ethiopian coffee); batches are lots of it."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(60), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    batches: Mapped[list[Batch]] = relationship(back_populates="product", order_by="Batch.produced_on.desc()")

    @validates("slug")
    def validate_slug(self, _key: str, value: str) -> str:
        return require_slug("Product slug", value)


class Batch(Base):
    """One production lot: a code, a date, provenance facts, photos and a story told in Markdown."""

    __tablename__ = "batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    produced_on: Mapped[date]
    summary: Mapped[str] = mapped_column(String(400), default="")
    story_markdown: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    product: Mapped[Product] = relationship(back_populates="batches")
    facts: Mapped[list[BatchFact]] = relationship(
        back_populates="batch", order_by="BatchFact.position", cascade="all, delete-orphan"
    )
    images: Mapped[list[BatchImage]] = relationship(
        back_populates="batch", order_by="BatchImage.position", cascade="all, delete-orphan"
    )
    releases: Mapped[list[Release]] = relationship(back_populates="batch", order_by="Release.on_sale_at")

    @validates("slug")
    def validate_slug(self, _key: str, value: str) -> str:
        return require_slug("Batch slug", value)

    @validates("code")
    def validate_code(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue("Batch code is required, e.g. B-2026-07")
        return value.strip()


class BatchFact(Base):
    """One line of provenance the producer entered: "Cask" - "Ex-bourbon, first fill"."""

    __tablename__ = "batch_fact"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str] = mapped_column(String(80))
    value: Mapped[str] = mapped_column(String(400))

    batch: Mapped[Batch] = relationship(back_populates="facts")


class BatchImage(Base):
    """A photo of the batch, stored under UPLOAD_FOLDER; `alt_text` is required for screen readers."""

    __tablename__ = "batch_image"
    __table_args__ = (UniqueConstraint("batch_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str] = mapped_column(String(300))
    alt_text: Mapped[str] = mapped_column(String(300))
    caption: Mapped[str] = mapped_column(String(300), default="")
    width: Mapped[int | None]
    height: Mapped[int | None]
    # The re-encoded copies the photo pipeline made, narrowest first: [{"width", "height", "path"}, ...], served
    # with srcset. Empty for a photo stored before the pipeline existed: then `path` is the only copy.
    variants: Mapped[list[dict]] = mapped_column(JSON, default=list)

    batch: Mapped[Batch] = relationship(back_populates="images")

    @validates("alt_text")
    def validate_alt_text(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue("Every photo needs a description (alt text) for people who cannot see it")
        return value.strip()


class ReleaseStatus(StrEnum):
    UPCOMING = "upcoming"
    ON_SALE = "on_sale"
    PAUSED = "paused"  # on sale by the clock, but the producer has stopped claims for now
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


class Release(Base):
    """A limited, numbered run of a batch ("No. 17 of 240") that goes on sale at an announced time."""

    __tablename__ = "release"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        CheckConstraint("shipping_amount >= 0", name="shipping_not_negative"),
        CheckConstraint("total_units >= 1", name="total_units_positive"),
        CheckConstraint("per_customer_limit >= 1", name="limit_positive"),
        CheckConstraint("off_sale_at IS NULL OR off_sale_at > on_sale_at", name="off_sale_after_on_sale"),
        CheckConstraint("early_access_at IS NULL OR early_access_at < on_sale_at", name="early_access_before_sale"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    price_amount: Mapped[int]  # minor units: 8900 is 89.00
    currency: Mapped[str] = mapped_column(String(3))
    # Shipping charged once per order, in the release's currency and minor units; 0 is free shipping.
    shipping_amount: Mapped[int] = mapped_column(default=0)
    total_units: Mapped[int]
    on_sale_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    off_sale_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    per_customer_limit: Mapped[int] = mapped_column(default=2)
    allow_number_choice: Mapped[bool] = mapped_column(default=False)
    # Set while the producer has paused claims (storefront.domain.releases.pause_release); None when open.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # From this time until on_sale_at, the product's confirmed waiters may reserve through their personal links.
    early_access_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the run first sold out: from then on, numbers that come free go to its waitlist before public sale.
    sold_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while the producer has paused waitlist offers: freed numbers go back on public sale instead.
    waitlist_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="releases")

    @validates("slug")
    def validate_slug(self, _key: str, value: str) -> str:
        return require_slug("Release slug", value)

    @validates("price_amount")
    def validate_price(self, _key: str, value: object) -> int:
        return require_whole_number("Price (in minor units, e.g. 8900 for 89.00)", value, 0)

    @validates("total_units")
    def validate_total_units(self, _key: str, value: object) -> int:
        return require_whole_number("Number of units", value, 1)

    @validates("per_customer_limit")
    def validate_limit(self, _key: str, value: object) -> int:
        return require_whole_number("Per-customer limit", value, 1)

    @validates("currency")
    def validate_currency(self, _key: str, value: str) -> str:
        if not isinstance(value, str) or not CURRENCY_PATTERN.match(value.upper()):
            raise InvalidValue(f"Currency must be a three-letter ISO code such as EUR, got {value!r}")
        return value.upper()

    @validates("on_sale_at", "off_sale_at", "early_access_at")
    def validate_aware(self, key: str, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise InvalidValue(f"{key} must carry a time zone")
        return value

    def status_at(self, now: datetime, available: int) -> ReleaseStatus:
        """Derive the release's status from the clock and from how many units can still be claimed."""
        if now < self.on_sale_at:
            return ReleaseStatus.UPCOMING
        if self.off_sale_at is not None and now >= self.off_sale_at:
            return ReleaseStatus.CLOSED
        if available <= 0:
            return ReleaseStatus.SOLD_OUT
        if self.paused_at is not None:
            return ReleaseStatus.PAUSED
        return ReleaseStatus.ON_SALE
