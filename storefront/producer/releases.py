"""Opening, editing, withholding and pausing releases in the producer's workspace.

Each action validates its form, calls one domain function (storefront.domain.releases) in a write transaction,
then redirects (303) to the release's workspace page; a refused form comes back with its errors and nothing
written. The blueprint's guard admits only producers.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from storefront import clock
from storefront.domain import releases as release_rules
from storefront.domain.activity import Actor
from storefront.domain.announcements import find_announcement
from storefront.domain.releases import InvalidReleaseTerms, NumbersUnavailable, ReleaseNotFound, describe_numbers
from storefront.domain.sales import sales_summaries
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Batch, Product, Release
from storefront.producer import bp
from storefront.producer.release_forms import (
    ActionForm,
    EditReleaseForm,
    NewReleaseForm,
    ReturnForm,
    WithholdForm,
    minor_units_to_price,
    utc_to_local,
)
from storefront.producer.views import chart_slots, revenue_text
from storefront.shop.page_cache import page_cache
from storefront.shop.reserve_cache import reserve_cache
from storefront.shop_time import shop_time, shop_zone
from storefront.unit_of_work import write_transaction

# Up to this many numbers kept back, each gets its own "Put back on sale" button; beyond it, one form does.
RETURN_BUTTONS_SHOWN = 24
DEFAULT_OPENING = time(10, 0)


def get_release_or_404(release_id: int) -> Release:
    release = db.session.scalar(
        select(Release).where(Release.id == release_id).options(selectinload(Release.batch).selectinload(Batch.product))
    )
    if release is None:
        abort(404, description="There is no such release in the workspace.")
    return release


def batch_choices() -> list[SelectChoice]:
    batches = db.session.execute(
        select(Batch.id, Batch.code, Batch.title, Product.name)
        .join(Product, Product.id == Batch.product_id)
        .order_by(Batch.produced_on.desc(), Batch.id.desc())
    ).all()
    return [SelectChoice(batch_id, f"{code}: {title} ({product})") for batch_id, code, title, product in batches]


def actor() -> Actor:
    return Actor.of(current_user)


def slug_lost_race(form, slug: str) -> bool:
    """After an IntegrityError: was it another request taking the same address first? Then say so on the form."""
    if not release_rules.slug_in_use(db.session, slug):
        return False
    form.add_problems({"slug": f"The address “{slug}” was just taken by another release; choose another."})
    return True


# --- Opening ----------------------------------------------------------------------------------------------------


def render_new_release(form: NewReleaseForm, status: int = 200):
    page = render_template("producer/new_release.html", form=form, zone_name=shop_zone().key)
    return page, status


def new_release_form(**kwargs) -> NewReleaseForm:
    form = NewReleaseForm(zone=shop_zone(), **kwargs)
    form.batch_id.choices = batch_choices()
    return form


@bp.get("/releases/new")
def new_release():
    """The form to open a numbered release of a batch."""
    tomorrow = utc_to_local(clock.now(), shop_zone()).date() + timedelta(days=1)
    form = new_release_form(on_sale_at=datetime.combine(tomorrow, DEFAULT_OPENING))
    wanted_batch = request.args.get("batch_id", type=int)
    if wanted_batch is not None:
        form.batch_id.data = wanted_batch
    return render_new_release(form)


@bp.post("/releases")
def create_release():
    """Open a release and its numbered units, or show the form again with what to fix (nothing is created)."""
    form = new_release_form()
    if not form.validate_on_submit():
        return render_new_release(form, 422)
    terms = form.terms()
    try:
        with write_transaction(db.session):
            release = release_rules.open_release(
                db.session, form.batch_id.data, terms, clock.now(), actor(), withheld=form.withheld_numbers
            )
            release_id, total = release.id, release.total_units
    except InvalidReleaseTerms as refusal:
        form.add_problems(refusal.problems)
        return render_new_release(form, 422)
    except IntegrityError:
        if slug_lost_race(form, terms.slug):
            return render_new_release(form, 409)
        raise
    flash(f"Release opened with {total} numbered units.", "success")
    for note in form.notes():
        flash(note, "info")
    return redirect(url_for("producer.show_release", release_id=release_id), code=303)


# --- The release's page -----------------------------------------------------------------------------------------


def render_release_page(release: Release, status: int = 200, **forms):
    now = clock.now()
    (view,) = describe_releases(db.session, [release], now)
    kept = release_rules.kept_back_numbers(db.session, release.id)
    # The dashboard's chart of units sold, for this release alone (an empty slot while it is not selling).
    chart_slot = chart_slots([view], now, every=True)[release.id]
    sales = sales_summaries(db.session, [release.id], sold={release.id: view.stock.sold})[release.id]
    page = render_template(
        "producer/show_release.html",
        release=release,
        batch=release.batch,
        view=view,
        kept=kept,
        kept_text=describe_numbers(kept),
        return_buttons=len(kept) <= RETURN_BUTTONS_SHOWN,
        locked=release_rules.has_commitments(db.session, release.id),
        withhold_form=forms.get("withhold_form") or WithholdForm(prefix="withhold"),
        return_form=forms.get("return_form") or ReturnForm(prefix="return"),
        action_form=ActionForm(),
        shop_time=shop_time,
        zone_name=shop_zone().key,
        now=now,
        chart_slot=chart_slot,
        sales=sales,
        net_revenue=revenue_text(sales.net, release.currency),
        announcement=find_announcement(db.session, release.id),
    )
    return page, status


def forget_cached_answers(release_id: int) -> None:
    """This process's buyers see a changed release at once; other processes' caches run out within seconds."""
    reserve_cache().forget(release_id=release_id)
    page_cache().forget(release_id)


@bp.get("/releases/<int:release_id>")
def show_release(release_id: int):
    """One release in the workspace: its terms, counts, withheld numbers, pause and edit."""
    return render_release_page(get_release_or_404(release_id))


# --- Editing ----------------------------------------------------------------------------------------------------


def edit_form_for(release: Release, locked: bool, **kwargs) -> EditReleaseForm:
    """The edit form, filled from the release on GET; price and currency come from the release when locked."""
    zone = shop_zone()
    form = EditReleaseForm(
        zone=zone,
        title=release.title,
        slug=release.slug,
        price=minor_units_to_price(release.price_amount, release.currency),
        currency=release.currency,
        shipping=minor_units_to_price(release.shipping_amount, release.currency) if release.shipping_amount else "",
        total_units=release.total_units,
        on_sale_at=utc_to_local(release.on_sale_at, zone),
        off_sale_at=utc_to_local(release.off_sale_at, zone) if release.off_sale_at else None,
        early_access_at=utc_to_local(release.early_access_at, zone) if release.early_access_at else None,
        per_customer_limit=release.per_customer_limit,
        allow_number_choice=release.allow_number_choice,
        **kwargs,
    )
    if locked:
        # What a locked (disabled) input would have sent, had browsers sent disabled inputs.
        form.price.data = minor_units_to_price(release.price_amount, release.currency)
        form.currency.data = release.currency
    return form


def shown_as(moment: datetime, zone: ZoneInfo) -> datetime:
    """The wall time the edit form shows for a stored moment: to the minute, as a datetime-local input keeps it."""
    return utc_to_local(moment, zone).replace(second=0, microsecond=0)


def render_edit_release(release: Release, form: EditReleaseForm, locked: bool, status: int = 200):
    page = render_template(
        "producer/edit_release.html",
        release=release,
        batch=release.batch,
        form=form,
        locked=locked,
        zone_name=shop_zone().key,
    )
    return page, status


@bp.get("/releases/<int:release_id>/edit")
def edit_release(release_id: int):
    """The form to change a release's terms; price and count are locked once anything was held or sold."""
    release = get_release_or_404(release_id)
    locked = release_rules.has_commitments(db.session, release.id)
    return render_edit_release(release, edit_form_for(release, locked), locked)


