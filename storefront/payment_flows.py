"""The edges that cross the network to the gateway: commit, call Stripe with no transaction open, commit again.

Used by the reserve and checkout views, the webhook and the worker's tasks. Each function owns its transactions
(it is an edge in the house's sense) and leaves the session clean, committed or rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, url_for
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storefront import notifications
from storefront.clock import utcnow
from storefront.database import begin_write_transaction
from storefront.domain.fulfilment import (
    Fulfilment,
    Outcome,
    PaidCheckout,
    fulfil_paid_checkout,
    record_refund_failure,
    record_refund_sent,
)
from storefront.domain.inventory import HOLD_IS_ACTIVE, held_numbers, release_hold
from storefront.models import Hold, HoldStatus, Order, Refund, RefundStatus, Release
from storefront.payments import CheckoutSession, LineItem, PaymentError, SessionNotOpen, gateway

log = logging.getLogger(__name__)

# Stripe will not expire a Checkout Session sooner than 30 minutes after it is created.
STRIPE_MINIMUM_SESSION = timedelta(minutes=31)
SWEEP_LEASE = timedelta(minutes=2)
SWEEP_BATCH = 100
REFUND_RETRY_LIMIT = 10


class CheckoutUnavailable(Exception):
    """The gateway could not open a checkout; the hold has been released."""


def line_item_name(release: Release, number: int) -> str:
    batch = release.batch
    return f"Batch {batch.code} {batch.product.name} — No. {number} of {release.total_units}"


def start_checkout(session: Session, hold_id: int, now: datetime) -> str:
    """Open a Checkout Session for a committed hold and return its URL; on failure release the hold at once.

    The hold is committed before this is called and no transaction is open during the gateway call.
    """
    hold = session.get(Hold, hold_id)
    if hold.payment_session_id and hold.payment_url:
        # Opened already (a retried request): the same session again, never a second one. Stripe's idempotency key
        # alone cannot promise that, since a later retry sends a later `expires_at` and Stripe refuses the key.
        url = hold.payment_url
        session.commit()
        return url
    release = hold.release
    numbers = held_numbers(session, hold)
    items = [LineItem(name=line_item_name(release, number), unit_amount=release.price_amount) for number in numbers]
    request = dict(
        # One session per hold, however often this is retried: Stripe replays the first answer for the same key.
        idempotency_key=f"hold-{hold.id}-checkout",
        line_items=items,
        currency=release.currency,
        customer_email=hold.buyer_email,
        client_reference_id=f"hold-{hold.id}",
        metadata={"hold_id": str(hold.id), "hold_token": hold.token, "release": release.slug},
        # Stripe counts the session's life on its own, real clock (the shop's clock is only ever moved in tests).
        expires_at=max(utcnow() + STRIPE_MINIMUM_SESSION, hold.expires_at),
        success_url=url_for("checkout.show_success", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
        cancel_url=url_for("checkout.cancel_checkout", token=hold.token, _external=True),
        allowed_countries=current_app.config["SHIPPING_COUNTRIES"],
    )
    session.commit()  # nothing open while we wait on the network
    try:
        checkout = gateway().create_checkout_session(**request)
    except PaymentError as error:
        log.warning("Checkout for hold %s failed, releasing it: %s", hold_id, error)
        release_hold(session, hold, now, reason="checkout_failed")
        session.commit()
        raise CheckoutUnavailable(error.message) from error

    begin_write_transaction(session)
    hold = session.get(Hold, hold_id)
    hold.payment_session_id = checkout.id
    hold.payment_status = checkout.payment_status
    hold.payment_url = checkout.url
    session.commit()
    return checkout.url


def paid_checkout_from(checkout: CheckoutSession) -> PaidCheckout:
    hold_id = checkout.metadata.get("hold_id")
    return PaidCheckout(
        session_id=checkout.id,
        hold_id=int(hold_id) if hold_id and hold_id.isdigit() else None,
        payment_intent_id=checkout.payment_intent_id,
        amount_total=checkout.amount_total or 0,
        currency=checkout.currency or "",
        email=checkout.customer_email or "",
        shipping_name=checkout.shipping_name,
        shipping_address=checkout.shipping_address,
    )


def complete_checkout(session: Session, checkout: CheckoutSession, now: datetime) -> Fulfilment | None:
    """Fulfil a paid session (idempotent), queue the buyer's mail, commit, then hand work to the worker."""
    result = fulfil_paid_checkout(session, paid_checkout_from(checkout), now)
    if result is None:
        log.error("Paid Checkout Session %s names no hold of this shop; left for a person", checkout.id)
        session.commit()
        return None
    queue_fulfilment_mail(session, result)
    session.commit()
    after_commit(result)
    return result


def queue_fulfilment_mail(session: Session, result: Fulfilment) -> None:
    order = result.order
    if result.outcome in (Outcome.CONVERTED, Outcome.REASSIGNED):
        notifications.queue_mail(
            session,
            order.email,
            "order_confirmed",
            order=order,
            release=order.release,
            numbers=[unit.number for unit in order.units],
            reassigned=result.outcome is Outcome.REASSIGNED,
        )
    elif result.outcome is Outcome.REFUND_NEEDED:
        notifications.queue_mail(session, order.email, "order_refunded_sold_out", order=order, release=order.release)


