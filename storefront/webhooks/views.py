import logging

from flask import jsonify, request
from sqlalchemy.exc import IntegrityError

from storefront import clock
from storefront.checkout import flows
from storefront.domain.refunds import record_charge_refunded
from storefront.extensions import csrf, db
from storefront.models import PaymentEvent
from storefront.payments import MalformedEvent, SignatureError, gateway, session_from_stripe
from storefront.unit_of_work import write_transaction
from storefront.webhooks import bp

log = logging.getLogger(__name__)

PAID_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}


@bp.post("/stripe/webhook")
@csrf.exempt  # Stripe cannot send our CSRF token; the signature check below is the authentication
def receive_stripe_event():
    """Verify, record once, and apply a Stripe event; answer 200 for anything we verified and could read."""
    try:
        event = gateway().verify_event(request.get_data(), request.headers.get("Stripe-Signature"))
    except SignatureError as error:
        log.warning("Rejected webhook: %s", error)
        return jsonify({"error": "invalid signature", "message": str(error)}), 400
    except MalformedEvent as error:
        log.warning("Rejected signed but malformed webhook: %s", error)
        return jsonify({"error": "malformed event", "message": str(error)}), 400

    event_id, event_type, data_object = event["id"], event["type"], event["data"]["object"]
    paid = None
    if event_type in PAID_EVENTS:
        try:
            checkout = session_from_stripe(data_object)
        except MalformedEvent as error:
            log.warning("Rejected webhook %s with an unreadable object: %s", event_id, error)
            return jsonify({"error": "malformed event", "message": str(error)}), 400
        if checkout.is_paid:
            paid = checkout.as_paid_checkout()

    now = clock.now()
    try:
        with write_transaction(db.session):
            if db.session.get(PaymentEvent, event_id) is not None:
                return jsonify({"received": True, "duplicate": True})
            db.session.add(PaymentEvent(id=event_id, type=event_type, received_at=now))
            db.session.flush()
            # The effect commits with the event's record, or neither does.
            handled = apply_event(event_type, data_object, paid, now)
    except IntegrityError:
        # The same event delivered twice at the same moment: the other delivery applied it.
        return jsonify({"received": True, "duplicate": True})
    if not handled:
        return jsonify({"received": True, "ignored": event_type})
    return jsonify({"received": True})


def apply_event(event_type: str, data_object: dict, paid, now) -> bool:
    """Apply one verified event inside the webhook's transaction; False when the shop does not act on its type."""
    if event_type in PAID_EVENTS:
        # A completed session that is not paid (a delayed method) waits for a later event.
        if paid is not None:
            flows.apply_paid_checkout(db.session, paid, now)
        return True
    if event_type == "checkout.session.expired":
        session_id = data_object.get("id")
        if isinstance(session_id, str):
            flows.on_session_expired(db.session, session_id, now)
        return True
    if event_type == "charge.refunded":
        payment_intent = data_object.get("payment_intent")
        if isinstance(payment_intent, dict):
            payment_intent = payment_intent.get("id")
        fully = data_object.get("refunded") is True or data_object.get("amount_refunded") == data_object.get("amount")
        if isinstance(payment_intent, str) and payment_intent:
            record_charge_refunded(db.session, payment_intent, fully, now)
        return True
    return False