@bp.post("/releases/<int:release_id>/edit")
def update_release(release_id: int):
    """Save a release's new terms, or show the form again with what to fix (nothing is changed)."""
    release = get_release_or_404(release_id)
    locked = release_rules.has_commitments(db.session, release.id)
    form = edit_form_for(release, locked)
    if not form.validate_on_submit():
        return render_edit_release(release, form, locked, 422)
    terms = form.terms()
    zone = shop_zone()
    # A time left as it was keeps its stored moment: a wall time the clocks pass twice would otherwise move to its
    # first occurrence on every save.
    if form.on_sale_at.data == shown_as(release.on_sale_at, zone):
        terms = replace(terms, on_sale_at=release.on_sale_at)
    if release.off_sale_at is not None and form.off_sale_at.data == shown_as(release.off_sale_at, zone):
        terms = replace(terms, off_sale_at=release.off_sale_at)
    if release.early_access_at is not None and form.early_access_at.data == shown_as(release.early_access_at, zone):
        terms = replace(terms, early_access_at=release.early_access_at)
    try:
        with write_transaction(db.session):
            release_rules.update_release(db.session, release.id, terms, clock.now(), actor())
    except ReleaseNotFound:
        abort(404, description="There is no such release in the workspace.")
    except InvalidReleaseTerms as refusal:
        form.add_problems(refusal.problems)
        release = get_release_or_404(release_id)
        return render_edit_release(release, form, release_rules.has_commitments(db.session, release.id), 422)
    except IntegrityError:
        if slug_lost_race(form, terms.slug):
            return render_edit_release(get_release_or_404(release_id), form, locked, 409)
        raise
    forget_cached_answers(release_id)
    flash("Your changes are saved.", "success")
    for note in form.notes():
        flash(note, "info")
    return redirect(url_for("producer.show_release", release_id=release_id), code=303)


