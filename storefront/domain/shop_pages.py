"""The shop's own settings and the pages its footer links to, as the producer wrote them.

The settings are one row (id 1); until the producer saves them, `shop_settings` answers with an unsaved row of
defaults, so every page and mail can read them without a special case.

A page is "written" when its Markdown body holds something: only written pages are linked from the footer and
shown at /pages/<kind>. Emptying a page's body takes it off the footer and keeps its title for next time.
The Markdown is stored as typed and sanitised when shown (storefront.text.render_markdown), like a batch's story.

The save functions take the session of an open write transaction, plain values and an explicit `now`; they flush
but never commit, record one activity line, and raise ShopPageError (with the form field it belongs to).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from storefront.database import require_write_transaction
from storefront.domain.accounts import email_key
from storefront.domain.activity import Actor, record_activity
from storefront.domain.buyers import InvalidBuyerEmail
from storefront.domain.errors import DomainError
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

# What each page is for, as the workspace explains it next to the page's name.
PAGE_PURPOSES: dict[ShopPageKind, str] = {
    ShopPageKind.SHIPPING: "Where you ship, what it costs per order, how soon parcels leave.",
    ShopPageKind.RETURNS: "What a buyer can send back, for how long, and how refunds work.",
    ShopPageKind.CONTACT: "How to reach you; the contact address from the settings is shown below it.",
    ShopPageKind.TERMS: "Who is selling, what a reservation means, when a sale is final.",
    ShopPageKind.PRIVACY: "What the shop keeps about buyers, why, and for how long.",
    ShopPageKind.AGE: "Linked from products in the age-restricted categories.",
}

# Column lengths in storefront/models/shop.py; the body is Text, capped so one page stays a page.
MAX_CONTACT_EMAIL = 254  # the longest address mail can carry (RFC 5321)
MAX_DISPATCH_TIME = 120
MAX_AGE_CATEGORIES = 400
MAX_PAGE_TITLE = 120
MAX_PAGE_BODY = 20_000


class ShopPageError(DomainError):
    """The settings or a page could not be saved; `field` names the form field the message belongs to."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownPage(ShopPageError):
    """The shop has no page of that kind."""


@dataclass(frozen=True)
class SettingsDetails:
    """The settings as the producer typed them."""

    contact_email: str
    dispatch_time: str
    age_restricted_categories: str


@dataclass(frozen=True)
class PageDetails:
    """A page as the producer typed it: an empty title means the page's usual one."""

    title: str
    body_markdown: str


@dataclass(frozen=True)
class FooterLink:
    """A written page as the footer lists it."""

    kind: str
    title: str


@dataclass(frozen=True)
class PageSummary:
    """One of the six pages as the workspace lists it, written or not."""

    kind: ShopPageKind
    title: str
    purpose: str
    written: bool
    updated_at: datetime | None


# --- Reading ------------------------------------------------------------------------------------------------------


def shop_settings(session: Session | scoped_session) -> ShopSettings:
    """The saved settings, or an unsaved row of defaults (never added to the session)."""
    settings = session.get(ShopSettings, 1)
    if settings is None:
        settings = ShopSettings(id=1, contact_email="", dispatch_time="", age_restricted_categories="")
    return settings


def footer_order(kind: str) -> int:
    order = {page_kind.value: index for index, page_kind in enumerate(PAGE_TITLES)}
    return order.get(kind, len(order))


def written_pages(session: Session | scoped_session) -> list[ShopPage]:
    """The pages with something written in them, in footer order."""
    pages = session.scalars(select(ShopPage).where(ShopPage.body_markdown != "")).all()
    return sorted(pages, key=lambda page: footer_order(page.kind))


def footer_links(session: Session | scoped_session) -> list[FooterLink]:
    """The written pages' kinds and titles, in footer order: one query, without the bodies."""
    rows = session.execute(select(ShopPage.kind, ShopPage.title).where(ShopPage.body_markdown != "")).all()
    return sorted(
        (FooterLink(kind=kind, title=title) for kind, title in rows), key=lambda link: footer_order(link.kind)
    )


def page_kind(slug: str) -> ShopPageKind:
    """The kind a page address names ("shipping", "age-notice"...); UnknownPage for anything else."""
    try:
        return ShopPageKind(slug)
    except ValueError:
        raise UnknownPage("The shop has no such page.") from None


def find_page(session: Session | scoped_session, kind: ShopPageKind) -> ShopPage | None:
    """The page of `kind` as saved (written or emptied), or None if it was never saved."""
    return session.scalar(select(ShopPage).where(ShopPage.kind == kind.value))


def written_page(session: Session | scoped_session, kind: ShopPageKind) -> ShopPage | None:
    """The page of `kind` if it has something written in it."""
    page = find_page(session, kind)
    return page if page is not None and page.body_markdown else None


def page_summaries(session: Session | scoped_session) -> list[PageSummary]:
    """All six pages in footer order, each with its title and whether it is written (and so in the footer)."""
    saved = {page.kind: page for page in session.scalars(select(ShopPage))}
    summaries = []
    for kind, default_title in PAGE_TITLES.items():
        page = saved.get(kind.value)
        summaries.append(
            PageSummary(
                kind=kind,
                title=page.title if page is not None else default_title,
                purpose=PAGE_PURPOSES[kind],
                written=page is not None and bool(page.body_markdown),
                updated_at=page.updated_at if page is not None else None,
            )
        )
    return summaries


