"""The checkout's flows across the network: write, call the gateway with no transaction open, write again.

Used by the reserve and checkout views, the webhook and the worker's tasks. Every state that crosses the network is
recorded (leased) before the call and checked again after it, because anything may have happened meanwhile:

- opening a checkout records what the shop asks for on the hold first, and finds out afterwards whether the hold
  is still active (a cancel in another tab) before handing the buyer the payment page;
- every way a hold ends (cancel, time running out, a failed checkout, the gateway's own expiry) goes through
  `end_hold`/`finish_ending`: the reason is recorded first, the gateway session is closed, and only then are the
  units freed, so a session can never be paid for units already back on sale;
- a refund is leased in the database, sent with one idempotency key, and recorded only by the lease holder.

Nothing here imports Flask's request machinery or the task queue: URLs and settings come in as plain values, and
the worker is woken through after-commit hooks (`storefront.wakeups`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, joinedload

from storefront import notifications, wakeups
from storefront.clock import utcnow
from storefront.domain import waitlist
from storefront.domain.fulfilment import (
    Fulfilment,
    Outcome,
    PaidCheckout,
    client_reference,
    expected_line_items,
    fulfil_paid_checkout,
    record_checkout_request,
)
from storefront.domain.inventory import HOLD_IS_ACTIVE, held_numbers, lock_hold, release_hold, request_end
from storefront.domain.orders import numbers_text
from storefront.domain.refunds import (
    ChargeRefunded,
    ChargeRefunds,
    due_refund_ids,
    lease_refund,
    record_refund_failure,
    record_refund_sent,
    reflect_charge_refunds,
)
from storefront.models import Batch, Hold, HoldStatus, Refund, RefundStatus, Release
from storefront.order_details import order_details
from storefront.payments import CheckoutSession, Gateway, PaymentError, SessionGone, SessionNotOpen
from storefront.text import local_clock_text, number_ranges
from storefront.unit_of_work import after_commit, end_read, write_transaction

log = logging.getLogger(__name__)

# Stripe will not expire a Checkout Session sooner than 30 minutes after it is created.
STRIPE_MINIMUM_SESSION = timedelta(minutes=31)
SWEEP_LEASE = timedelta(minutes=2)
SWEEP_BATCH = 100


class CheckoutUnavailable(Exception):
    """The gateway could not open a checkout, or the hold ended meanwhile; the buyer's hold is not payable."""


@dataclass(frozen=True)
class CheckoutSettings:
    """What opening a checkout needs from the shop's configuration, as plain values."""

    success_url: str  # with {CHECKOUT_SESSION_ID} where Stripe puts the session's id
    cancel_url: str  # for this hold
    allowed_countries: list[str]
    time_zone: tzinfo = UTC  # the shop's, in which the payment page states the hold's deadline


# --- Opening a checkout -----------------------------------------------------------------------------------------


def start_checkout(session: Session, gateway: Gateway, hold_id: int, now: datetime, settings: CheckoutSettings) -> str:
    """Open a Checkout Session for a committed hold and return its URL; on failure end the hold at once."""
    with write_transaction(session):
        hold = lock_hold(session, hold_id)
        if hold.status != HoldStatus.ACTIVE:
            raise CheckoutUnavailable("This hold has ended.")
        # Opened already (a retried request)? Then the same session again, never a second one: Stripe's
        # idempotency key alone cannot promise that, since a later retry sends a later `expires_at`.
        opened, existing_url = hold.payment_session_id is not None, hold.payment_url
        if not opened:
            request = checkout_request(session, hold, settings)
    if opened:
        if existing_url is None:
            raise CheckoutUnavailable("This hold's payment page is no longer open.")
        return existing_url
    try:
        checkout = gateway.create_checkout_session(**request)
    except PaymentError as error:
        with write_transaction(session):
            # A waitlist offer stays its waiter's for the rest of its time: a gateway failure is not their answer.
            # A session the gateway opened late is never recorded on the hold, so paying it refunds itself.
            kept = waitlist.unclaim_offer(session, hold_id, now)
        if kept:
            log.warning("Checkout for offer hold %s failed, the offer stays open: %s", hold_id, error)
            raise CheckoutUnavailable(error.message) from error
        log.warning("Checkout for hold %s failed, ending it: %s", hold_id, error)
        end_hold(session, gateway, hold_id, "checkout_failed", now)
        raise CheckoutUnavailable(error.message) from error

    with write_transaction(session):
        hold = lock_hold(session, hold_id)
        # Recorded even on a hold that ended meanwhile: a payment of this session is then bound to its hold
        # (and gets its numbers back if they are free, or a refund) instead of being a stranger. Never over
        # another session: nothing else records one in this window, and a second one must not replace it.
        if hold.payment_session_id not in (None, checkout.id):
            raise RuntimeError(f"Hold {hold_id} already has session {hold.payment_session_id}, not {checkout.id}")
        hold.payment_session_id = checkout.id
        hold.payment_status = checkout.payment_status
        hold.payment_url = checkout.url
        still_active = hold.status == HoldStatus.ACTIVE
    if still_active:
        return checkout.url
    log.info("Hold %s ended while its checkout was being opened; closing session %s", hold_id, checkout.id)
    try:
        close_session(session, gateway, checkout.id, now)
    except PaymentError as error:
        log.warning("Could not close session %s of ended hold %s: %s", checkout.id, hold_id, error)
    raise CheckoutUnavailable("This hold ended while the payment page was being opened.")


