import logging

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from storefront import clock, payment_flows
from storefront.checkout import bp
from storefront.extensions import db
from storefront.models import Hold, HoldStatus, Order
from storefront.payments import PaymentError, gateway

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
        # End the read first: nothing stays open while we wait on the network, and on SQLite fulfilment must begin
        # its own (write) transaction.
        db.session.commit()
        try:
            checkout = gateway().retrieve_session(session_id)
        except PaymentError as error:
            log.warning("Success page could not reach the gateway for %s: %s", session_id, error)
            checkout = None
        if checkout is not None and checkout.is_paid:
            # Fulfilment is idempotent, so confirming here and in the webhook gives one order either way.
            payment_flows.complete_checkout(db.session, checkout, clock.now())
            order = find_order(session_id)
    if order is None:
        # Paid but not yet confirmed, or the gateway is slow: the page refreshes itself.
        return render_template("checkout/show_pending.html", hold=hold), 202
    return render_template("checkout/show_success.html", order=order, release=order.release)


def find_order(session_id: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.checkout_session_id == session_id))


@bp.get("/cancel/<token>")
def cancel_checkout(token: str):
    """The buyer left Stripe's page: release their numbers at once."""
    hold = db.session.scalar(select(Hold).where(Hold.token == token))
    if hold is None:
        abort(404, description="This hold does not exist.")
    release_slug = hold.release.slug
    hold = payment_flows.release_for_cancel(db.session, hold, clock.now())
    if hold.status == HoldStatus.CONVERTED:
        return redirect(url_for("checkout.show_success", session_id=hold.payment_session_id), code=303)
    flash("Checkout cancelled. Your numbers are back on sale.", "info")
    return redirect(url_for("shop.show_release", slug=release_slug), code=303)