def restricted_categories(settings: ShopSettings) -> set[str]:
    """The categories that carry an age notice, folded for comparison ("Whiskey, Gin" -> {"whiskey", "gin"})."""
    return {part.strip().casefold() for part in settings.age_restricted_categories.split(",") if part.strip()}


def needs_age_notice(settings: ShopSettings, category: str | None) -> bool:
    """Whether a product of `category` carries the shop's age notice."""
    category = (category or "").strip()
    return bool(category) and category.casefold() in restricted_categories(settings)


# --- Saving -------------------------------------------------------------------------------------------------------


def clean_categories(typed: str) -> str:
    """Write a typed list as "Whiskey, Gin": trimmed, without empty entries or repeats (compared case-insensitively)."""
    kept: dict[str, str] = {}
    for part in typed.split(","):
        name = " ".join(part.split())
        if name and name.casefold() not in kept:
            kept[name.casefold()] = name
    return ", ".join(kept.values())


def clean_settings(details: SettingsDetails) -> SettingsDetails:
    """Trim what was typed and refuse what the shop cannot keep or use, with a message for its field."""
    contact_email = details.contact_email.strip()
    dispatch_time = " ".join(details.dispatch_time.split())
    categories = clean_categories(details.age_restricted_categories)
    if len(contact_email) > MAX_CONTACT_EMAIL:
        raise ShopPageError(f"An email address has at most {MAX_CONTACT_EMAIL} characters.", "contact_email")
    if contact_email:
        try:
            email_key(contact_email)
        except InvalidBuyerEmail as error:
            raise ShopPageError(error.message, "contact_email") from error
    if len(dispatch_time) > MAX_DISPATCH_TIME:
        raise ShopPageError(f"Keep the dispatch time under {MAX_DISPATCH_TIME} characters.", "dispatch_time")
    if len(categories) > MAX_AGE_CATEGORIES:
        raise ShopPageError(
            f"The list of categories can be at most {MAX_AGE_CATEGORIES} characters.", "age_restricted_categories"
        )
    return SettingsDetails(contact_email, dispatch_time, categories)


Row = TypeVar("Row", ShopSettings, ShopPage)


def saved_row(session: Session | scoped_session, find: Callable[[], Row | None], make: Callable[[], Row]) -> Row:
    """The existing row, or a new one inserted in a savepoint: if another request inserted it first (two first
    saves at once), its row is the one updated, instead of a unique-key error."""
    row = find()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = make()
            session.add(row)
    except IntegrityError:
        row = find()
        if row is None:
            raise
    return row


def save_shop_settings(
    session: Session | scoped_session, actor: Actor, details: SettingsDetails, now: datetime
) -> ShopSettings:
    """Save the contact address, dispatch time and age-restricted categories; record what they now are."""
    require_write_transaction(session)
    clean = clean_settings(details)
    settings = saved_row(
        session,
        lambda: session.get(ShopSettings, 1),
        lambda: ShopSettings(id=1, contact_email="", dispatch_time="", age_restricted_categories="", updated_at=now),
    )
    changed = [
        name
        for name in ("contact_email", "dispatch_time", "age_restricted_categories")
        if getattr(settings, name) != getattr(clean, name)
    ]
    settings.contact_email = clean.contact_email
    settings.dispatch_time = clean.dispatch_time
    settings.age_restricted_categories = clean.age_restricted_categories
    settings.updated_at = now
    session.flush()
    record_activity(session, actor, "edited", "shop", settings.id, settings_summary(clean, changed), now)
    return settings


def settings_summary(clean: SettingsDetails, changed: list[str]) -> str:
    """ "shop settings saved: contact ann@x.ie; dispatched within 2 working days; age notice on Whiskey"."""
    if not changed:
        return "shop settings saved (nothing changed)"
    parts = {
        "contact_email": f"contact {clean.contact_email or '(none)'}",
        "dispatch_time": f"dispatched {clean.dispatch_time or '(not said)'}",
        "age_restricted_categories": f"age notice on {clean.age_restricted_categories or 'no category'}",
    }
    return "shop settings saved: " + "; ".join(parts[name] for name in changed)


def save_shop_page(
    session: Session | scoped_session, actor: Actor, kind: ShopPageKind | str, details: PageDetails, now: datetime
) -> ShopPage:
    """Save a footer page's title and Markdown; an empty body takes the page off the footer."""
    require_write_transaction(session)
    kind = page_kind(str(kind))
    title = " ".join(details.title.split()) or PAGE_TITLES[kind]
    body = details.body_markdown.strip()
    if len(title) > MAX_PAGE_TITLE:
        raise ShopPageError(f"Keep the title under {MAX_PAGE_TITLE} characters.", "title")
    if len(body) > MAX_PAGE_BODY:
        raise ShopPageError(
            f"A page can be at most {MAX_PAGE_BODY:,} characters; this one has {len(body):,}.", "body_markdown"
        )
    page = saved_row(
        session,
        lambda: find_page(session, kind),
        lambda: ShopPage(kind=kind.value, title=title, body_markdown="", updated_at=now),
    )
    was_written = bool(page.body_markdown)
    page.title = title
    page.body_markdown = body
    page.updated_at = now
    session.flush()
    if body:
        summary = f"page “{title}” saved" if was_written else f"page “{title}” written: now linked from the footer"
    else:
        summary = f"page “{title}” emptied: taken off the footer" if was_written else f"page “{title}” saved empty"
    record_activity(session, actor, "edited", "shop_page", page.id, summary, now)
    return page
