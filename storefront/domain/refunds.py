"""Refunds as a leased state machine: money goes back exactly once, however many workers try at once.

    pending --lease--> sending --gateway accepted--> succeeded
                          |------retryable failure--> pending (next_attempt_at, backing off)
                          |------final failure, or retries ran out--> failed (a person looks)
    sending, lease expired (the worker died) --lease--> sending (taken over)

The lease lives in the database. Every attempt sends the same idempotency key (one per refund), so two workers
that both reach the gateway (one's lease ran out mid-call) still make one refund there; the first to record the
answer wins and a late answer for a finished refund changes nothing. A failure is recorded only by the attempt that
holds the lease, so a stale failure never overwrites a success.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.models import Order, OrderStatus, Refund, RefundStatus, UnmatchedPayment

REFUND_LEASE = timedelta(minutes=2)
# Stripe retries a webhook for up to 3 days; a refund gets as long before a person is asked to look.
REFUND_RETRY_WINDOW = timedelta(days=3)
FIRST_RETRY_DELAY = timedelta(minutes=1)
LONGEST_RETRY_DELAY = timedelta(hours=4)


def queue_refund(
    session: Session,
    payment_intent_id: str,
    amount: int,
    currency: str,
    reason: str,
    now: datetime,
    *,
    order: Order | None = None,
    unmatched: UnmatchedPayment | None = None,
) -> Refund:
    """Record that money goes back, on an order or on an unmatched payment; the worker sends it (and retries)."""
    require_write_transaction(session)
    if (order is None) == (unmatched is None):
        raise ValueError("A refund belongs to exactly one order or one unmatched payment.")
    refund = Refund(
        order_id=order.id if order is not None else None,
        unmatched_payment_id=unmatched.id if unmatched is not None else None,
        payment_intent_id=payment_intent_id,
        amount=amount,
        currency=currency.upper(),
        reason=reason,
        status=RefundStatus.PENDING,
        next_attempt_at=now,
        retry_until=now + REFUND_RETRY_WINDOW,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    if order is not None:
        order.status = OrderStatus.REFUNDING
    session.flush()
    return refund


def refund_is_due(now: datetime):
    """SQL condition: a refund waiting for its next attempt, or one whose sender's lease has run out."""
    return or_(
        and_(
            Refund.status == RefundStatus.PENDING,
            or_(Refund.next_attempt_at.is_(None), Refund.next_attempt_at <= now),
        ),
        and_(Refund.status == RefundStatus.SENDING, Refund.lease_until <= now),
    )


def due_refund_ids(session: Session, now: datetime, limit: int = 100) -> list[int]:
    return list(
        session.scalars(
            select(Refund.id).where(refund_is_due(now)).order_by(Refund.next_attempt_at, Refund.id).limit(limit)
        )
    )


def lease_refund(session: Session, refund_id: int, now: datetime) -> int | None:
    """Take a due refund for one attempt; returns the attempt's number (its lease), or None if not ours to send."""
    require_write_transaction(session)
    attempt = session.execute(
        update(Refund)
        .where(Refund.id == refund_id, refund_is_due(now))
        .values(
            status=RefundStatus.SENDING,
            lease_until=now + REFUND_LEASE,
            attempts=Refund.attempts + 1,
            updated_at=now,
        )
        .returning(Refund.attempts),
        execution_options={"synchronize_session": False},
    ).scalar()
    return attempt


def lock_refund(session: Session, refund_id: int) -> Refund:
    return session.scalar(
        select(Refund).where(Refund.id == refund_id).with_for_update().execution_options(populate_existing=True)
    )


def record_refund_sent(session: Session, refund_id: int, gateway_refund_id: str, now: datetime) -> Refund | None:
    """The gateway accepted the refund. Returns the refund if this call finished it, None if it was done already."""
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return None
    # Any attempt's success counts, even one whose lease ran out: every attempt sent the same idempotency key,
    # so the gateway made one refund whoever asked.
    refund.status = RefundStatus.SUCCEEDED
    refund.gateway_refund_id = gateway_refund_id
    refund.lease_until = None
    refund.next_attempt_at = None
    refund.last_error = ""
    refund.updated_at = now
    if refund.order is not None:
        settle_order_refunds(session, refund.order, now)
    session.flush()
    return refund


def record_refund_failure(
    session: Session, refund_id: int, attempt: int, error: str, now: datetime, *, retryable: bool
) -> Refund | None:
    """The gateway failed this attempt. Only the attempt that still holds the lease may record it.

    A retryable failure goes back to pending with a growing delay until the retry window closes; a final one
    (or the window closing) marks the refund failed for a person. Returns the refund if it was changed.
    """
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund.status != RefundStatus.SENDING or refund.attempts != attempt:
        return None  # finished by someone else, or taken over after our lease ran out: their answer counts
    refund.last_error = error
    refund.lease_until = None
    refund.updated_at = now
    retry_at = next_attempt_at(refund.retry_until, attempt, now)
    if retryable and retry_at is not None:
        refund.status = RefundStatus.PENDING
        refund.next_attempt_at = retry_at
    else:
        refund.status = RefundStatus.FAILED
        refund.next_attempt_at = None
    session.flush()
    return refund


def next_attempt_at(retry_until: datetime, attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failures: 1, 2, 4 ... minutes, at most 4 hours apart, until `retry_until`."""
    delay = min(FIRST_RETRY_DELAY * (2 ** min(max(attempts - 1, 0), 20)), LONGEST_RETRY_DELAY)
    retry_at = now + delay
    if retry_at > retry_until:
        return None
    return retry_at


def retry_failed_refund(session: Session, refund_id: int, now: datetime) -> Refund:
    """A person asks for a failed refund to be tried again: it gets a fresh retry window."""
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund is None or refund.status != RefundStatus.FAILED:
        raise ValueError("Only a failed refund can be retried.")
    refund.status = RefundStatus.PENDING
    refund.next_attempt_at = now
    refund.retry_until = now + REFUND_RETRY_WINDOW
    refund.updated_at = now
    session.flush()
    return refund


def settle_order_refunds(session: Session, order: Order, now: datetime) -> None:
    """An order whose succeeded refunds cover what it was paid is refunded."""
    refunded = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED
        )
    )
    if refunded >= order.amount_total:
        mark_order_refunded(order, now)


def record_charge_refunded(session: Session, payment_intent_id: str, fully: bool, now: datetime) -> Order | None:
    """The gateway reports money returned on a payment (from the shop or from Stripe's dashboard)."""
    require_write_transaction(session)
    order = session.scalar(select(Order).where(Order.payment_intent_id == payment_intent_id))
    if order is None or not fully:
        return order
    mark_order_refunded(order, now)
    session.flush()
    return order


def mark_order_refunded(order: Order, now: datetime) -> None:
    """A refunded order keeps its units, retired from sale: a refund is not a restock by default."""
    order.status = OrderStatus.REFUNDED
    order.refunded_at = order.refunded_at or now