def checkout_request(session: Session, hold: Hold, settings: CheckoutSettings) -> dict:
    """Record on the hold what the shop asks the gateway for, and return the gateway call's arguments."""
    # The line items name the batch and product: one round trip for the three, on the drop's busiest path.
    release = session.execute(
        select(Release)
        .where(Release.id == hold.release_id)
        .options(joinedload(Release.batch).joinedload(Batch.product))
    ).scalar_one()
    numbers = held_numbers(session, hold)
    # Read now, as the price is: a producer's later change applies to checkouts opened after it.
    record_checkout_request(session, hold, numbers, release.price_amount, release.currency, release.shipping_amount)
    return dict(
        # One session per hold, however often this is retried: Stripe replays the first answer for the same key.
        idempotency_key=f"hold-{hold.id}-checkout",
        line_items=list(expected_line_items(release, hold)),
        currency=release.currency,
        customer_email=hold.buyer_email,
        client_reference_id=client_reference(hold.id),
        metadata={"hold_id": str(hold.id), "hold_token": hold.token, "release": release.slug},
        # Stripe counts the session's life on its own, real clock (the shop's is only moved in tests).
        expires_at=max(utcnow() + STRIPE_MINIMUM_SESSION, hold.expires_at),
        success_url=settings.success_url,
        cancel_url=settings.cancel_url,
        allowed_countries=settings.allowed_countries,
        # The session outlives the hold (Stripe's 30-minute minimum): the page says the shop's deadline instead.
        submit_message=deadline_message(numbers, release.total_units, hold.expires_at, settings.time_zone),
        shipping_options=shipping_options(hold.shipping_amount, release.currency),
    )


def deadline_message(numbers: list[int], total_units: int, expires_at: datetime, zone: tzinfo) -> str:
    """What the payment page says next to its Pay button: until when the shop holds the numbers."""
    one = len(numbers) == 1
    return (
        f"{number_ranges(numbers)} of {total_units} {'is' if one else 'are'} held for you until "
        f"{local_clock_text(expires_at, zone)}. Pay before then to make {'it' if one else 'them'} yours; after that "
        f"this page closes and {'it goes' if one else 'they go'} back on sale."
    )


def shipping_options(amount: int, currency: str) -> list[dict]:
    """The one flat rate the buyer pays on the payment page; none when shipping is free (nothing to show)."""
    if amount <= 0:
        return []
    return [
        {
            "shipping_rate_data": {
                "type": "fixed_amount",
                "fixed_amount": {"amount": amount, "currency": currency.lower()},
                "display_name": "Shipping",
            }
        }
    ]


# --- A paid checkout --------------------------------------------------------------------------------------------


def apply_paid_checkout(session: Session, paid: PaidCheckout, now: datetime) -> Fulfilment | None:
    """Inside the edge's write transaction: fulfil a paid checkout (idempotent) and queue what follows it."""
    result = fulfil_paid_checkout(session, paid, now)
    if result is None:
        log.warning("Paid Checkout Session %s does not claim to be this shop's; ignored", paid.session_id)
        return None
    if result.outcome is Outcome.UNMATCHED:
        log.error(
            "Unmatched payment %s (%s %s): %s. Refunding it; nobody's units were touched.",
            paid.session_id,
            paid.amount_total,
            paid.currency,
            result.unmatched.reason,
        )
        notify_producer(session, "payment_unmatched", unmatched=result.unmatched)
    queue_fulfilment_mail(session, result)
    if result.refund is not None:
        wake_refund(session, result.refund.id)
    return result


def complete_checkout(
    session: Session, gateway: Gateway, checkout: CheckoutSession, now: datetime
) -> Fulfilment | None:
    """Fulfil a paid session in a transaction of its own (the success page, the sweeper, a cancel that lost)."""
    with write_transaction(session):
        return apply_paid_checkout(session, checkout.as_paid_checkout(), now)


