"""Turning a paid checkout into an order, exactly once, whatever order the news arrives in.

The payment may be reported by the webhook, by the success page asking the gateway, or by the sweeper finding a
session complete; any of them may come twice, late, or after the hold was released. Every path calls
`fulfil_paid_checkout()`, which is idempotent on the checkout session id (backed by unique constraints).

A verified payment is authentic, not necessarily ours. It converts a hold only when it is bound to it: it is the
session the shop opened for that hold, its id recorded on the hold, at the amount and currency the shop asked for.
The shop hands a buyer the payment page only after recording the session's id, so no honest payment is of a session
that is not recorded; a session that merely names a hold (metadata, reference, even identical line items: anyone
with access to the account can copy those) is not bound. Anything that claims to pay one of our holds without
being bound is recorded as an `UnmatchedPayment`, refunded, and never touches anyone's units.

A buyer who paid is never left without a unit or a refund: if their hold ended before the payment arrived they
get their own numbers back when those are still free, else other free numbers of the same release, else the
order is recorded and a refund is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain import waitlist
from storefront.domain.inventory import (
    HoldBroken,
    HoldNotActive,
    convert,
    end_holds,
    free_units_of,
    lock_buyer,
    lock_hold,
    reclaim_expired_holds,
    release_hold,
    take_lowest,
    take_numbers,
    units_owned,
)
from storefront.domain.orders import numbers_text, record_order_event
from storefront.domain.refunds import queue_refund
from storefront.models import Hold, HoldStatus, Order, Refund, Release, Unit, UnmatchedPayment
from storefront.text import format_money


@dataclass(frozen=True)
class LineItem:
    """One line of a checkout: what the shop asks the gateway to charge, and what it reads back."""

    name: str
    unit_amount: int
    quantity: int = 1


@dataclass(frozen=True)
class PaidCheckout:
    """A completed, paid checkout as the gateway reported it."""

    session_id: str
    payment_intent_id: str | None
    amount_total: int
    currency: str
    email: str
    # What the session says of itself: the hold it claims to pay for (metadata) and the reference we gave it.
    claimed_hold_id: int | None = None
    client_reference_id: str | None = None
    shipping_name: str = ""
    shipping_address: dict[str, Any] = field(default_factory=dict)


class Outcome(StrEnum):
    CONVERTED = "converted"  # the buyer got the numbers they held
    ALREADY_DONE = "already_done"  # this payment was handled before; nothing changed
    REASSIGNED = "reassigned"  # some of the held numbers were gone; other free numbers were sold instead
    REFUND_NEEDED = "refund_needed"  # no numbers left; the order is recorded and a refund is queued
    UNMATCHED = "unmatched"  # not bound to the hold it names: recorded, refunded, nobody's units touched


@dataclass(frozen=True)
class Fulfilment:
    outcome: Outcome
    order: Order | None = None
    refund: Refund | None = None
    unmatched: UnmatchedPayment | None = None
    # Paid after its hold had ended (its numbers kept or replaced, as the outcome says): the buyer is told why.
    paid_late: bool = False


def client_reference(hold_id: int) -> str:
    """The reference the shop gives the session it opens for a hold."""
    return f"hold-{hold_id}"


def line_item_name(release: Release, number: int) -> str:
    batch = release.batch
    return f"Batch {batch.code} {batch.product.name} — No. {number} of {release.total_units}"


def expected_line_items(release: Release, hold: Hold) -> tuple[LineItem, ...]:
    """The line items the shop asked for when it opened this hold's session: one per held number."""
    return tuple(LineItem(line_item_name(release, number), hold.unit_amount) for number in hold.checkout_numbers or ())


def record_checkout_request(
    session: Session, hold: Hold, numbers: list[int], unit_amount: int, currency: str, shipping_amount: int = 0
) -> None:
    """Remember what the shop is about to ask the gateway for: the only payment that may convert this hold.

    Shipping is charged once per order on top of the units, so a payment of the units alone is not this one.
    """
    require_write_transaction(session)
    if shipping_amount < 0:
        raise ValueError(f"Shipping cannot be negative ({shipping_amount})")
    hold.checkout_numbers = list(numbers)
    hold.unit_amount = unit_amount
    hold.shipping_amount = shipping_amount
    hold.expected_amount = unit_amount * len(numbers) + shipping_amount
    hold.payment_currency = currency.upper()
    session.flush()


