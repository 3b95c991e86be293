"""Refunding an order, or some of its units, from the producer's workspace.

The page lists the order's units with a "refund" and a "return to sale" box each, the reason, and the amount. The
POST asks the domain for the refund (`storefront.domain.refunds.request_refund`) in one transaction, then sends it
to Stripe once at once, through the worker's own path (`storefront.checkout.flows.process_refund`: same lease, same
idempotency key), so the producer learns the outcome on the spot: refunded, refused (the order is as it was), or
not answered (the worker retries). The blueprint's guard admits only producers.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from storefront import clock
from storefront.checkout import flows
from storefront.domain.activity import Actor, record_activity
from storefront.domain.orders import numbers_text
from storefront.domain.refunds import REFUND_REASONS, RefundOptions, RefundRefused, refund_options, request_refund
from storefront.extensions import db
from storefront.models import Batch, OfferStatus, Order, Refund, RefundStatus, Release, WaitlistOffer
from storefront.payments import PaymentError, gateway
from storefront.producer import bp
from storefront.producer.refund_forms import RefundForm
from storefront.text import format_money
from storefront.unit_of_work import write_transaction

# Where a producer lands after a refund, best first: the order's page may not exist in every build of the workspace.
ORDER_PAGES = ("producer.show_order", "producer.list_orders", "producer.show_dashboard")


# Ids are 32-bit integers in the database; a longer number in the URL names no order (and must not reach the driver).
LARGEST_ID = 2**31 - 1


def get_order_or_404(order_id: int) -> Order:
    if not 0 < order_id <= LARGEST_ID:
        abort(404, description="There is no such order.")
    order = db.session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.release).selectinload(Release.batch).selectinload(Batch.product))
    )
    if order is None:
        abort(404, description="There is no such order.")
    return order


def order_page_url(order_id: int) -> str:
    """The order's page in the workspace, or the nearest page that exists."""
    for endpoint in ORDER_PAGES:
        if endpoint not in current_app.view_functions:
            continue
        try:
            return url_for(endpoint, order_id=order_id) if endpoint == "producer.show_order" else url_for(endpoint)
        except BuildError:
            continue
    return url_for("producer.show_dashboard")


def refund_form(options: RefundOptions) -> RefundForm:
    form = RefundForm()
    form.offer_units([unit.unit_id for unit in options.refundable_units])
    return form


def render_refund_page(order: Order, options: RefundOptions, form: RefundForm, status: int = 200):
    unit_amount = 0 if options.whole_order else order.unit_amount
    page = render_template(
        "producer/new_refund.html",
        order=order,
        release=order.release,
        options=options,
        form=form,
        reasons=REFUND_REASONS,
        order_url=order_page_url(order.id),
        unit_price=format_money(order.unit_amount, order.currency),
        # What ticking 0, 1, 2... units refunds, written by the server so the page's script only picks one.
        amounts=[format_money(amount, order.currency) for amount in refund_amounts(options, unit_amount)],
        shipping=format_money(order.shipping_amount, order.currency) if order.shipping_amount else "",
        money=lambda amount: format_money(amount, order.currency),
        ticked=set(form.refund.data or ()),
        returning=set(form.return_to_sale.data or ()),
    )
    return page, status


def refund_amounts(options: RefundOptions, unit_amount: int) -> list[int]:
    """What ticking 0, 1, 2... units refunds: ticking every one left also returns the shipping (all that is left)."""
    refundable = len(options.refundable_units)
    amounts = [count * unit_amount for count in range(refundable + 1)]
    if refundable:
        amounts[-1] = max(options.remaining, amounts[-1])
    return amounts


@bp.route("/orders/<int:order_id>/refund", methods=["GET", "POST"])
def new_refund(order_id: int):
    """Refund an order, whole or some of its units (each retired, or back on sale), through Stripe, at once."""
    order = get_order_or_404(order_id)
    options = refund_options(db.session, order)
    form = refund_form(options)
    if request.method == "GET":
        return render_refund_page(order, options, form)
    if not options.can_refund:
        form.form_errors.append(options.why_not)
        return render_refund_page(order, options, form, 422)
    if not form.validate_on_submit():
        return render_refund_page(order, options, form, 422)
    now = clock.now()
    try:
        with write_transaction(db.session):
            refund = request_refund(
                db.session,
                order.id,
                form.refund.data or [],
                form.return_to_sale.data or [],
                form.reason.data,
                now,
                current_user.email,
                note=form.note.data or "",
            )
            record_activity(
                db.session,
                Actor.of(current_user),
                "order.refund",
                "order",
                order.id,
                f"Asked for a refund of {format_money(refund.amount, refund.currency)} on order {order.reference}",
                now,
            )
            refund_id = refund.id
    except RefundRefused as refusal:
        form.form_errors.append(refusal.message)
        order = get_order_or_404(order_id)
        return render_refund_page(order, refund_options(db.session, order), form, 422)
    except IntegrityError:
        # The partial unique index on live refund lines: another refund of these units committed first.
        form.form_errors.append("Another refund of these units was just asked for; reload the page to see it.")
        order = get_order_or_404(order_id)
        return render_refund_page(order, refund_options(db.session, order), form, 409)
    category, message = send_refund_now(refund_id)
    flash(message, category)
    return redirect(order_page_url(order_id), code=303)


def send_refund_now(refund_id: int) -> tuple[str, str]:
    """Make the refund's first attempt now, as the worker would; say what came of it (a flash category and text)."""
    try:
        refund = flows.process_refund(db.session, gateway(), refund_id, clock.now())
    except PaymentError as error:  # payments are not configured: the worker cannot do better, but will try
        refund, problem = None, error.message
    else:
        problem = ""
    if refund is None:
        refund = db.session.get(Refund, refund_id)
    money = format_money(refund.amount, refund.currency)
    if refund.status == RefundStatus.SUCCEEDED:
        return "success", refunded_message(refund, money)
    if refund.status == RefundStatus.FAILED:
        return "error", f"Stripe refused the refund of {money}: {sentence(refund.last_error)} The order is unchanged."
    why = refund.last_error or problem
    return "info", (
        f"Stripe did not answer the refund of {money}{f' ({why})' if why else ''}; the shop will retry it on its own "
        "and the order shows it as refunding until Stripe confirms."
    )


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def refunded_message(refund: Refund, money: str) -> str:
    total = refund.order.release.total_units
    numbers = [line.number for line in refund.lines if line.voided_at is None]
    returned = [line.number for line in refund.lines if line.returned_at is not None]
    message = f"Refunded {money} for {numbers_text(numbers, total)}." if numbers else f"Refunded {money}."
    if returned:
        offered = set(
            db.session.scalars(
                select(WaitlistOffer.number).where(
                    WaitlistOffer.release_id == refund.order.release_id,
                    WaitlistOffer.number.in_(returned),
                    WaitlistOffer.status == OfferStatus.LIVE,
                )
            )
        )
        public = [number for number in returned if number not in offered]
        if public:
            message += f" {numbers_text(public, total)} is back on sale."
        if offered:
            message += f" {numbers_text(sorted(offered), total)} is offered to the next person on the waitlist."
    return message
