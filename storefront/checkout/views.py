import logging

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select

from storefront import clock
from storefront.checkout import bp, flows
from storefront.extensions import db
from storefront.models import Hold, Order, UnmatchedPayment
from storefront.order_details import order_details
from storefront.payments import PaymentError, gateway
from storefront.shop.views import finish_cancel, get_hold_or_404
from storefront.unit_of_work import end_read

log = logging.getLogger(__name__)


@bp.get("/success")
def show_success():
    """Show the buyer their numbers as soon as the order exists, asking the gateway if the webhook is late."""
    session_id = request.args.get("session_id", "")
    hold = db.session.scalar(select(Hold).where(Hold.payment_session_id == session_id)) if session_id else None
    if hold is None:
        abort(404, description="We could not find this checkout. If you paid, your confirmation email has the order.")
    order = find_order(session_id)
    if order is None:
        end_read(db.session)  # nothing stays open while we wait on the network
        try:
            checkout = gateway().retrieve_session(session_id)
        except PaymentError as error:
            log.warning("Success page could not reach the gateway for %s: %s", session_id, error)
            checkout = None
        if checkout is not None and checkout.is_paid:
            # Fulfilment is idempotent, so confirming here and in the webhook gives one order either way.
            try:
                flows.complete_checkout(db.session, gateway(), checkout, clock.now())
            except PaymentError as error:
                log.warning("Success page could not confirm %s yet: %s", session_id, error)
            order = find_order(session_id)
    # One buyer's page (their name and address once paid): never kept by a shared cache.
    private = {"Cache-Control": "private, no-store"}
    if order is None and find_unmatched(session_id) is not None:
        # Paid, but not what the shop asked for: it is being refunded. Say so instead of "confirming" for ever.
        return render_template("checkout/show_unmatched.html", hold=hold), 200, private
    if order is None:
        # Paid but not yet confirmed, or the gateway is slow: the page refreshes itself.
        return render_template("checkout/show_pending.html", hold=hold), 202, private
    page = render_template(
        "checkout/show_success.html", order=order, release=order.release, details=order_details(db.session, order)
    )
    return page, 200, private


def find_order(session_id: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.checkout_session_id == session_id))


def find_unmatched(session_id: str) -> UnmatchedPayment | None:
    return db.session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.checkout_session_id == session_id))


@bp.get("/cancel/<token>")
def confirm_cancel(token: str):
    """Where Stripe's back link landed on sessions opened before it led to the hold's page: go there now."""
    hold = get_hold_or_404(token)
    return redirect(url_for("shop.show_hold", token=hold.token), code=303)


@bp.post("/cancel/<token>")
def cancel_checkout(token: str):
    """Cancel from a confirmation page left open before the back link led to the hold's page."""
    return finish_cancel(get_hold_or_404(token))
