"""Refunds: money going back on an order or an unmatched payment, exactly once, and what it does to the order.

A refund is a leased state machine, sent by the worker (or, for a producer's refund, once at once by the page that
asked for it):

    pending --lease--> sending --gateway accepted--> succeeded
                          |------retryable failure--> pending (next_attempt_at, backing off)
                          |------final failure, or retries ran out--> failed (a person looks)
    sending, lease expired (the worker died) --lease--> sending (taken over)

The lease lives in the database. Every attempt sends the same idempotency key (one per refund), so two workers
that both reach the gateway (one's lease ran out mid-call) still make one refund there; the first to record the
answer wins and a late answer for a finished refund changes nothing. A failure is recorded only by the attempt that
holds the lease, so a stale failure never overwrites a success.

A producer refunds a whole order or some of its numbered units (`request_refund`), each one retired (it stays sold
to the order: a refund is not a restock) or returned to sale once the gateway has paid it back. `RefundLine` rows
name the units; one live (not voided) line per unit, backed by a partial unique index. Refunds made in Stripe's own
dashboard are learnt from charge.refunded and recorded (`reflect_charge_refunds`), never sent again.

The order's money status follows its refunds (`settle_order_refunds`): refunded once succeeded refunds cover what
it was paid; refunding while one is on its way; else paid (partly refunded, its other units still to ship).

Locks, always in this order: the order's row, then the refund's. Every writer here takes both that way, so the
webhook, the worker and a producer's request never wait on each other in a circle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain import waitlist
from storefront.domain.errors import DomainError
from storefront.domain.orders import numbers_text, record_order_event
from storefront.models import (
    Order,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Unit,
    UnitStatus,
    UnmatchedPayment,
)
from storefront.text import format_money

REFUND_LEASE = timedelta(minutes=2)
# Stripe retries a webhook for up to 3 days; a refund gets as long before a person is asked to look.
REFUND_RETRY_WINDOW = timedelta(days=3)
FIRST_RETRY_DELAY = timedelta(minutes=1)
LONGEST_RETRY_DELAY = timedelta(hours=4)

# Why a producer refunds: the key is stored on the refund (and sent to Stripe as metadata), the label is shown.
REFUND_REASONS = {
    "damaged": "Damaged",
    "lost_in_transit": "Lost in transit",
    "buyer_cancelled": "Buyer cancelled",
    "other": "Other",
}
REFUND_NOTE_MAX = 500
# The reason recorded on a refund made in Stripe's dashboard, which the shop only hears of.
DASHBOARD_REASON = "stripe_dashboard"
IN_FLIGHT = (RefundStatus.PENDING, RefundStatus.SENDING)
# Money gone back or on its way: what the guard against refunding more than was paid counts.
LIVE = (RefundStatus.PENDING, RefundStatus.SENDING, RefundStatus.SUCCEEDED)
# A gateway refund in these states has returned (or is returning) the money; failed and canceled ones have not.
GATEWAY_MONEY_RETURNED = {"succeeded", "pending", "requires_action"}
SHOP_REFUND_KEY = re.compile(r"refund-([0-9]{1,9})")


class RefundRefused(DomainError):
    """A refund cannot be asked for as it stands: nothing left to refund, a unit not the order's, no reason..."""


# --- Queueing a refund ----------------------------------------------------------------------------------------


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