# --- Numbers kept back ------------------------------------------------------------------------------------------


@bp.post("/releases/<int:release_id>/withhold")
def withhold_numbers(release_id: int):
    """Keep numbers back from sale (No. 1 for the distillery's shelf); held or sold numbers are refused by name."""
    release = get_release_or_404(release_id)
    form = WithholdForm(prefix="withhold")
    if not form.validate_on_submit():
        return render_release_page(release, 422, withhold_form=form)
    try:
        with write_transaction(db.session):
            changed = release_rules.withhold_numbers(db.session, release.id, form.parsed, clock.now(), actor())
    except NumbersUnavailable as refusal:
        form.numbers.errors = [*form.numbers.errors, refusal.message]
        return render_release_page(get_release_or_404(release_id), 422, withhold_form=form)
    forget_cached_answers(release_id)  # the release page names and counts the numbers kept back
    if changed:
        flash(f"Kept back from sale: {describe_numbers(changed)}.", "success")
    else:
        flash("Those numbers were already kept back.", "info")
    return redirect(url_for("producer.show_release", release_id=release_id, _anchor="kept-back"), code=303)


@bp.post("/releases/<int:release_id>/return")
def return_numbers(release_id: int):
    """Put numbers kept back on sale again."""
    release = get_release_or_404(release_id)
    form = ReturnForm(prefix="return")
    if not form.validate_on_submit():
        return render_release_page(release, 422, return_form=form)
    try:
        with write_transaction(db.session):
            changed = release_rules.return_withheld_numbers(db.session, release.id, form.parsed, clock.now(), actor())
    except NumbersUnavailable as refusal:
        form.numbers.errors = [*form.numbers.errors, refusal.message]
        return render_release_page(get_release_or_404(release_id), 422, return_form=form)
    forget_cached_answers(release_id)  # the numbers are free again: not sold out any more
    if changed:
        flash(f"Back on sale: {describe_numbers(changed)}.", "success")
    else:
        flash("Those numbers were already on sale.", "info")
    return redirect(url_for("producer.show_release", release_id=release_id, _anchor="kept-back"), code=303)


# --- Pausing ----------------------------------------------------------------------------------------------------


@bp.post("/releases/<int:release_id>/pause")
def pause_release(release_id: int):
    """Stop claims on a release until it is resumed (buyers see it paused)."""
    return change_pause(release_id, release_rules.pause_release, "Paused: buyers cannot reserve until you resume.")


@bp.post("/releases/<int:release_id>/resume")
def resume_release(release_id: int):
    """Let buyers reserve again."""
    return change_pause(release_id, release_rules.resume_release, "Resumed: buyers can reserve again.")


def change_pause(release_id: int, action, message: str):
    release = get_release_or_404(release_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="This form has expired; go back, reload the page and try again.")
    with write_transaction(db.session):
        action(db.session, release.id, clock.now(), actor())
    forget_cached_answers(release_id)
    flash(message, "success")
    return redirect(url_for("producer.show_release", release_id=release_id), code=303)