def claims_to_be_ours(paid: PaidCheckout) -> bool:
    """A session that names none of our holds belongs to another integration on the same account: not ours."""
    return paid.claimed_hold_id is not None or (paid.client_reference_id or "").startswith("hold-")


def fulfil_paid_checkout(session: Session, paid: PaidCheckout, now: datetime) -> Fulfilment | None:
    """Record the order for a paid checkout and give it its units (or queue its refund). Idempotent.

    Returns None when the checkout does not claim to be the shop's (another integration on the same account).
    """
    require_write_transaction(session)
    done = already_handled(session, paid.session_id)
    if done is not None:
        return done

    hold, mismatch = bind_payment(session, paid)
    if hold is None and mismatch is None:
        return None
    if mismatch is not None:
        return record_unmatched_payment(session, paid, hold, mismatch, now)

    hold = lock_hold(session, hold.id)
    # Whoever held the lock before us may have handled this very payment (webhook and success page racing).
    done = already_handled(session, paid.session_id)
    if done is not None:
        return done
    release = session.get(Release, hold.release_id)
    order = Order(
        release_id=release.id,
        # The hold's email and key, not the one typed on Stripe's page: the per-customer limit is counted by them.
        email=hold.buyer_email,
        buyer_key=hold.buyer_key,
        quantity=hold.quantity,
        unit_amount=hold.unit_amount,
        shipping_amount=hold.shipping_amount or 0,
        amount_total=paid.amount_total,
        currency=hold.payment_currency,
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
            record_paid_event(session, order, release, now)
            return Fulfilment(Outcome.CONVERTED, order)
        except HoldBroken:
            # Cannot happen while reclaiming ends a hold in the same transaction; handled like a released hold.
            order.hold_id = None
            freed = free_units_of(session, [hold.id])
            end_holds(session, [hold.id], now, "broken")
            waitlist.units_freed(session, hold.release_id, freed, now)

    return reassign_or_refund(session, hold, release, order, now)


def already_handled(session: Session, session_id: str) -> Fulfilment | None:
    order = session.scalar(select(Order).where(Order.checkout_session_id == session_id))
    if order is not None:
        return Fulfilment(Outcome.ALREADY_DONE, order)
    unmatched = session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.checkout_session_id == session_id))
    if unmatched is not None:
        return Fulfilment(Outcome.ALREADY_DONE, unmatched=unmatched)
    return None


def bind_payment(session: Session, paid: PaidCheckout) -> tuple[Hold | None, str | None]:
    """Find the hold this payment is bound to; or the hold it claims and why it is not bound to it.

    (hold, None): bound. (hold or None, reason): claims to be ours but is not bound. (None, None): not ours.
    """
    hold = session.scalar(select(Hold).where(Hold.payment_session_id == paid.session_id))
    if hold is None:
        if not claims_to_be_ours(paid):
            return None, None
        claimed = session.get(Hold, paid.claimed_hold_id) if paid.claimed_hold_id is not None else None
        if claimed is None:
            return None, f"names hold {paid.claimed_hold_id or paid.client_reference_id}, which does not exist"
        return claimed, (
            f"names hold {claimed.id} but is not the session the shop opened for it "
            f"({claimed.payment_session_id or 'none recorded'})"
        )
    if paid.amount_total != hold.expected_amount or (paid.currency or "").upper() != hold.payment_currency:
        return hold, (
            f"paid {paid.amount_total} {paid.currency} where the shop asked for "
            f"{hold.expected_amount} {hold.payment_currency}"
        )
    return hold, None


def record_unmatched_payment(
    session: Session, paid: PaidCheckout, claimed: Hold | None, reason: str, now: datetime
) -> Fulfilment:
    """Keep a payment we did not ask for apart from every unit, and send the money back."""
    unmatched = UnmatchedPayment(
        checkout_session_id=paid.session_id,
        payment_intent_id=paid.payment_intent_id,
        amount=paid.amount_total,
        currency=(paid.currency or "").upper()[:3],
        email=paid.email or "",
        claimed_hold_id=claimed.id if claimed is not None else None,
        reason=reason,
        created_at=now,
    )
    session.add(unmatched)
    session.flush()
    if claimed is not None and claimed.payment_session_id == paid.session_id:
        # The hold's own session was paid wrongly: it can never be paid rightly now, so the hold ends.
        claimed = lock_hold(session, claimed.id)
        claimed.payment_status = "mismatch"
        if claimed.status == HoldStatus.ACTIVE:
            release_hold(session, claimed, now, reason="payment_mismatch")
    refund = None
    if paid.payment_intent_id and paid.amount_total > 0:
        refund = queue_refund(
            session,
            paid.payment_intent_id,
            paid.amount_total,
            unmatched.currency,
            "unmatched_payment",
            now,
            unmatched=unmatched,
        )
    return Fulfilment(Outcome.UNMATCHED, unmatched=unmatched, refund=refund)