def request_refund(
    session: Session,
    order_id: int,
    unit_ids: Iterable[int],
    return_to_sale_ids: Iterable[int],
    reason: str,
    now: datetime,
    requested_by: str,
    *,
    note: str = "",
) -> Refund:
    """A producer refunds some of an order's units (or, for an order without units, what is left of its payment).

    Each refunded unit stays sold to the order (retired) unless it is in `return_to_sale_ids`: those go back on sale
    once the gateway has paid them back. The amount is the units times the price they sold at; the refund of the
    order's last units also returns its shipping (everything left of the payment). Raises RefundRefused
    (nothing changed) for an order that is refunded already, units that are not the order's or are refunded already,
    more than was paid, or no reason. The caller commits, then sends it (`storefront.checkout.flows.process_refund`).
    """
    require_write_transaction(session)
    order = lock_order(session, order_id)
    if order is None:
        raise RefundRefused(f"There is no order {order_id}.")
    reason, note = (reason or "").strip(), " ".join((note or "").split())
    if reason not in REFUND_REASONS:
        raise RefundRefused("Choose why you are refunding: damaged, lost in transit, buyer cancelled or other.")
    if reason == "other" and not note:
        raise RefundRefused("Say in a few words why you are refunding.")
    if len(note) > REFUND_NOTE_MAX:
        raise RefundRefused(f"Keep the note to {REFUND_NOTE_MAX} characters.")
    if order.status == OrderStatus.REFUNDED:
        raise RefundRefused(f"Order {order.reference} is refunded already: there is nothing left to refund.")
    if not order.payment_intent_id or order.amount_total <= 0:
        raise RefundRefused(f"Order {order.reference} has no card payment to refund.")
    wanted = unique_ids(unit_ids)
    returning = set(unique_ids(return_to_sale_ids))
    owned = {
        unit.id: unit
        for unit in session.scalars(
            select(Unit).where(Unit.order_id == order.id, Unit.status == UnitStatus.SOLD).order_by(Unit.number)
        )
    }
    totals = refund_totals(session, order.id)
    remaining = order.amount_total - totals.live
    superseded: list[RefundLine] = []

    if owned or wanted or returning:
        if any(unit_id not in owned for unit_id in [*wanted, *returning]):
            raise RefundRefused(
                f"Only units still sold to order {order.reference} can be refunded; reload the page to see them."
            )
        not_refunded = sorted(owned[unit_id].number for unit_id in returning - set(wanted))
        if not_refunded:
            raise RefundRefused(
                f"Tick “refund” for {numbers_text(not_refunded, order.release.total_units)} too: only a refunded unit "
                "can go back on sale."
            )
        if not wanted:
            raise RefundRefused("Tick “refund” for at least one unit.")
        already = []
        for line in session.scalars(
            select(RefundLine).where(RefundLine.unit_id.in_(wanted), RefundLine.voided_at.is_(None))
        ):
            if line.order_id != order.id and line.returned_at is not None:
                # Refunded on an earlier order, returned to sale and sold again to this one: that line has done its
                # work, and this refund's line holds the unit from now on.
                superseded.append(line)
            else:
                already.append(line.number)
        if already:
            raise RefundRefused(
                f"{numbers_text(already, order.release.total_units)} is refunded already, or being refunded."
            )
        amount = len(wanted) * order.unit_amount
        if refunds_the_last_units(session, order, owned, wanted):
            # Nothing of the order is left to ship: its shipping goes back with its last units, so refunding every
            # unit refunds everything that is left of the payment.
            amount = max(remaining, amount)
    else:
        # Its units were gone before it was paid (a refund was queued then): what is left of the payment goes back.
        amount = remaining
    if amount <= 0 or amount > remaining:
        raise RefundRefused(
            f"That would refund {format_money(totals.live + amount, order.currency)} of the "
            f"{format_money(order.amount_total, order.currency)} paid: only "
            f"{format_money(max(remaining, 0), order.currency)} is left to refund."
        )

    for line in superseded:
        line.voided_at = now
    refund = queue_refund(session, order.payment_intent_id, amount, order.currency, reason, now, order=order)
    refund.requested_by = requested_by
    for unit_id in wanted:
        unit = owned[unit_id]
        session.add(
            RefundLine(
                refund_id=refund.id,
                order_id=order.id,
                unit_id=unit.id,
                release_id=unit.release_id,
                number=unit.number,
                return_to_sale=unit_id in returning,
            )
        )
    session.flush()
    total = order.release.total_units
    what = numbers_text([owned[unit_id].number for unit_id in wanted], total) if wanted else "the whole order"
    summary = f"Refund of {format_money(amount, order.currency)} asked for {what}: {REFUND_REASONS[reason]}"
    summary += f" ({note})" if note else ""
    if returning:
        back = numbers_text([owned[unit_id].number for unit_id in returning], total)
        summary += f". {back} goes back on sale once Stripe has refunded it"
    record_order_event(session, order.id, "refund_requested", summary, now, actor_email=requested_by)
    return refund


