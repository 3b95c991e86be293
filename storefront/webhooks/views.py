import logging

from flask import jsonify, request
from sqlalchemy.exc import IntegrityError

from storefront import clock
from storefront.checkout import flows
from storefront.domain.refunds import ChargeRefunds, GatewayRefund
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
            handled = apply_event(event_type, data_object, paid, now, event_request_key(event))
    except IntegrityError:
        # The same event delivered twice at the same moment: the other delivery applied it.
        return jsonify({"received": True, "duplicate": True})
    if not handled:
        return jsonify({"received": True, "ignored": event_type})
    return jsonify({"received": True})


def event_request_key(event: dict) -> str | None:
    """The idempotency key of the API request that caused the event (Stripe's `request.idempotency_key`)."""
    caused_by = event.get("request")
    key = caused_by.get("idempotency_key") if isinstance(caused_by, dict) else None
    return key if isinstance(key, str) else None


def apply_event(event_type: str, data_object: dict, paid, now, request_key: str | None = None) -> bool:
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
        charge = charge_refunds_from_stripe(data_object, request_key)
        if charge is not None:
            flows.apply_charge_refunded(db.session, charge, now)
        return True
    return False


def charge_refunds_from_stripe(charge: dict, request_key: str | None) -> ChargeRefunds | None:
    """Read what a charge.refunded's charge says of its refunds; None without a payment to match it to.

    The body is signed, not trusted to be well formed: a listed refund without an id or a whole amount is skipped.
    """
    payment_intent = charge.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    if not isinstance(payment_intent, str) or not payment_intent:
        return None
    amount_refunded = whole_number(charge.get("amount_refunded"))
    fully = charge.get("refunded") is True or (
        amount_refunded is not None and amount_refunded == whole_number(charge.get("amount"))
    )
    listing = charge.get("refunds")
    refunds, listed_all = None, True
    if isinstance(listing, dict) and isinstance(listing.get("data"), list):
        refunds = tuple(
            GatewayRefund(item["id"], whole_number(item.get("amount")), str(item.get("status") or ""))
            for item in listing["data"]
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and item["id"]
            and whole_number(item.get("amount")) is not None
        )
        listed_all = listing.get("has_more") is not True
    return ChargeRefunds(
        payment_intent_id=payment_intent,
        fully=fully,
        amount_refunded=amount_refunded,
        refunds=refunds,
        listed_all=listed_all,
        request_key=request_key if isinstance(request_key, str) else None,
    )


def whole_number(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