def reassign_or_refund(session: Session, hold: Hold, release: Release, order: Order, now: datetime) -> Fulfilment:
    """The buyer paid for a hold that had ended: their own numbers if still free, else others, else their money.

    Other numbers are given only within the per-customer limit (the buyer may have reserved again meanwhile).
    """
    lock_buyer(session, release.id, hold.buyer_key)
    within_limit = units_owned(session, release.id, hold.buyer_key, now) + hold.quantity <= release.per_customer_limit
    own_numbers = sorted(hold.checkout_numbers or [])
    try:
        if not within_limit:
            # The buyer has since reserved or bought others of this run: more would pass the producer's limit.
            raise HoldBroken("over the per-customer limit")
        with session.begin_nested():
            reclaim_expired_holds(session, release.id, now)
            replacement = Hold(
                release_id=release.id,
                buyer_email=hold.buyer_email,
                buyer_key=hold.buyer_key,
                quantity=hold.quantity,
                status=HoldStatus.ACTIVE,
                created_at=now,
                expires_at=now,
                payment_status="paid",
                unit_amount=hold.unit_amount,
                shipping_amount=hold.shipping_amount,
                expected_amount=hold.expected_amount,
                payment_currency=hold.payment_currency,
            )
            session.add(replacement)
            session.flush()
            taken = take_numbers(session, release.id, own_numbers, replacement)
            if len(taken) < hold.quantity:
                taken += take_lowest(session, release.id, hold.quantity - len(taken), replacement)
            if len(taken) < hold.quantity:
                raise HoldBroken(f"only {len(taken)} free")
            taken = sorted(taken)
            replacement.checkout_numbers = taken
            order.hold_id = replacement.id
            changed = taken != own_numbers
            order.note = f"Paid after its hold had ended; No. {', '.join(str(number) for number in taken)} " + (
                "assigned instead, its own numbers having gone to other buyers." if changed else "still free."
            )
            convert(session, replacement, order, now)
        record_paid_event(session, order, release, now)
        if changed:
            record_order_event(
                session,
                order.id,
                "reassigned",
                f"Paid after its hold had ended: given {numbers_text(taken, release.total_units)} instead of "
                f"{numbers_text(own_numbers, release.total_units)}, which had gone to other buyers",
                now,
            )
        return Fulfilment(Outcome.REASSIGNED if changed else Outcome.CONVERTED, order, paid_late=True)
    except (HoldBroken, HoldNotActive):
        pass  # the savepoint is rolled back: no units taken, no replacement hold

    order.hold_id = None
    order.note = (
        "Paid after its hold had ended, and no other numbers could be given (none left, or the buyer's limit "
        "was reached): refunded in full."
    )
    session.add(order)
    session.flush()
    refund = queue_refund(
        session, order.payment_intent_id, order.amount_total, order.currency, "units_unavailable", now, order=order
    )
    record_order_event(
        session,
        order.id,
        "paid",
        f"Paid {format_money(order.amount_total, order.currency)} after its hold had ended; no numbers could be "
        "given (none left, or the buyer's limit reached), so a full refund is queued",
        now,
    )
    return Fulfilment(Outcome.REFUND_NEEDED, order, refund)


def record_paid_event(session: Session, order: Order, release: Release, now: datetime) -> None:
    """Start the order's timeline: what was paid, for which numbers."""
    numbers = session.scalars(select(Unit.number).where(Unit.order_id == order.id).order_by(Unit.number)).all()
    record_order_event(
        session,
        order.id,
        "paid",
        f"Paid {format_money(order.amount_total, order.currency)} for {numbers_text(numbers, release.total_units)}",
        now,
    )