def refunds_the_last_units(session: Session, order: Order, owned: dict[int, Unit], wanted: list[int]) -> bool:
    """Whether refunding `wanted` leaves none of the order's units unrefunded."""
    refunded = set(
        session.scalars(
            select(RefundLine.unit_id).where(
                RefundLine.order_id == order.id, RefundLine.unit_id.in_(owned), RefundLine.voided_at.is_(None)
            )
        )
    )
    return set(owned) - refunded <= set(wanted)


def unique_ids(values: Iterable[object]) -> list[int]:
    """The ids asked for, each once, in the order given; anything that is not a whole number is refused."""
    seen: list[int] = []
    for value in values or ():
        if isinstance(value, bool) or not isinstance(value, int):
            raise RefundRefused("Only units still sold to this order can be refunded; reload the page to see them.")
        if value not in seen:
            seen.append(value)
    return seen


# --- What an order has refunded, for the guard and the producer's page ----------------------------------------


@dataclass(frozen=True)
class RefundTotals:
    """An order's refunds in minor units: gone back (succeeded) and on their way (pending or sending)."""

    succeeded: int = 0
    in_flight: int = 0

    @property
    def live(self) -> int:
        return self.succeeded + self.in_flight


def refund_totals(session: Session, order_id: int) -> RefundTotals:
    succeeded = func.coalesce(func.sum(Refund.amount).filter(Refund.status == RefundStatus.SUCCEEDED), 0)
    in_flight = func.coalesce(func.sum(Refund.amount).filter(Refund.status.in_(IN_FLIGHT)), 0)
    row = session.execute(select(succeeded, in_flight).where(Refund.order_id == order_id)).one()
    return RefundTotals(int(row[0]), int(row[1]))


@dataclass(frozen=True)
class UnitRefundState:
    """One of an order's units as the refund page lists it."""

    unit_id: int
    number: int
    state: str  # refundable, refunding (a refund is on its way), refunded (retired), returned (back on sale)


@dataclass(frozen=True)
class RefundOptions:
    """What a producer may still refund on an order."""

    order: Order
    units: list[UnitRefundState] = field(default_factory=list)
    totals: RefundTotals = RefundTotals()

    @property
    def remaining(self) -> int:
        return max(self.order.amount_total - self.totals.live, 0)

    @property
    def refundable_units(self) -> list[UnitRefundState]:
        return [unit for unit in self.units if unit.state == "refundable"]

    @property
    def whole_order(self) -> bool:
        """An order that never had units (they were gone before it was paid): its payment is refunded as a whole."""
        return not self.units

    @property
    def why_not(self) -> str:
        """Why nothing can be refunded on the order now; empty when something can."""
        if self.order.status == OrderStatus.REFUNDED or self.remaining <= 0:
            return "Nothing is left to refund on this order."
        if not self.order.payment_intent_id:
            return "This order has no card payment to refund."
        if not self.whole_order and not self.refundable_units:
            return "Every unit of this order is refunded or being refunded."
        return ""

    @property
    def can_refund(self) -> bool:
        return not self.why_not


