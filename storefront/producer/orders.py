"""The producer's orders: the filtered list with bulk packing and shipping, and one order's page.

Each action validates its form, calls one domain function (storefront.domain.shipping, storefront.domain.orders)
in a write transaction, queues the buyer's mail in the same transaction when the domain says so, then redirects
(303). A refused action shows its page again with the reason (422) and nothing written. The blueprint's guard
admits only producers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from storefront import clock, payment_backend
from storefront.domain.activity import Actor
from storefront.domain.orders import (
    InvalidNote,
    OrderNotFound,
    OrdersPage,
    add_order_note,
    display_status,
    numbers_text,
    page_of_orders,
)
from storefront.domain.refunds import REFUND_REASONS
from storefront.domain.shipping import (
    CARRIERS_BY_CODE,
    FulfilmentRefused,
    InvalidTracking,
    Tracking,
    carrier_name,
    check_tracking,
    mark_packed,
    numbers_to_ship,
    ship_orders,
)
from storefront.extensions import db
from storefront.models import Batch, FulfilmentStatus, Order, OrderStatus, OutboxMessage, Refund, Release, Unit
from storefront.producer import bp
from storefront.producer.order_filters import ReadFilter, read_order_filter
from storefront.producer.order_forms import (
    BULK_MAX,
    ActionForm,
    BulkForm,
    NoteForm,
    ShipForm,
    TamperedSelection,
    selected_order_ids,
    typed_tracking_numbers,
)
from storefront.producer.order_mail import queue_shipping_mails, shipping_address_lines
from storefront.shop_time import shop_time, shop_zone
from storefront.text import format_money
from storefront.unit_of_work import write_transaction

STRIPE_PAYMENTS = {
    "stripe-live": "https://dashboard.stripe.com/payments/{}",
    "stripe-test": "https://dashboard.stripe.com/test/payments/{}",
}
# The query arguments of the list (its filter and its page), carried through the bulk action and back.
LIST_ARGUMENTS = ("release", "status", "placed_from", "placed_to", "q", "before", "after")
# Words for an order's refund as the page shows them.
REFUND_STATUS_WORDS = {
    "pending": "waiting to be sent",
    "sending": "being sent",
    "succeeded": "refunded",
    "failed": "failed",
}
# Why a refund was made, in words; a reason not listed is shown as it is stored.
REFUND_REASON_WORDS = {
    **{code: label.lower() for code, label in REFUND_REASONS.items()},
    "units_unavailable": "paid too late: no numbers left",
    "stripe_dashboard": "made in Stripe's dashboard",
}
# Words for what happened on an order's timeline, by the event's kind; other kinds are shown as they are.
EVENT_WORDS = {
    "paid": "Paid",
    "reassigned": "Numbers reassigned",
    "packed": "Packed",
    "shipped": "Shipped",
    "shipping_corrected": "Tracking corrected",
    "note": "Note",
    "refund_requested": "Refund asked for",
    "refunded": "Refunded",
    "refund_failed": "Refund failed",
    "refund_delayed": "Refund delayed",
    "refund_matched": "Refund seen in Stripe",
}


def actor() -> Actor:
    return Actor.of(current_user)


def link_if_built(endpoint: str, **values) -> str | None:
    """A link to a page another part of the workspace provides, or None while it does not exist."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


# --- The list --------------------------------------------------------------------------------------------------


def release_choices() -> list[tuple[str, str]]:
    """Every release as (id, "Batch title: Release title"), newest on sale first, for the filter."""
    rows = db.session.execute(
        select(Release.id, Release.title, Batch.title)
        .join(Batch, Batch.id == Release.batch_id)
        .order_by(Release.on_sale_at.desc(), Release.id.desc())
    )
    return [(str(release_id), f"{batch_title}: {title}") for release_id, title, batch_title in rows]


@dataclass(frozen=True)
class OrderRow:
    """One order as a line of the list, written out."""

    order: Order
    placed: str
    numbers: str
    amount: str
    status: str
    # Can it still be packed or shipped (its money is not going back)?
    movable: bool


def order_rows(orders: list[Order]) -> list[OrderRow]:
    """Write out a page of orders, with every order's numbers (and runs' sizes) read in one query each."""
    numbers: dict[int, list[int]] = {order.id: [] for order in orders}
    totals: dict[int, int] = {}
    if orders:
        rows = db.session.execute(
            select(Unit.order_id, Unit.number).where(Unit.order_id.in_(numbers)).order_by(Unit.order_id, Unit.number)
        )
        for order_id, number in rows:
            numbers[order_id].append(number)
        release_ids = {order.release_id for order in orders}
        totals = dict(
            db.session.execute(select(Release.id, Release.total_units).where(Release.id.in_(release_ids))).all()
        )
    return [
        OrderRow(
            order=order,
            placed=shop_time(order.created_at),
            numbers=numbers_text(numbers[order.id], totals[order.release_id]),
            amount=format_money(order.amount_total, order.currency),
            status=display_status(order),
            movable=order.status == OrderStatus.PAID,
        )
        for order in orders
    ]


