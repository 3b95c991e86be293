"""The shop's written pages at /pages/<kind>, and the template helpers behind the footer and the age notice."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import abort, render_template, url_for
from sqlalchemy.exc import SQLAlchemyError

from storefront.domain.shop_pages import (
    FooterLink,
    UnknownPage,
    footer_links,
    needs_age_notice,
    page_kind,
    shop_settings,
    written_page,
)
from storefront.extensions import db
from storefront.models import ShopPageKind
from storefront.pages import bp

log = logging.getLogger(__name__)

NO_SUCH_PAGE = "The shop has no page at this address. Its own pages are linked at the foot of every page."


@bp.get("/<kind>")
def show_page(kind: str):
    """Show one of the shop's written pages; the contact page also gives the contact address."""
    try:
        known_kind = page_kind(kind)
    except UnknownPage:
        abort(404, description=NO_SUCH_PAGE)
    page = written_page(db.session, known_kind)
    if page is None:
        abort(404, description=NO_SUCH_PAGE)
    contact_email = shop_settings(db.session).contact_email if known_kind == ShopPageKind.CONTACT else ""
    return render_template("pages/show_page.html", page=page, contact_email=contact_email)


@dataclass(frozen=True)
class AgeNotice:
    """The notice a restricted product's pages carry, and where the shop's age page is (None: not written)."""

    page_url: str | None


def links_for_footer() -> list[FooterLink]:
    """The written pages for the footer; none when the database cannot answer (the footer of a 500 page must not
    fail a second time)."""
    try:
        return footer_links(db.session)
    except SQLAlchemyError:
        log.warning("The footer's pages could not be read; the footer is shown without them", exc_info=True)
        db.session.rollback()
        return []


def age_notice_for(category: str | None) -> AgeNotice | None:
    """The age notice for a product of `category`, or None when its category needs none."""
    if not (category or "").strip() or not needs_age_notice(shop_settings(db.session), category):
        return None
    written = written_page(db.session, ShopPageKind.AGE) is not None
    return AgeNotice(page_url=url_for("pages.show_page", kind=ShopPageKind.AGE.value) if written else None)


@bp.app_context_processor
def footer_helpers() -> dict:
    # Functions, not lists: only a page that shows the footer or a notice asks the database, once each.
    return {"footer_links": links_for_footer, "age_notice_for": age_notice_for}