def refund_options(session: Session, order: Order) -> RefundOptions:
    """The order's units (still its own, or returned to sale by its refunds), each with its refund state."""
    lines = session.execute(
        select(RefundLine.unit_id, RefundLine.number, RefundLine.returned_at, Refund.status)
        .join(Refund, Refund.id == RefundLine.refund_id)
        .where(
            RefundLine.order_id == order.id,
            or_(RefundLine.voided_at.is_(None), RefundLine.returned_at.is_not(None)),
        )
    ).all()
    state_of: dict[int, tuple[int, str]] = {}
    for unit_id, number, returned_at, status in lines:
        if returned_at is not None:
            state_of[unit_id] = (number, "returned")
        else:
            state_of[unit_id] = (number, "refunded" if status == RefundStatus.SUCCEEDED else "refunding")
    for unit_id, number in session.execute(
        select(Unit.id, Unit.number).where(Unit.order_id == order.id, Unit.status == UnitStatus.SOLD)
    ):
        state_of.setdefault(unit_id, (number, "refundable"))
    units = sorted(
        (UnitRefundState(unit_id, number, state) for unit_id, (number, state) in state_of.items()),
        key=lambda unit: unit.number,
    )
    return RefundOptions(order=order, units=units, totals=refund_totals(session, order.id))


# --- Sending: the lease, and the gateway's answer --------------------------------------------------------------


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


def lock_order(session: Session, order_id: int) -> Order | None:
    return session.scalar(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    )


def lock_refund(session: Session, refund_id: int) -> Refund | None:
    """Load a refund with its row locked, fresh; its order's row is locked first (see the module's lock order)."""
    order_id = session.scalar(select(Refund.order_id).where(Refund.id == refund_id))
    if order_id is not None:
        lock_order(session, order_id)
    return session.scalar(
        select(Refund).where(Refund.id == refund_id).with_for_update().execution_options(populate_existing=True)
    )


def record_refund_sent(session: Session, refund_id: int, gateway_refund_id: str, now: datetime) -> Refund | None:
    """The gateway accepted the refund. Returns the refund if this call finished it, None if it was done already.

    Its return-to-sale units go back on sale, and the order is settled (refunded, or paid again when partly).
    """
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        return None
    adopt_gateway_copy(session, refund, gateway_refund_id, now)
    # Any attempt's success counts, even one whose lease ran out: every attempt sent the same idempotency key,
    # so the gateway made one refund whoever asked.
    refund.status = RefundStatus.SUCCEEDED
    refund.gateway_refund_id = gateway_refund_id
    refund.lease_until = None
    refund.next_attempt_at = None
    refund.last_error = ""
    refund.updated_at = now
    order = refund.order
    if order is not None:
        returned = return_lines_to_sale(session, refund, now)
        settle_order_refunds(session, order, now)
        record_order_event(session, order.id, "refunded", refunded_summary(refund, returned), now)
    session.flush()
    return refund


def adopt_gateway_copy(session: Session, refund: Refund, gateway_refund_id: str, now: datetime) -> None:
    """Drop the copy of this very refund that charge.refunded recorded as made in Stripe's dashboard, if any.

    It happens only when that webhook could not tell the refund was the shop's (it arrived before this answer,
    without the shop's idempotency key): the money went back once, and must be counted once.
    """
    copy = session.scalar(select(Refund).where(Refund.gateway_refund_id == gateway_refund_id, Refund.id != refund.id))
    if copy is None:
        return
    if not (copy.from_gateway and copy.order_id == refund.order_id and copy.amount == refund.amount and not copy.lines):
        raise RuntimeError(f"Stripe refund {gateway_refund_id} is recorded on refund {copy.id} already")
    session.delete(copy)
    session.flush()
    record_order_event(
        session,
        refund.order_id,
        "refund_matched",
        f"The refund of {format_money(copy.amount, copy.currency)} seen in Stripe was the shop's own refund, "
        "counted once",
        now,
    )


def return_lines_to_sale(session: Session, refund: Refund, now: datetime) -> list[int]:
    """Put the refund's return-to-sale units back on sale; returns their numbers."""
    returned = []
    for line in refund.lines:
        if line.voided_at is not None or not line.return_to_sale or line.returned_at is not None:
            continue
        if return_unit_to_sale(session, line.unit_id, line.order_id, now):
            line.returned_at = now
            returned.append(line.number)
    session.flush()
    return returned