def queue_fulfilment_mail(session: Session, result: Fulfilment) -> None:
    order = result.order
    if result.outcome in (Outcome.CONVERTED, Outcome.REASSIGNED):
        notifications.queue_mail(
            session,
            order.email,
            "order_confirmed",
            order_id=order.id,
            order=order,
            release=order.release,
            numbers=[unit.number for unit in order.units],
            details=order_details(session, order),
            # "instead" only when the numbers changed; a late payment that kept its numbers is told just that.
            reassigned=result.outcome is Outcome.REASSIGNED,
            paid_late=result.paid_late,
        )
    elif result.outcome is Outcome.REFUND_NEEDED:
        notifications.queue_mail(
            session, order.email, "order_refunded_sold_out", order_id=order.id, order=order, release=order.release
        )


# --- Ending a hold ----------------------------------------------------------------------------------------------


class Ending(StrEnum):
    RELEASED = "released"  # its numbers are back on sale
    PAID = "paid"  # the session had been paid: the payment became the order instead
    ALREADY_ENDED = "already_ended"  # it had ended before (released or paid)


def end_hold(session: Session, gateway: Gateway, hold_id: int, reason: str, now: datetime) -> Ending:
    """End a hold, however it ends: record why, close its gateway session first, then free its units.

    The first reason recorded wins (`end_requested`). Raises PaymentError when the gateway cannot be reached or
    the session stays open: the hold then stays held (its session may still be paid) and the sweeper finishes it.
    """
    with write_transaction(session):
        hold = request_end(session, hold_id, reason)
        if hold.status != HoldStatus.ACTIVE:
            return Ending.ALREADY_ENDED
        session_id = hold.payment_session_id
        if session_id is None:
            # No payment page was ever handed out for it: nothing to close.
            release_hold(session, hold, now, reason)
            return Ending.RELEASED
    checkout = close_session(session, gateway, session_id, now)
    if checkout is not None and checkout.is_paid:
        return Ending.PAID
    with write_transaction(session):
        finish_ending(session, hold_id, "expired" if checkout is not None else "gone", now)
        # Whoever freed the units (this call, or the expiry webhook closing the session caused), it ended now.
        hold = session.get(Hold, hold_id)
        return Ending.PAID if hold.status == HoldStatus.CONVERTED else Ending.RELEASED


def close_session(session: Session, gateway: Gateway, session_id: str, now: datetime) -> CheckoutSession | None:
    """Make a session unpayable. Returns what it is now (None: the gateway says it does not exist for us).

    A session found paid is fulfilled on the spot. Raises PaymentError if it could not be closed.
    """
    try:
        checkout = gateway.expire_session(session_id)
    except SessionNotOpen as not_open:
        checkout = not_open.session
    except SessionGone as gone:
        log.warning("Session %s is gone at the gateway (%s): its hold can end", session_id, gone)
        return None
    if checkout.is_paid:
        complete_checkout(session, gateway, checkout, now)
    elif checkout.status == "open":
        raise PaymentError(f"Session {session_id} is still open after expiring it")
    return checkout


def finish_ending(session: Session, hold_id: int, payment_status: str, now: datetime) -> Ending:
    """Inside the edge's transaction, once the hold's session can no longer be paid: free its units."""
    hold = lock_hold(session, hold_id)
    if hold.status != HoldStatus.ACTIVE:
        return Ending.ALREADY_ENDED
    release_hold(session, hold, now, reason="expired", payment_status=payment_status)
    return Ending.RELEASED


def on_session_expired(session: Session, session_id: str, now: datetime) -> None:
    """The gateway says a session expired (its own clock, or our expire call): finish its hold's ending."""
    hold_id = session.scalar(select(Hold.id).where(Hold.payment_session_id == session_id))
    if hold_id is not None:
        finish_ending(session, hold_id, "expired", now)


@dataclass
class SweepReport:
    released: int = 0
    fulfilled: int = 0
    failed: int = 0


def sweep_holds(
    session: Session, gateway: Gateway, now: datetime, clock: Callable[[], datetime] | None = None
) -> SweepReport:
    """End holds whose time has passed, and holds whose ending is waiting on the gateway (a cancel that failed).

    Safe on several workers at once: each hold is leased with a conditional UPDATE before the gateway is called,
    and every step after it is idempotent. A gateway failure leaves the hold held; the next sweep tries again.
    Each hold is leased at the time it is reached (`clock()`), so a long batch never hands out spent leases.
    """
    report = SweepReport()
    candidates = session.scalars(
        select(Hold.id)
        .where(
            HOLD_IS_ACTIVE,
            or_(Hold.expires_at <= now, Hold.end_requested.is_not(None)),
            or_(Hold.sweep_lease_until.is_(None), Hold.sweep_lease_until <= now),
        )
        .order_by(Hold.expires_at, Hold.id)
        .limit(SWEEP_BATCH)
    ).all()
    end_read(session)
    for hold_id in candidates:
        now = clock() if clock is not None else now
        if not lease_hold(session, hold_id, now):
            continue
        try:
            ending = end_hold(session, gateway, hold_id, "expired", now)
        except PaymentError as error:
            log.warning("Sweeper could not end hold %s: %s", hold_id, error)
            report.failed += 1
            continue
        if ending is Ending.RELEASED:
            report.released += 1
        elif ending is Ending.PAID:
            report.fulfilled += 1
    return report


