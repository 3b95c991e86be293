"""Turning a paid checkout into an order, exactly once, whatever order the news arrives in.

The payment may be reported by the webhook, by the success page asking the gateway, or by the sweeper finding a
session complete; any of them may come twice, late, or after the hold was released. Every path calls
`fulfil_paid_checkout()`, which is idempotent on the checkout session id (backed by a unique constraint).

A buyer who paid is never left without a unit or a refund: if their held numbers went to someone else, they get
other free numbers of the same release; if there are not enough, the order is recorded and a refund is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.database import begin_write_transaction
from storefront.domain.inventory import (
    HoldBroken,
    HoldNotActive,
    convert,
    end_holds,
    free_units_of,
    lock_buyer,
    lock_hold,
    reclaim_expired_holds,
    take_lowest,
    units_owned,
)
from storefront.models import Hold, HoldStatus, Order, OrderStatus, Refund, RefundStatus, Release


@dataclass(frozen=True)
class PaidCheckout:
    """A completed, paid checkout as the gateway reported it."""

    session_id: str
    hold_id: int | None
    payment_intent_id: str | None
    amount_total: int
    currency: str
    email: str
    shipping_name: str = ""
    shipping_address: dict[str, Any] = field(default_factory=dict)


class Outcome(StrEnum):
    CONVERTED = "converted"  # the held numbers are sold to the buyer
    ALREADY_DONE = "already_done"  # this payment was fulfilled before; nothing changed
    REASSIGNED = "reassigned"  # the held numbers were gone; other free numbers were sold instead
    REFUND_NEEDED = "refund_needed"  # no numbers left; the order is recorded and a refund is queued
    UNKNOWN_HOLD = "unknown_hold"  # the session names no hold of ours: refund it, a person should look


@dataclass(frozen=True)
class Fulfilment:
    outcome: Outcome
    order: Order
    refund: Refund | None = None


def fulfil_paid_checkout(session: Session, paid: PaidCheckout, now: datetime) -> Fulfilment | None:
    """Record the order for a paid checkout and give it its units (or queue its refund). Idempotent.

    Returns None when the checkout names no hold of this shop (another integration on the same Stripe account).
    """
    begin_write_transaction(session)
    existing = session.scalar(select(Order).where(Order.checkout_session_id == paid.session_id))
    if existing is not None:
        return Fulfilment(Outcome.ALREADY_DONE, existing)

    hold = find_hold(session, paid)
    if hold is None:
        return None
    hold = lock_hold(session, hold.id)
    # Whoever held the lock before us may have fulfilled this very payment (webhook and success page racing).
    existing = session.scalar(select(Order).where(Order.checkout_session_id == paid.session_id))
    if existing is not None:
        return Fulfilment(Outcome.ALREADY_DONE, existing)
    release = session.get(Release, hold.release_id)
    order = Order(
        release_id=release.id,
        # The hold's email, not the one typed on Stripe's page: the per-customer limit is counted by it.
        email=hold.buyer_email,
        quantity=hold.quantity,
        amount_total=paid.amount_total,
        currency=paid.currency.upper(),
        checkout_session_id=paid.session_id,
        payment_intent_id=paid.payment_intent_id,
        shipping_name=paid.shipping_name,
        shipping_address=paid.shipping_address,
        created_at=now,
    )
    hold.payment_status = "paid"

    if hold.status == HoldStatus.ACTIVE:
        order.hold_id = hold.id
        try:
            with session.begin_nested():
                convert(session, hold, order, now)
            return Fulfilment(Outcome.CONVERTED, order)
        except HoldBroken:
            # Cannot happen while reclaiming ends a hold in the same transaction; handled like a released hold.
            order.hold_id = None
            free_units_of(session, [hold.id])
            end_holds(session, [hold.id], now, "broken")

    return reassign_or_refund(session, hold, release, order, now)


def find_hold(session: Session, paid: PaidCheckout) -> Hold | None:
    hold = session.scalar(select(Hold).where(Hold.payment_session_id == paid.session_id))
    if hold is None and paid.hold_id is not None:
        hold = session.get(Hold, paid.hold_id)
    return hold


def reassign_or_refund(session: Session, hold: Hold, release: Release, order: Order, now: datetime) -> Fulfilment:
    """The buyer paid for a hold whose numbers are gone: give them other free numbers, or their money back.

    Other numbers are given only within the per-customer limit (the buyer may have reserved again meanwhile).
    """
    lock_buyer(session, release.id, hold.buyer_email)
    within_limit = units_owned(session, release.id, hold.buyer_email, now) + hold.quantity <= release.per_customer_limit
    try:
        if not within_limit:
            # The buyer has since reserved or bought others of this run: more would pass the producer's limit.
            raise HoldBroken("over the per-customer limit")
        with session.begin_nested():
            reclaim_expired_holds(session, release.id, now)
            replacement = Hold(
                release_id=release.id,
                buyer_email=hold.buyer_email,
                quantity=hold.quantity,
                status=HoldStatus.ACTIVE,
                created_at=now,
                expires_at=now,
                payment_status="paid",
            )
            session.add(replacement)
            session.flush()
            taken = take_lowest(session, release.id, hold.quantity, replacement)
            if len(taken) < hold.quantity:
                raise HoldBroken(f"only {len(taken)} free")
            order.hold_id = replacement.id
            order.note = (
                f"Paid after its hold had ended and its numbers had gone to other buyers; "
                f"No. {', '.join(str(number) for number in taken)} assigned instead."
            )
            convert(session, replacement, order, now)
        return Fulfilment(Outcome.REASSIGNED, order)
    except (HoldBroken, HoldNotActive):
        pass  # the savepoint is rolled back: no units taken, no replacement hold

    order.hold_id = None
    order.note = (
        "Paid after its hold had ended, and no other numbers could be given (none left, or the buyer's limit "
        "was reached): refunded in full."
    )
    session.add(order)
    session.flush()
    refund = queue_refund(session, order, "units_unavailable", now)
    return Fulfilment(Outcome.REFUND_NEEDED, order, refund)


def queue_refund(session: Session, order: Order, reason: str, now: datetime) -> Refund:
    """Record that an order's money goes back; the worker sends it to the gateway (and retries)."""
    refund = Refund(
        order_id=order.id,
        amount=order.amount_total,
        currency=order.currency,
        reason=reason,
        status=RefundStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    order.status = OrderStatus.REFUNDING
    session.flush()
    return refund


def record_refund_sent(session: Session, refund: Refund, gateway_refund_id: str, now: datetime) -> None:
    """The gateway accepted the refund."""
    refund.status = RefundStatus.SUCCEEDED
    refund.gateway_refund_id = gateway_refund_id
    refund.attempts += 1
    refund.updated_at = now
    mark_order_refunded(refund.order, now)
    session.flush()


def record_refund_failure(session: Session, refund: Refund, error: str, now: datetime, *, final: bool) -> None:
    """The gateway failed; a retryable failure is tried again by the worker, a final one waits for a person."""
    refund.attempts += 1
    refund.last_error = error
    refund.updated_at = now
    if final:
        refund.status = RefundStatus.FAILED
    session.flush()


def record_charge_refunded(session: Session, payment_intent_id: str, fully: bool, now: datetime) -> Order | None:
    """The gateway reports money returned on a payment (from the shop or from Stripe's dashboard)."""
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
