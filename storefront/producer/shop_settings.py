"""The shop itself: its settings (contact address, dispatch time, age-restricted categories) and the pages every
footer links to (shipping, returns, contact, terms, privacy, age notice), written in Markdown.

Each save validates its form, calls one function of storefront.domain.shop_pages inside a write transaction, then
redirects (303); refused input re-renders the form with the message next to its field (422) and saves nothing.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from storefront import clock
from storefront.domain import shop_pages
from storefront.domain.activity import Actor
from storefront.domain.shop_pages import PAGE_PURPOSES, PAGE_TITLES, ShopPageError, UnknownPage
from storefront.extensions import db
from storefront.models import ShopPageKind
from storefront.producer import bp
from storefront.producer.shop_settings_forms import ShopPageForm, ShopSettingsForm
from storefront.text import render_markdown
from storefront.unit_of_work import write_transaction

INVALID = 422


def acting_producer() -> Actor:
    return Actor.of(current_user._get_current_object())


def show_refusal(form, refusal: ShopPageError) -> list[str]:
    """Put a domain refusal next to its field; return it as a form-wide problem when it has no field."""
    field = getattr(form, refusal.field, None) if refusal.field else None
    if field is not None:
        field.errors = [*field.errors, refusal.message]
        return []
    return [refusal.message]


def kind_or_404(kind: str) -> ShopPageKind:
    try:
        return shop_pages.page_kind(kind)
    except UnknownPage:
        abort(404, description="The shop has no page of that kind.")


@bp.route("/shop", methods=["GET", "POST"])
def edit_shop():
    """The shop's settings, and its footer pages with whether each is written."""
    settings = shop_pages.shop_settings(db.session)
    form = ShopSettingsForm(obj=settings)
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            with write_transaction(db.session):
                shop_pages.save_shop_settings(db.session, acting_producer(), form.details(), clock.now())
        except ShopPageError as refusal:
            problems = show_refusal(form, refusal)
        else:
            flash("Shop settings saved.", "success")
            return redirect(url_for("producer.edit_shop"), code=303)
    status = INVALID if request.method == "POST" else 200
    return render_template(
        "producer/edit_shop.html",
        form=form,
        problems=problems,
        pages=shop_pages.page_summaries(db.session),
    ), status


@bp.route("/shop/pages/<kind>", methods=["GET", "POST"])
def edit_shop_page(kind: str):
    """One footer page: its title and Markdown beside a preview rendered by the public page's sanitiser."""
    page_kind = kind_or_404(kind)
    page = shop_pages.find_page(db.session, page_kind)
    form = ShopPageForm(obj=page)
    if page is None and not form.is_submitted():
        form.title.data = PAGE_TITLES[page_kind]
    problems: list[str] = []
    status = 200
    previewing = request.method == "POST" and bool(form.preview.data)
    if previewing:
        # "Preview" without JavaScript: show it, save nothing.
        status = 200 if form.validate() else INVALID
    elif form.validate_on_submit():
        try:
            with write_transaction(db.session):
                saved = shop_pages.save_shop_page(db.session, acting_producer(), page_kind, form.details(), clock.now())
                title, written = saved.title, bool(saved.body_markdown)
        except ShopPageError as refusal:
            problems = show_refusal(form, refusal)
            status = INVALID
        else:
            if written:
                flash(f"“{title}” saved. It is linked from the footer of every page.", "success")
            else:
                flash(f"“{title}” saved empty: it is no longer linked from the footer.", "success")
            return redirect(url_for("producer.edit_shop_page", kind=page_kind.value), code=303)
    elif request.method == "POST":
        status = INVALID
    if status != 200:
        page = shop_pages.find_page(db.session, page_kind)  # a refused change was rolled back: show the page as it is
    return render_template(
        "producer/edit_shop_page.html",
        form=form,
        kind=page_kind,
        page=page,
        purpose=PAGE_PURPOSES[page_kind],
        default_title=PAGE_TITLES[page_kind],
        written=page is not None and bool(page.body_markdown),
        problems=problems,
        preview=page_preview(form),
        previewing=previewing,
    ), status


def page_preview(form: ShopPageForm) -> Markup:
    """The page as typed so far, through the public page's sanitiser (nothing when it is too long to keep)."""
    text = form.body_markdown.data or ""
    return render_markdown(text) if len(text) <= shop_pages.MAX_PAGE_BODY else Markup("")
