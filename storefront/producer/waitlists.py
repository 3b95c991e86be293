"""The producer's waitlists: every list with how its offers converted, one list's entries, its CSV, removing an
entry, and pausing a release's offers.

Each action checks its form, calls one domain function (storefront.domain.waitlist) in a write transaction, then
redirects (303) to the list. Removing a waiter who has a live offer withdraws it afterwards, through the one flow
every hold ending takes (storefront.checkout.flows.end_hold), which passes the number to the next in line. The
blueprint's guard admits only producers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from flask import Response, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.checkout import flows
from storefront.domain import waitlist
from storefront.domain.activity import Actor
from storefront.domain.exports import local_text, neutralise_formula, number_of_run
from storefront.domain.waitlist import EntryRow, ListSummary, UnknownEntry
from storefront.extensions import db
from storefront.models import Batch, OfferStatus, Product, Release, WaitlistEntry, WaitlistStatus
from storefront.payments import PaymentError, gateway
from storefront.producer import bp
from storefront.producer.exports import UTF8_BOM
from storefront.producer.releases import get_release_or_404
from storefront.producer.waitlist_forms import WaitlistActionForm
from storefront.shop_time import shop_time, shop_zone
from storefront.unit_of_work import write_transaction

ENTRY_STATUS_WORDS = {
    WaitlistStatus.PENDING: "waiting to confirm",
    WaitlistStatus.CONFIRMED: "confirmed",
    WaitlistStatus.UNSUBSCRIBED: "unsubscribed",
    WaitlistStatus.REMOVED: "removed",
}
OFFER_STATUS_WORDS = {
    OfferStatus.LIVE: "offered, waiting for an answer",
    OfferStatus.CLAIMED: "paying",
    OfferStatus.PURCHASED: "bought",
    OfferStatus.DECLINED: "declined",
    OfferStatus.LAPSED: "ran out of time",
    OfferStatus.WITHDRAWN: "withdrawn",
    OfferStatus.SKIPPED: "passed over",
}
EXPIRED_FORM = "This form has expired; go back, reload the page and try again."


def actor() -> Actor:
    return Actor.of(current_user)


def conversion_text(summary: ListSummary) -> str:
    """Orders per offer made as a percentage ("50%"), or a dash before any offer."""
    return "–" if summary.conversion is None else f"{summary.conversion:.0%}"


def list_title(product: Product, release: Release | None) -> str:
    if release is None:
        return f"{product.name}: next batches"
    return f"{product.name}: {release.batch.title}, {release.title}"


def list_url(product_id: int, release_id: int | None, endpoint: str = "show") -> str:
    """A list's page (or, with endpoint "export", its CSV)."""
    if release_id is None:
        return url_for(f"producer.{endpoint}_product_waitlist", product_id=product_id)
    return url_for(f"producer.{endpoint}_release_waitlist", release_id=release_id)


# --- Every list ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListLine:
    summary: ListSummary
    title: str
    url: str
    conversion: str


@bp.get("/waitlists")
def list_waitlists():
    """Every waitlist: how many wait, how many offers went out, were claimed and became orders."""
    lines = [
        ListLine(
            summary=summary,
            title=list_title(summary.product, summary.release),
            url=list_url(summary.product.id, summary.release.id if summary.release else None),
            conversion=conversion_text(summary),
        )
        for summary in waitlist.summarise_lists(db.session)
    ]
    return render_template("producer/list_waitlists.html", lines=lines)


# --- One list --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryLine:
    """One entry as the list's page and its CSV write it out."""

    row: EntryRow
    status: str
    joined: str
    confirmed: str
    offer_number: str
    offer_status: str
    offer_until: str
    removable: bool

    @property
    def entry(self) -> WaitlistEntry:
        return self.row.entry


def entry_lines(rows: Iterable[EntryRow], release: Release | None) -> list[EntryLine]:
    lines = []
    for row in rows:
        entry, offer = row.entry, row.offer
        offer_number = offer_status = offer_until = ""
        if offer is not None:
            offer_number = number_of_run(offer.number, release.total_units) if release else ""
            offer_status = OFFER_STATUS_WORDS.get(offer.status, offer.status)
            if offer.status == OfferStatus.SKIPPED and offer.note:
                offer_status = f"{offer_status}: {offer.note}"
            if offer.status == OfferStatus.LIVE:
                # Its time starts when the worker mails it; until then the number is simply held for them.
                offer_until = f"until {shop_time(offer.expires_at)}" if offer.expires_at else "mail on its way"
        lines.append(
            EntryLine(
                row=row,
                status=ENTRY_STATUS_WORDS.get(entry.status, entry.status),
                joined=shop_time(entry.created_at),
                confirmed=shop_time(entry.confirmed_at),
                offer_number=offer_number,
                offer_status=offer_status,
                offer_until=offer_until,
                removable=entry.status in (WaitlistStatus.PENDING, WaitlistStatus.CONFIRMED),
            )
        )
    return lines