def return_unit_to_sale(session: Session, unit_id: int, order_id: int, now: datetime) -> bool:
    """Put a refunded unit back on sale, if it is still sold to the order it was refunded on. The one place a unit
    comes back from a sale, so what happens then (offering it to a waitlist first) changes here alone.

    Returns whether it went back. When the release has sold out and people are waiting, it goes to the next of
    them as an offer (storefront.domain.waitlist) instead of public sale.
    """
    require_write_transaction(session)
    unit = session.scalar(
        select(Unit).where(Unit.id == unit_id).with_for_update().execution_options(populate_existing=True)
    )
    if unit is None or unit.order_id != order_id or unit.status != UnitStatus.SOLD:
        return False
    unit.status = UnitStatus.AVAILABLE
    unit.order = None
    unit.hold = None
    unit.held_until = None
    unit.sold_at = None
    session.flush()
    waitlist.units_freed(session, unit.release_id, 1, now)
    return True


def refunded_summary(refund: Refund, returned: Sequence[int]) -> str:
    """The order's timeline line for a refund the gateway made."""
    order = refund.order
    total = order.release.total_units
    money = format_money(refund.amount, refund.currency)
    numbers = [line.number for line in refund.lines if line.voided_at is None]
    if numbers:
        summary = f"Refunded {money} for {numbers_text(numbers, total)}"
    elif refund.amount >= order.amount_total:
        summary = f"Refunded {money} in full"
    else:
        summary = f"Refunded {money}"
    if returned:
        summary += f"; {numbers_text(returned, total)} back on sale"
    return summary


def record_refund_failure(
    session: Session, refund_id: int, attempt: int, error: str, now: datetime, *, retryable: bool
) -> Refund | None:
    """The gateway failed this attempt. Only the attempt that still holds the lease may record it.

    A retryable failure goes back to pending with a growing delay until the retry window closes; a final one
    (or the window closing) marks the refund failed for a person, frees its units for another refund and puts the
    order back as it was. Returns the refund if it was changed.
    """
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund.status != RefundStatus.SENDING or refund.attempts != attempt:
        return None  # finished by someone else, or taken over after our lease ran out: their answer counts
    refund.last_error = error
    refund.lease_until = None
    refund.updated_at = now
    retry_at = next_attempt_at(refund.retry_until, attempt, now)
    money = format_money(refund.amount, refund.currency)
    if retryable and retry_at is not None:
        refund.status = RefundStatus.PENDING
        refund.next_attempt_at = retry_at
        if refund.order_id is not None and attempt == 1:
            record_order_event(
                session,
                refund.order_id,
                "refund_delayed",
                f"Stripe did not take the refund of {money} yet ({error}); the shop keeps trying",
                now,
            )
    else:
        refund.status = RefundStatus.FAILED
        refund.next_attempt_at = None
        if refund.order is not None:
            for line in refund.lines:
                if line.voided_at is None:
                    line.voided_at = now
            settle_order_refunds(session, refund.order, now)
            record_order_event(
                session, refund.order_id, "refund_failed", f"Stripe refused the refund of {money}: {error}", now
            )
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
    """A person asks for a failed refund to be tried again: it gets a fresh retry window.

    Its units are taken back for it, and its order is marked refunding again, unless that would now refund more
    than was paid or a unit has been refunded since (ValueError, nothing changed).
    """
    require_write_transaction(session)
    refund = lock_refund(session, refund_id)
    if refund is None or refund.status != RefundStatus.FAILED:
        raise ValueError("Only a failed refund can be retried.")
    order = refund.order
    left_over = 0
    if order is not None:
        live = refund_totals(session, order.id).live
        if live + refund.amount > order.amount_total:
            raise ValueError("Trying it again would refund more than the order was paid.")
        left_over = order.amount_total - live - refund.amount
        for line in refund.lines:
            if line.voided_at is None:
                continue
            taken = session.scalar(
                select(exists().where(RefundLine.unit_id == line.unit_id, RefundLine.voided_at.is_(None)))
            )
            still_sold = session.scalar(
                select(
                    exists().where(Unit.id == line.unit_id, Unit.order_id == order.id, Unit.status == UnitStatus.SOLD)
                )
            )
            if taken or not still_sold:
                raise ValueError(f"No. {line.number} has been refunded since, or is no longer the order's.")
            line.voided_at = None
        if order.status != OrderStatus.REFUNDED:
            order.status = OrderStatus.REFUNDING
    refund.status = RefundStatus.PENDING
    refund.next_attempt_at = now
    refund.retry_until = now + REFUND_RETRY_WINDOW
    refund.updated_at = now
    session.flush()
    if order is not None and refund.lines and left_over > 0 and not units_left_unrefunded(session, order):
        # Its units are now the order's last: the shipping would have gone back with them had they been asked for
        # last. This refund keeps its amount (its idempotency key was sent with it), so the rest goes on its own.
        queue_refund(session, order.payment_intent_id, left_over, order.currency, refund.reason, now, order=order)
    return refund