@dataclass
class BulkState:
    """What the producer sent with the list's action form, kept to show it again when it is refused."""

    form: BulkForm
    selected: set[int]
    typed: dict[int, str]
    problems: list[str]
    row_problems: dict[int, str]


def read_list_request(args: MultiDict) -> tuple[ReadFilter, OrdersPage, dict[str, object]]:
    """The filter, the page of orders it asks for, and the arguments that lead back to this very page."""
    read = read_order_filter(args, release_choices())
    before_id = cursor_argument(args, "before", read)
    after_id = cursor_argument(args, "after", read) if before_id is None else None
    page = page_of_orders(
        db.session,
        read.wanted,
        before_id=before_id,
        after_id=after_id,
        limit=current_app.config.get("ORDERS_PAGE_SIZE", 50),
    )
    if page.cursor_lost:
        read.problems.append("That page of the list no longer exists: here are the newest orders.")
    here = dict(read.args)
    if before_id is not None and not page.cursor_lost:
        here["before"] = before_id
    elif after_id is not None and not page.cursor_lost:
        here["after"] = after_id
    return read, page, here


def cursor_argument(args: MultiDict, name: str, read: ReadFilter) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and len(raw) < 10:
        return int(raw)
    read.problems.append("That page link is broken: here are the newest orders.")
    return None


def render_orders_list(bulk: BulkState | None = None, status: int = 200):
    read, page, here = read_list_request(request.args)
    if bulk is None:
        bulk = BulkState(BulkForm(formdata=None), set(), {}, [], {})
    filter_args = read.args
    page_args = {}
    if page.has_newer and page.orders:
        page_args["newer"] = url_for("producer.list_orders", **filter_args, after=page.orders[0].id)
    if page.has_older and page.orders:
        page_args["older"] = url_for("producer.list_orders", **filter_args, before=page.orders[-1].id)
    rows = order_rows(page.orders)
    body = render_template(
        "producer/list_orders.html",
        read_filter=read,
        page=page,
        rows=rows,
        bulk=bulk,
        bulk_action_url=url_for("producer.bulk_update_orders", **here),
        pager=page_args,
        csv_url=link_if_built("producer.export_orders_csv", **filter_args),
        packing_sheet_url=link_if_built("producer.show_packing_sheet", **filter_args),
        filtered=bool(filter_args),
        zone_name=shop_zone().key,
        any_movable=any(row.movable for row in rows),
    )
    return body, status


@bp.get("/orders")
def list_orders():
    """Every order, newest first, 50 a page: filter by release, status, date and text; pack or ship a selection."""
    return render_orders_list()


@bp.post("/orders/bulk")
def bulk_update_orders():
    """Mark the ticked orders packed, or shipped with a carrier and each parcel's tracking number; all or nothing."""
    form = BulkForm()
    try:
        order_ids = selected_order_ids(request.form)
    except TamperedSelection:
        abort(404, description="There is no such order.")
    typed = typed_tracking_numbers(request.form)
    bulk = BulkState(form, set(order_ids), typed, [], {})
    if not form.validate_on_submit():
        bulk.problems.extend(f"{form[name].label.text}: {messages[0]}" for name, messages in form.errors.items())
        return render_orders_list(bulk, 422)
    if not order_ids:
        bulk.problems.append("Tick at least one order first.")
        return render_orders_list(bulk, 422)
    if len(order_ids) > BULK_MAX:
        bulk.problems.append(f"At most {BULK_MAX} orders can be changed at once.")
        return render_orders_list(bulk, 422)
    shipments = None
    if form.action.data == "shipped":
        shipments = bulk_shipments(form.carrier.data, order_ids, typed, bulk)
        if shipments is None:
            return render_orders_list(bulk, 422)
    try:
        with write_transaction(db.session):
            if shipments is None:
                changed = len(mark_packed(db.session, order_ids, clock.now(), actor()))
            else:
                notices = ship_orders(db.session, shipments, clock.now(), actor())
                queue_shipping_mails(db.session, notices)
                changed = len(notices)
    except OrderNotFound:
        abort(404, description="There is no such order.")
    except FulfilmentRefused as refusal:
        bulk.problems.append(refusal.message)
        return render_orders_list(bulk, 422)
    flash(bulk_outcome(form.action.data, changed, len(order_ids)), "success")
    back = {name: value for name, value in request.args.items() if name in LIST_ARGUMENTS}
    return redirect(url_for("producer.list_orders", **back), code=303)