def get_product_or_404(product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        abort(404, description="There is no such product in the workspace.")
    return product


def render_list(product: Product, release: Release | None):
    rows = waitlist.list_entries(
        db.session, release_id=release.id if release else None, product_id=None if release else product.id
    )
    release_id = release.id if release else None
    summary = waitlist.summarise_list(db.session, product, release)
    return render_template(
        "producer/show_waitlist.html",
        product=product,
        release=release,
        title=list_title(product, release),
        summary=summary,
        conversion=conversion_text(summary),
        lines=entry_lines(rows, release),
        csv_url=list_url(product.id, release_id, "export"),
        action_form=WaitlistActionForm(),
        offers_open=release is not None and waitlist.offers_open(release, clock.now()),
        offer_minutes=current_app.config["WAITLIST_OFFER_MINUTES"],
        shop_time=shop_time,
    )


@bp.get("/waitlists/releases/<int:release_id>")
def show_release_waitlist(release_id: int):
    """One release's list: its waiters in line order with their offers; remove, pause offers, export."""
    release = get_release_or_404(release_id)
    return render_list(release.batch.product, release)


@bp.get("/waitlists/products/<int:product_id>")
def show_product_waitlist(product_id: int):
    """A product's list (waiting for its next batches): its entries; remove, export."""
    return render_list(get_product_or_404(product_id), None)


# --- The CSV ---------------------------------------------------------------------------------------------------------


def waitlist_csv(lines: list[EntryLine]) -> str:
    """The list as CSV text, every cell quoted and formula-neutralised, as the orders export writes it.

    Built whole rather than streamed: a list is people who asked to be told, thousands at most, not every unit.
    """
    zone = shop_zone()
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    buffer.write(UTF8_BOM)
    writer.writerow(
        (
            "Position",
            "Email",
            "Name",
            "Status",
            f"Joined ({zone.key})",
            f"Confirmed ({zone.key})",
            "Offer number",
            "Offer status",
        )
    )
    for line in lines:
        entry, offer = line.entry, line.row.offer
        cells = (
            "" if line.row.position is None else str(line.row.position),
            entry.email,
            entry.name,
            line.status,
            local_text(entry.created_at, zone),
            local_text(entry.confirmed_at, zone),
            "" if offer is None or offer.number is None else str(offer.number),
            line.offer_status,
        )
        writer.writerow([neutralise_formula(cell) for cell in cells])
    return buffer.getvalue()


def csv_response(text: str, name: str) -> Response:
    filename = f"waitlist-{name}-{clock.now().astimezone(shop_zone()):%Y-%m-%d}.csv"
    response = Response(text.encode("utf-8"), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Names and addresses: not for shared caches, nor for the browser's.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/waitlists/releases/<int:release_id>.csv")
def export_release_waitlist(release_id: int):
    """Download a release's list as CSV."""
    release = get_release_or_404(release_id)
    rows = waitlist.list_entries(db.session, release_id=release.id)
    return csv_response(waitlist_csv(entry_lines(rows, release)), release.slug)


@bp.get("/waitlists/products/<int:product_id>.csv")
def export_product_waitlist(product_id: int):
    """Download a product's list (its next batches) as CSV."""
    product = get_product_or_404(product_id)
    rows = waitlist.list_entries(db.session, product_id=product.id)
    return csv_response(waitlist_csv(entry_lines(rows, None)), f"{product.slug}-next-batches")


# --- Changing a list -------------------------------------------------------------------------------------------------


def get_entry_or_404(entry_id: int) -> WaitlistEntry:
    entry = db.session.scalar(
        select(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id)
        .options(selectinload(WaitlistEntry.release).selectinload(Release.batch).selectinload(Batch.product))
    )
    if entry is None:
        abort(404, description="There is no such waitlist entry.")
    return entry


def withdraw_offer_holds(hold_ids: list[int]) -> bool:
    """End the holds of a removed waiter's live offers, so their numbers pass to the next in line; False when the
    gateway could not be reached for one (the sweeper ends it when its time runs out)."""
    ended = True
    for hold_id in hold_ids:
        try:
            flows.end_hold(db.session, gateway(), hold_id, "withdrawn", clock.now())
        except PaymentError:
            current_app.logger.warning("Could not end offer hold %s yet; the sweeper will", hold_id)
            ended = False
    return ended


@bp.post("/waitlists/entries/<int:entry_id>/remove")
def remove_waitlist_entry(entry_id: int):
    """Take an entry off its list; a live offer it had is withdrawn and its number goes to the next in line."""
    entry = get_entry_or_404(entry_id)
    back = list_url(entry.product_id, entry.release_id)
    if not WaitlistActionForm().validate_on_submit():
        abort(400, description=EXPIRED_FORM)
    email = entry.email
    try:
        with write_transaction(db.session):
            hold_ids = waitlist.remove_entry(db.session, entry_id, clock.now(), actor())
    except UnknownEntry:
        abort(404, description="There is no such waitlist entry.")
    message = f"Removed {email} from the list."
    if hold_ids and withdraw_offer_holds(hold_ids):
        message += " Their offer is withdrawn; the number goes to the next in line."
    elif hold_ids:
        message += " Their offer is withdrawn; its number goes to the next in line within a few minutes."
    flash(message, "success")
    return redirect(back, code=303)


@bp.post("/waitlists/releases/<int:release_id>/pause")
def pause_offers(release_id: int):
    """Stop offering this release's freed numbers to its list: they go on public sale instead."""
    return change_offers_paused(
        release_id, True, "Offers paused: numbers that come free go back on public sale until you resume."
    )


@bp.post("/waitlists/releases/<int:release_id>/resume")
def resume_offers(release_id: int):
    """Offer freed numbers to the list again, starting with any on public sale now."""
    return change_offers_paused(release_id, False, "Offers resumed: numbers that come free go to the next in line.")


def change_offers_paused(release_id: int, paused: bool, message: str):
    release = get_release_or_404(release_id)
    if not WaitlistActionForm().validate_on_submit():
        abort(400, description=EXPIRED_FORM)
    with write_transaction(db.session):
        waitlist.set_offers_paused(db.session, release.id, paused, clock.now(), actor())
    flash(message, "success")
    return redirect(url_for("producer.show_release_waitlist", release_id=release_id), code=303)