def units_left_unrefunded(session: Session, order: Order) -> bool:
    """Whether the order still owns a sold unit that no live refund line covers."""
    covered = select(RefundLine.unit_id).where(RefundLine.order_id == order.id, RefundLine.voided_at.is_(None))
    return bool(
        session.scalar(
            select(exists().where(Unit.order_id == order.id, Unit.status == UnitStatus.SOLD, Unit.id.not_in(covered)))
        )
    )


# --- The order's money status ---------------------------------------------------------------------------------


def settle_order_refunds(session: Session, order: Order, now: datetime) -> None:
    """Set the order's money status from its refunds: refunded once they cover what it was paid, refunding while one
    is on its way, else paid (partly refunded). An order that owns no unit and is not refunded stays refunding:
    money is still owed (its refund failed, and the auditor says so). A refunded order stays refunded.
    """
    if order.status == OrderStatus.REFUNDED:
        return
    totals = refund_totals(session, order.id)
    if totals.succeeded >= order.amount_total:
        mark_order_refunded(order, now)
    elif totals.in_flight:
        order.status = OrderStatus.REFUNDING
    elif session.scalar(select(exists().where(Unit.order_id == order.id, Unit.status == UnitStatus.SOLD))):
        order.status = OrderStatus.PAID
    else:
        order.status = OrderStatus.REFUNDING


def mark_order_refunded(order: Order, now: datetime) -> None:
    """A refunded order keeps its units, retired from sale: a refund is not a restock by default."""
    order.status = OrderStatus.REFUNDED
    order.refunded_at = order.refunded_at or now


# --- What Stripe says was refunded (charge.refunded) ------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRefund:
    """One refund of a charge, as the gateway lists it."""

    id: str
    amount: int
    status: str = "succeeded"


@dataclass(frozen=True)
class ChargeRefunds:
    """What a charge.refunded event says of a payment's refunds."""

    payment_intent_id: str
    fully: bool = False
    # Every refund of the charge together, as the gateway counts them (None: not said).
    amount_refunded: int | None = None
    # The refunds it lists, newest first as Stripe lists them (None: the charge did not list them).
    refunds: tuple[GatewayRefund, ...] | None = None
    # False when the list was cut short (Stripe lists ten, then has_more).
    listed_all: bool = True
    # The idempotency key of the API request that caused the event: "refund-<id>" when the shop sent it.
    request_key: str | None = None


@dataclass
class ChargeRefunded:
    """What reflecting a charge.refunded changed: the shop's own refunds it confirmed, and dashboard refunds."""

    order: Order
    confirmed: list[Refund] = field(default_factory=list)
    recorded: list[Refund] = field(default_factory=list)


def record_charge_refunded(session: Session, payment_intent_id: str, fully: bool, now: datetime) -> Order | None:
    """The gateway reports money returned on a payment, without listing its refunds: a full one settles the order."""
    result = reflect_charge_refunds(session, ChargeRefunds(payment_intent_id, fully=fully), now)
    return result.order if result is not None else None