def after_commit(result: Fulfilment | None = None) -> None:
    """Wake the worker: mail to send, and a refund to make when the payment found no units."""
    from storefront import tasks

    if result is not None and result.refund is not None:
        tasks.process_refund(result.refund.id)
    tasks.send_outbox()


def release_for_cancel(session: Session, hold: Hold, now: datetime) -> Hold:
    """The buyer cancelled: expire their session (so it cannot be paid later) and release the hold at once.

    If the session turns out to be paid already, the payment wins and becomes the order instead.
    """
    session_id = hold.payment_session_id
    hold_id = hold.id
    session.commit()
    session_expired = False
    if session_id:
        try:
            gateway().expire_session(session_id)
            session_expired = True
        except SessionNotOpen as not_open:
            if not_open.session.is_paid:
                complete_checkout(session, not_open.session, now)
                return session.get(Hold, hold_id)
            session_expired = not_open.session.status == "expired"
        except PaymentError as error:
            # Released anyway: if the buyer still pays, the late payment gets other numbers or a refund.
            log.warning("Could not expire session %s on cancel: %s", session_id, error)
    begin_write_transaction(session)  # before the read: on SQLite a read transaction cannot become a write
    hold = session.get(Hold, hold_id)
    if hold.status == HoldStatus.ACTIVE:
        hold = release_hold(
            session, hold, now, reason="cancelled", payment_status="expired" if session_expired else None
        )
    session.commit()
    return hold


@dataclass
class SweepReport:
    released: int = 0
    fulfilled: int = 0
    failed: int = 0


def sweep_expired_holds(session: Session, now: datetime) -> SweepReport:
    """End holds whose time has passed: expire their Stripe session first, then free the units.

    Safe on several workers at once: each hold is leased with a conditional UPDATE before the gateway is called,
    and every step after it is idempotent. A gateway failure leaves the hold held; the next sweep tries again.
    """
    report = SweepReport()
    candidates = session.scalars(
        select(Hold.id)
        .where(
            HOLD_IS_ACTIVE,
            Hold.expires_at <= now,
            or_(Hold.sweep_lease_until.is_(None), Hold.sweep_lease_until <= now),
        )
        .order_by(Hold.expires_at)
        .limit(SWEEP_BATCH)
    ).all()
    session.commit()
    for hold_id in candidates:
        if not lease_hold(session, hold_id, now):
            continue
        hold = session.get(Hold, hold_id)
        session_id = hold.payment_session_id
        session.commit()
        try:
            outcome = end_hold_with_gateway(session, hold_id, session_id, now)
        except PaymentError as error:
            log.warning("Sweeper could not end hold %s (session %s): %s", hold_id, session_id, error)
            report.failed += 1
            continue
        if outcome == "released":
            report.released += 1
        elif outcome == "fulfilled":
            report.fulfilled += 1
    return report


def lease_hold(session: Session, hold_id: int, now: datetime) -> bool:
    begin_write_transaction(session)
    leased = session.execute(
        update(Hold)
        .where(
            Hold.id == hold_id,
            HOLD_IS_ACTIVE,
            or_(Hold.sweep_lease_until.is_(None), Hold.sweep_lease_until <= now),
        )
        .values(sweep_lease_until=now + SWEEP_LEASE),
        execution_options={"synchronize_session": False},
    ).rowcount
    session.commit()
    return leased == 1


def end_hold_with_gateway(session: Session, hold_id: int, session_id: str | None, now: datetime) -> str:
    if session_id:
        try:
            checkout = gateway().expire_session(session_id)
        except SessionNotOpen as not_open:
            checkout = not_open.session
        if checkout.is_paid:
            complete_checkout(session, checkout, now)
            return "fulfilled"
        if checkout.status == "open":
            raise PaymentError(f"Session {session_id} is still open after expiring it")
    begin_write_transaction(session)  # before the read: on SQLite a read transaction cannot become a write
    hold = session.get(Hold, hold_id)
    release_hold(session, hold, now, reason="expired", payment_status="expired" if session_id else None)
    session.commit()
    return "released"


def process_refund(session: Session, refund_id: int, now: datetime) -> Refund:
    """Send a recorded refund to the gateway; the idempotency key makes a retry safe."""
    refund = session.get(Refund, refund_id)
    if refund is None or refund.status != RefundStatus.PENDING:
        session.commit()
        return refund
    order: Order = refund.order
    request = dict(
        payment_intent_id=order.payment_intent_id,
        amount=refund.amount,
        idempotency_key=f"refund-{refund.id}",
        reason=refund.reason,
    )
    session.commit()
    try:
        result = gateway().refund(**request)
        error = None
    except PaymentError as failure:
        result, error = None, failure
    begin_write_transaction(session)
    refund = session.get(Refund, refund_id)
    if error is None:
        record_refund_sent(session, refund, result.id, now)
        notifications.queue_mail(session, refund.order.email, "refund_sent", order=refund.order, refund=refund)
    else:
        final = not error.retryable or refund.attempts + 1 >= REFUND_RETRY_LIMIT
        record_refund_failure(session, refund, error.message, now, final=final)
        log.warning("Refund %s failed (attempt %s): %s", refund_id, refund.attempts, error.message)
    session.commit()
    return refund


def pending_refund_ids(session: Session) -> list[int]:
    ids = list(session.scalars(select(Refund.id).where(Refund.status == RefundStatus.PENDING).order_by(Refund.id)))
    session.commit()
    return ids