def lease_hold(session: Session, hold_id: int, now: datetime) -> bool:
    with write_transaction(session):
        leased = session.execute(
            update(Hold)
            .where(
                Hold.id == hold_id,
                HOLD_IS_ACTIVE,
                # Still due, under the row's lock: a waitlist offer claimed since the sweep's read has more time.
                or_(Hold.expires_at <= now, Hold.end_requested.is_not(None)),
                or_(Hold.sweep_lease_until.is_(None), Hold.sweep_lease_until <= now),
            )
            .values(sweep_lease_until=now + SWEEP_LEASE),
            execution_options={"synchronize_session": False},
        ).rowcount
    return leased == 1


# --- Refunds ----------------------------------------------------------------------------------------------------


def wake_refund(session: Session, refund_id: int) -> None:
    after_commit(session, f"refund-{refund_id}", lambda: wakeups.refund_queued.send(refund_id))


def process_refund(session: Session, gateway: Gateway, refund_id: int, now: datetime) -> Refund | None:
    """Make one attempt at a due refund, if no other worker holds it. Returns it, or None if it was not ours."""
    with write_transaction(session):
        attempt = lease_refund(session, refund_id, now)
        if attempt is None:
            return None
        refund = session.get(Refund, refund_id)
        request = dict(
            payment_intent_id=refund.payment_intent_id,
            amount=refund.amount,
            idempotency_key=f"refund-{refund.id}",
            reason=refund.reason,
        )
    try:
        result, error = gateway.refund(**request), None
    except PaymentError as failure:
        result, error = None, failure
    with write_transaction(session):
        if error is None:
            refund = record_refund_sent(session, refund_id, result.id, now)
            if refund is not None:
                queue_refund_sent_mail(session, refund)
        else:
            refund = record_refund_failure(session, refund_id, attempt, error.message, now, retryable=error.retryable)
            if refund is not None and refund.status == RefundStatus.FAILED:
                log.error("Refund %s failed for good after %s attempts: %s", refund_id, attempt, error.message)
                notify_producer(session, "refund_failed", refund=refund)
            elif refund is not None:
                log.warning(
                    "Refund %s attempt %s failed, retrying at %s: %s",
                    refund_id,
                    attempt,
                    refund.next_attempt_at,
                    error.message,
                )
    return session.get(Refund, refund_id)


def queue_refund_sent_mail(session: Session, refund: Refund) -> None:
    """Tell the buyer their money is on its way back: how much, and for which numbers."""
    order = refund.order
    if order is None:
        return
    numbers = [line.number for line in refund.lines if line.voided_at is None]
    notifications.queue_mail(
        session,
        order.email,
        "refund_sent",
        order_id=order.id,
        order=order,
        refund=refund,
        release=order.release,
        numbers=numbers_text(numbers, order.release.total_units) if numbers else "",
        in_full=refund.amount >= order.amount_total,
    )


def apply_charge_refunded(session: Session, charge: ChargeRefunds, now: datetime) -> ChargeRefunded | None:
    """Inside the webhook's transaction: reflect the refunds Stripe lists for a payment (the shop's own, or made in
    its dashboard); a refund of the shop's confirmed here first gets its mail here."""
    result = reflect_charge_refunds(session, charge, now)
    if result is not None:
        for refund in result.confirmed:
            queue_refund_sent_mail(session, refund)
    return result


def retry_due_refunds(
    session: Session, gateway: Gateway, now: datetime, clock: Callable[[], datetime] | None = None
) -> int:
    """Attempt every refund that is due (waiting, or abandoned by a worker whose lease ran out).

    Each refund is leased at the time it is attempted (`clock()`), not when the run began: a run through many
    refunds against a slow gateway would otherwise hand out leases that have already run out.
    """
    refund_ids = due_refund_ids(session, now)
    end_read(session)
    sent = 0
    for refund_id in refund_ids:
        refund = process_refund(session, gateway, refund_id, clock() if clock is not None else now)
        sent += refund is not None and refund.status == RefundStatus.SUCCEEDED
    return sent


def notify_producer(session: Session, template: str, **context) -> None:
    """Tell a person about money that needs a look, when the shop has an address for them."""
    address = notifications.producer_address()
    if address:
        notifications.queue_mail(session, address, template, **context)