def bulk_shipments(carrier_code: str, order_ids: list[int], typed: dict[int, str], bulk: BulkState):
    """Each ticked order's checked tracking, or None with the problems noted on `bulk` (per row where they are)."""
    carrier = CARRIERS_BY_CODE.get(carrier_code or "")
    if carrier is None or carrier.url_typed:
        bulk.problems.append("Choose a carrier from the list (an Other carrier is shipped from each order's page).")
        return None
    shipments: dict[int, Tracking] = {}
    missing = []
    references = dict(db.session.execute(select(Order.id, Order.reference).where(Order.id.in_(order_ids))).all())
    for order_id in order_ids:
        try:
            shipments[order_id] = check_tracking(carrier.code, typed.get(order_id, ""))
        except InvalidTracking as refusal:
            problem = refusal.problems.get("tracking_number") or " ".join(refusal.problems.values())
            bulk.row_problems[order_id] = problem
            if not typed.get(order_id):
                missing.append(references.get(order_id, str(order_id)))
    if bulk.row_problems:
        if missing:
            bulk.problems.append(
                f"{carrier.name} parcels have tracking numbers: type one in the row of "
                f"{', '.join(sorted(missing))}. Nothing was changed."
            )
        if len(missing) < len(bulk.row_problems):
            bulk.problems.append("Some tracking numbers are not as a label prints them: see the marked rows.")
        return None
    return shipments


def bulk_outcome(action: str, changed: int, selected: int) -> str:
    """ "Marked 3 orders shipped.", with a word for those that were already so."""
    orders = "order" if changed == 1 else "orders"
    if not changed:
        return f"Nothing to change: the orders were already {action}."
    text = f"Marked {changed} {orders} {action}."
    unchanged = selected - changed
    if unchanged:
        text += f" {unchanged} {'was' if unchanged == 1 else 'were'} already {action}."
    return text


# --- One order -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an order's story: something that happened to it, or a mail the shop sent about it."""

    when: datetime
    when_text: str
    title: str
    summary: str
    who: str
    kind: str
    mail: OutboxMessage | None = None
    sent_text: str = ""


def order_timeline(order: Order, mails: list[OutboxMessage]) -> list[TimelineEntry]:
    """The order's events and its mails, oldest first (an event before the mail it caused at the same moment)."""
    entries = [
        (
            (event.occurred_at, 0, event.id),
            TimelineEntry(
                when=event.occurred_at,
                when_text=shop_time(event.occurred_at),
                title=EVENT_WORDS.get(event.kind, event.kind.replace("_", " ").capitalize()),
                summary=event.summary,
                who=event.actor_email or "the shop",
                kind=event.kind,
            ),
        )
        for event in order.events
    ]
    entries += [
        (
            (mail.created_at, 1, mail.id),
            TimelineEntry(
                when=mail.created_at,
                when_text=shop_time(mail.created_at),
                title="Mail",
                summary=mail.subject,
                who=mail.recipient,
                kind="mail",
                mail=mail,
                sent_text=f"sent {shop_time(mail.sent_at)}" if mail.sent_at else "waiting to send",
            ),
        )
        for mail in mails
    ]
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]


@dataclass(frozen=True)
class RefundView:
    refund: Refund
    amount: str
    status: str
    reason: str
    lines: list[str]


def refund_views(order: Order) -> list[RefundView]:
    total = order.release.total_units
    views = []
    for refund in order.refunds:
        lines = []
        for line in refund.lines:
            if line.voided_at is not None:
                fate = "not refunded after all"
            elif line.return_to_sale:
                fate = "returned to sale" if line.returned_at else "to be returned to sale once refunded"
            else:
                fate = "retired (stays with the order)"
            lines.append(f"{numbers_text([line.number], total)}: {fate}")
        views.append(
            RefundView(
                refund=refund,
                amount=format_money(refund.amount, refund.currency),
                status=REFUND_STATUS_WORDS.get(refund.status, refund.status),
                reason=REFUND_REASON_WORDS.get(refund.reason, refund.reason.replace("_", " ")),
                lines=lines,
            )
        )
    return views


def stripe_payment_url(payment_intent_id: str | None) -> str | None:
    """The payment's page in Stripe's dashboard (live or test mode); none for the simulator."""
    template = STRIPE_PAYMENTS.get(payment_backend(current_app))
    if template is None or not payment_intent_id:
        return None
    return template.format(payment_intent_id)


def get_order_or_404(order_id: int) -> Order:
    order = db.session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .options(
            selectinload(Order.release).selectinload(Release.batch),
            selectinload(Order.units),
            selectinload(Order.refunds).selectinload(Refund.lines),
            selectinload(Order.events),
        )
    )
    if order is None:
        abort(404, description="There is no such order.")
    return order