def reflect_charge_refunds(session: Session, charge: ChargeRefunds, now: datetime) -> ChargeRefunded | None:
    """Bring an order's refunds in line with what the gateway lists for its payment. Idempotent.

    Each listed refund the shop does not know by its gateway id is either the shop's own refund, confirmed (the
    event was caused by the shop's request for it, whose answer has not been recorded yet), or one made in Stripe's
    dashboard: recorded as succeeded, with no units (they stay retired), and written on the order's timeline.
    Without a list, the amount refunded beyond what the shop knows of is recorded as one dashboard refund.
    Returns None when the payment is no order's (an unmatched payment's refunds are the shop's own).
    """
    require_write_transaction(session)
    order_id = session.scalar(
        select(Order.id).where(Order.payment_intent_id == charge.payment_intent_id).order_by(Order.id).limit(1)
    )
    if order_id is None:
        return None
    order = lock_order(session, order_id)
    result = ChargeRefunded(order)
    if charge.refunds is not None:
        # No refund is larger than the payment: an amount beyond it is not one Stripe could have made.
        listed = [
            refund
            for refund in charge.refunds
            if refund.status in GATEWAY_MONEY_RETURNED and 0 < refund.amount <= order.amount_total
        ]
        known = set(
            session.scalars(
                select(Refund.gateway_refund_id).where(Refund.gateway_refund_id.in_([r.id for r in listed]))
            )
        )
        ours = shop_refund_named_by(session, charge.request_key, order)
        if ours is not None:
            # The event is a snapshot taken as the shop's request made its refund: the newest one listed.
            made = next((refund for refund in listed if refund.id not in known), None)
            if made is not None and made.amount == ours.amount:
                known.add(made.id)
                confirmed = record_refund_sent(session, ours.id, made.id, now)
                if confirmed is not None:
                    result.confirmed.append(confirmed)
        for gateway_refund in reversed(listed):  # oldest first, as they happened
            if gateway_refund.id in known:
                continue
            known.add(gateway_refund.id)
            result.recorded.append(
                record_dashboard_refund(session, order, gateway_refund.id, gateway_refund.amount, now)
            )
    if (charge.refunds is None or not charge.listed_all) and charge.amount_refunded is not None:
        unknown = min(charge.amount_refunded, order.amount_total) - refund_totals(session, order.id).live
        if unknown > 0:
            result.recorded.append(record_dashboard_refund(session, order, None, unknown, now))
    elif charge.refunds is None and charge.fully:
        mark_order_refunded(order, now)
    settle_order_refunds(session, order, now)
    session.flush()
    return result


def shop_refund_named_by(session: Session, request_key: str | None, order: Order) -> Refund | None:
    """The shop's refund of this order that sent the request with this idempotency key, if it is not recorded yet."""
    match = SHOP_REFUND_KEY.fullmatch(request_key or "")
    if match is None:
        return None
    refund = session.get(Refund, int(match.group(1)))
    if refund is None or refund.order_id != order.id or refund.from_gateway or refund.status == RefundStatus.SUCCEEDED:
        return None
    return refund


def record_dashboard_refund(
    session: Session, order: Order, gateway_refund_id: str | None, amount: int, now: datetime
) -> Refund:
    """Record a refund made in Stripe's dashboard: succeeded already, never sent by the shop."""
    refund = Refund(
        order_id=order.id,
        payment_intent_id=order.payment_intent_id,
        amount=amount,
        currency=order.currency,
        reason=DASHBOARD_REASON,
        status=RefundStatus.SUCCEEDED,
        gateway_refund_id=gateway_refund_id,
        from_gateway=True,
        requested_by="",
        next_attempt_at=None,
        retry_until=now,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    record_order_event(
        session, order.id, "refunded", f"Refunded {format_money(amount, order.currency)} in Stripe's dashboard", now
    )
    return refund
