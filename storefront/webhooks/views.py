import logging

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storefront import clock, payment_flows
from storefront.database import begin_write_transaction
from storefront.domain.fulfilment import record_charge_refunded
from storefront.domain.inventory import release_hold
from storefront.extensions import csrf, db
from storefront.models import Hold, HoldStatus, PaymentEvent
from storefront.payments import SignatureError, gateway, session_from_stripe
from storefront.webhooks import bp

log = logging.getLogger(__name__)


@bp.post("/stripe/webhook")
@csrf.exempt  # Stripe cannot send our CSRF token; the signature check below is the authentication
def receive_stripe_event():
    """Verify, record once, and apply a Stripe event; answer 200 for anything we verified."""
    try:
        event = gateway().verify_event(request.get_data(), request.headers.get("Stripe-Signature"))
    except SignatureError as error:
        log.warning("Rejected webhook: %s", error)
        return jsonify({"error": "invalid signature", "message": str(error)}), 400

    event_id, event_type = event.get("id"), event.get("type")
    data_object = (event.get("data") or {}).get("object") or {}
    if not event_id or not event_type:
        return jsonify({"error": "malformed event"}), 400

    begin_write_transaction(db.session)
    if db.session.get(PaymentEvent, event_id) is not None:
        db.session.rollback()
        return jsonify({"received": True, "duplicate": True})
    db.session.add(PaymentEvent(id=event_id, type=event_type, received_at=clock.now()))
    try:
        db.session.flush()
    except IntegrityError:
        # The same event delivered twice at the same moment: the other delivery applied it.
        db.session.rollback()
        return jsonify({"received": True, "duplicate": True})

    handler = HANDLERS.get(event_type)
    if handler is None:
        db.session.commit()
        return jsonify({"received": True, "ignored": event_type})
    handler(data_object)
    return jsonify({"received": True})


def on_session_completed(data_object: dict) -> None:
    checkout = session_from_stripe(data_object)
    if not checkout.is_paid:
        # Card-only sessions are paid when complete; anything else waits for a later event.
        db.session.commit()
        return
    # complete_checkout records the order in the same transaction as the event, then commits.
    payment_flows.complete_checkout(db.session, checkout, clock.now())


def on_session_expired(data_object: dict) -> None:
    hold = db.session.scalar(select(Hold).where(Hold.payment_session_id == data_object.get("id")))
    if hold is not None and hold.status == HoldStatus.ACTIVE:
        release_hold(db.session, hold, clock.now(), reason="expired", payment_status="expired")
    db.session.commit()


def on_charge_refunded(data_object: dict) -> None:
    payment_intent = data_object.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    fully = data_object.get("refunded") is True or data_object.get("amount_refunded") == data_object.get("amount")
    if payment_intent:
        record_charge_refunded(db.session, payment_intent, fully, clock.now())
    db.session.commit()


HANDLERS = {
    "checkout.session.completed": on_session_completed,
    "checkout.session.async_payment_succeeded": on_session_completed,
    "checkout.session.expired": on_session_expired,
    "charge.refunded": on_charge_refunded,
}