def render_order(order_id: int, status: int = 200, **forms):
    order = get_order_or_404(order_id)
    mails = list(
        db.session.scalars(select(OutboxMessage).where(OutboxMessage.order_id == order.id).order_by(OutboxMessage.id))
    )
    release = order.release
    to_ship = numbers_to_ship(db.session, [order.id])[order.id]
    owned = [unit.number for unit in order.units]
    ship_form = forms.get("ship_form")
    if ship_form is None:
        ship_form = ShipForm(formdata=None)
        if order.fulfilment_status == FulfilmentStatus.SHIPPED:
            ship_form.carrier.data = order.carrier
            ship_form.tracking_number.data = order.tracking_number
            if CARRIERS_BY_CODE.get(order.carrier) and CARRIERS_BY_CODE[order.carrier].url_typed:
                ship_form.tracking_url.data = order.tracking_url
    refunded = sum(refund.amount for refund in order.refunds if refund.status == "succeeded")
    body = render_template(
        "producer/show_order.html",
        order=order,
        release=release,
        batch=release.batch,
        status=display_status(order),
        placed=shop_time(order.created_at),
        numbers=numbers_text(owned, release.total_units),
        numbers_to_ship=numbers_text(to_ship, release.total_units) if to_ship != tuple(owned) else None,
        can_move=order.status == OrderStatus.PAID and bool(to_ship),
        unit_price=format_money(order.unit_amount, order.currency),
        amount=format_money(order.amount_total, order.currency),
        refunded=format_money(refunded, order.currency) if refunded else None,
        refunds=refund_views(order),
        address=shipping_address_lines(order),
        stripe_url=stripe_payment_url(order.payment_intent_id),
        carrier=carrier_name(order.carrier) if order.carrier else "",
        packed_at=shop_time(order.packed_at),
        shipped_at=shop_time(order.shipped_at),
        timeline=order_timeline(order, mails),
        refund_url=link_if_built("producer.new_refund", order_id=order.id),
        note_form=forms.get("note_form") or NoteForm(formdata=None),
        ship_form=ship_form,
        action_form=ActionForm(),
        problems=forms.get("problems", []),
        zone_name=shop_zone().key,
    )
    return body, status


@bp.get("/orders/<int:order_id>")
def show_order(order_id: int):
    """One order: buyer, address, numbers, money, refunds, Stripe ids, its timeline; pack, ship, note, refund."""
    return render_order(order_id)


@bp.post("/orders/<int:order_id>/notes")
def add_note(order_id: int):
    """Write a note on the order's timeline."""
    get_order_or_404(order_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return render_order(order_id, 422, note_form=form)
    try:
        with write_transaction(db.session):
            add_order_note(db.session, order_id, form.text.data, clock.now(), actor())
    except InvalidNote as refusal:
        form.text.errors = [*form.text.errors, refusal.message]
        return render_order(order_id, 422, note_form=form)
    flash("Note added.", "success")
    return redirect(url_for("producer.show_order", order_id=order_id, _anchor="timeline"), code=303)


@bp.post("/orders/<int:order_id>/packed")
def mark_order_packed(order_id: int):
    """Mark one order packed."""
    get_order_or_404(order_id)
    form = ActionForm()
    if not form.validate_on_submit():
        return render_order(order_id, 422, problems=["This form has expired. Please submit it again."])
    try:
        with write_transaction(db.session):
            changed = mark_packed(db.session, [order_id], clock.now(), actor())
    except FulfilmentRefused as refusal:
        return render_order(order_id, 422, problems=[refusal.message])
    flash("Marked packed." if changed else "It was packed already.", "success")
    return redirect(url_for("producer.show_order", order_id=order_id), code=303)


@bp.post("/orders/<int:order_id>/shipped")
def mark_order_shipped(order_id: int):
    """Mark one order shipped (or correct its tracking); its buyer gets the "on its way" mail once."""
    get_order_or_404(order_id)
    form = ShipForm()
    tracking = form.tracking() if form.validate_on_submit() else None
    if tracking is None:
        return render_order(order_id, 422, ship_form=form)
    try:
        with write_transaction(db.session):
            notices = ship_orders(db.session, {order_id: tracking}, clock.now(), actor())
            queue_shipping_mails(db.session, notices)
    except FulfilmentRefused as refusal:
        return render_order(order_id, 422, ship_form=form, problems=[refusal.message])
    if not notices:
        flash("Nothing changed: it was shipped with these details already.", "info")
    elif notices[0].corrected:
        flash("Tracking corrected; the buyer is told the new details.", "success")
    else:
        flash("Marked shipped; the buyer is told it is on its way.", "success")
    return redirect(url_for("producer.show_order", order_id=order_id), code=303)
