"""The shop's own settings and the pages its footer links to, as the producer wrote them.

The settings are one row (id 1); until the producer saves them, `shop_settings` answers with an unsaved row of
defaults, so every page and mail can read them without a special case.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.models import ShopPage, ShopPageKind, ShopSettings

# Footer order, and the title a page gets until the producer names it.
PAGE_TITLES: dict[ShopPageKind, str] = {
    ShopPageKind.SHIPPING: "Shipping",
    ShopPageKind.RETURNS: "Returns",
    ShopPageKind.CONTACT: "Contact",
    ShopPageKind.TERMS: "Terms of sale",
    ShopPageKind.PRIVACY: "Privacy",
    ShopPageKind.AGE: "Age notice",
}


def shop_settings(session: Session) -> ShopSettings:
    """The saved settings, or an unsaved row of defaults (never added to the session)."""
    settings = session.get(ShopSettings, 1)
    if settings is None:
        settings = ShopSettings(id=1, contact_email="", dispatch_time="", age_restricted_categories="")
    return settings


def written_pages(session: Session) -> list[ShopPage]:
    """The pages with something written in them, in footer order."""
    pages = session.scalars(select(ShopPage).where(ShopPage.body_markdown != "")).all()
    order = {kind.value: index for index, kind in enumerate(PAGE_TITLES)}
    return sorted(pages, key=lambda page: order.get(page.kind, len(order)))


def restricted_categories(settings: ShopSettings) -> set[str]:
    """The categories that carry an age notice, folded for comparison ("Whiskey, Gin" -> {"whiskey", "gin"})."""
    return {part.strip().casefold() for part in settings.age_restricted_categories.split(",") if part.strip()}


def needs_age_notice(settings: ShopSettings, category: str) -> bool:
    """Whether a product of `category` carries the shop's age notice."""
    return bool(category.strip()) and category.strip().casefold() in restricted_categories(settings)
