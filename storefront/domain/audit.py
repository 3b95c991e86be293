"""The invariant auditor: reads the whole database and lists every way stock, holds and orders disagree.

Run after every concurrency test and by `flask storefront audit`; an empty list means the books are sound.
Each check is one query that returns offending rows, so the auditor stays fast on a real shop's data.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from storefront.domain.inventory import is_reclaimable
from storefront.models import (
    Hold,
    HoldStatus,
    Order,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Release,
    Unit,
    UnitStatus,
    UnmatchedPayment,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storefront.models.waitlist import LIVE_OFFER_STATUSES

# The sweeper ends a hold within a minute or two of its time (its session closed first); an hour means it is stuck.
HOLD_OVERDUE_AFTER = timedelta(hours=1)


def audit(session: Session, now: datetime) -> list[str]:
    """Return a human-readable line for every violated invariant (empty when everything holds)."""
    problems: list[str] = []
    for check in CHECKS:
        problems.extend(check(session, now))
    return problems


def numbers_unique_within_release(session: Session, _now: datetime) -> list[str]:
    rows = session.execute(
        select(Unit.release_id, Unit.number, func.count())
        .group_by(Unit.release_id, Unit.number)
        .having(func.count() > 1)
    ).all()
    return [f"release {r}: number {n} exists {c} times" for r, n, c in rows]


def numbers_within_run(session: Session, _now: datetime) -> list[str]:
    rows = session.execute(
        select(Unit.release_id, Unit.number, Release.total_units)
        .join(Release, Release.id == Unit.release_id)
        .where(or_(Unit.number < 1, Unit.number > Release.total_units))
    ).all()
    return [f"release {r}: unit number {n} is outside 1..{total}" for r, n, total in rows]


def every_number_present(session: Session, _now: datetime) -> list[str]:
    rows = session.execute(
        select(Release.id, Release.total_units, func.count(Unit.id))
        .outerjoin(Unit, Unit.release_id == Release.id)
        .group_by(Release.id, Release.total_units)
        .having(func.count(Unit.id) != Release.total_units)
    ).all()
    return [f"release {r}: has {count} unit rows for a run of {total}" for r, total, count in rows]


def sold_units_have_one_paid_order(session: Session, _now: datetime) -> list[str]:
    problems = []
    orphans = session.execute(
        select(Unit.release_id, Unit.number).where(Unit.status == UnitStatus.SOLD, Unit.order_id.is_(None))
    ).all()
    problems += [f"release {r}: No. {n} is sold without an order" for r, n in orphans]
    wrong_release = session.execute(
        select(Unit.release_id, Unit.number, Order.reference)
        .join(Order, Order.id == Unit.order_id)
        .where(Order.release_id != Unit.release_id)
    ).all()
    problems += [f"release {r}: No. {n} belongs to order {ref} of another release" for r, n, ref in wrong_release]
    not_sold = session.execute(
        select(Unit.release_id, Unit.number, Unit.status).where(
            Unit.order_id.is_not(None), Unit.status != UnitStatus.SOLD
        )
    ).all()
    problems += [f"release {r}: No. {n} points at an order but is {status}" for r, n, status in not_sold]
    return problems


def orders_own_their_quantity(session: Session, _now: datetime) -> list[str]:
    """A paid order owns every unit it paid for, except those its refunds returned to sale."""
    owned = select(func.count(Unit.id)).where(Unit.order_id == Order.id).correlate(Order).scalar_subquery()
    returned = (
        select(func.count(RefundLine.id))
        .where(RefundLine.order_id == Order.id, RefundLine.returned_at.is_not(None))
        .correlate(Order)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Order.reference, Order.quantity, owned, returned).where(
            Order.status == OrderStatus.PAID, owned + returned != Order.quantity
        )
    ).all()
    return [
        f"order {ref}: paid for {q} units but owns {c}" + (f" ({r} returned to sale)" if r else "")
        for ref, q, c, r in rows
    ]


def refund_lines_match_their_units(session: Session, _now: datetime) -> list[str]:
    """A refund line names a unit of its order's release by its number; a line still holding its unit (live, not
    returned) keeps it sold to its order (a retired unit stays sold); a unit returned to sale left its order."""
    problems = []
    wrong_unit = session.execute(
        select(RefundLine.refund_id, RefundLine.release_id, RefundLine.number, Unit.release_id, Unit.number)
        .join(Unit, Unit.id == RefundLine.unit_id)
        .join(Refund, Refund.id == RefundLine.refund_id)
        .join(Order, Order.id == RefundLine.order_id)
        .where(
            or_(
                Unit.release_id != RefundLine.release_id,
                Unit.number != RefundLine.number,
                Order.release_id != RefundLine.release_id,
                Refund.order_id.is_(None),
                Refund.order_id != RefundLine.order_id,
            )
        )
    ).all()
    problems += [
        f"refund {refund}: its line for No. {number} of release {release} names unit No. {unit_number} of release "
        f"{unit_release}, or another order"
        for refund, release, number, unit_release, unit_number in wrong_unit
    ]
    not_kept = session.execute(
        select(RefundLine.release_id, RefundLine.number, Order.reference, Unit.status)
        .join(Unit, Unit.id == RefundLine.unit_id)
        .join(Order, Order.id == RefundLine.order_id)
        .where(
            RefundLine.voided_at.is_(None),
            RefundLine.returned_at.is_(None),
            or_(Unit.order_id.is_(None), Unit.order_id != RefundLine.order_id, Unit.status != UnitStatus.SOLD),
        )
    ).all()
    problems += [
        f"release {r}: No. {n} is refunded on order {ref} but is no longer sold to it ({status})"
        for r, n, ref, status in not_kept
    ]
    still_sold = session.execute(
        select(RefundLine.release_id, RefundLine.number, Order.reference)
        .join(Unit, Unit.id == RefundLine.unit_id)
        .join(Order, Order.id == RefundLine.order_id)
        .where(RefundLine.returned_at.is_not(None), Unit.order_id == RefundLine.order_id)
    ).all()
    problems += [
        f"release {r}: No. {n} was returned to sale by order {ref}'s refund but is still sold to it"
        for r, n, ref in still_sold
    ]
    return problems


def refunds_within_payment(session: Session, _now: datetime) -> list[str]:
    """An order's refunds, made and on their way, never add up to more than it was paid."""
    live = func.sum(Refund.amount)
    rows = session.execute(
        select(Order.reference, Order.amount_total, Order.currency, live)
        .join(Refund, Refund.order_id == Order.id)
        .where(Refund.status.in_([RefundStatus.PENDING, RefundStatus.SENDING, RefundStatus.SUCCEEDED]))
        .group_by(Order.id, Order.reference, Order.amount_total, Order.currency)
        .having(live > Order.amount_total)
    ).all()
    return [
        f"order {ref}: refunds of {amount} {currency} exceed the {paid} paid" for ref, paid, currency, amount in rows
    ]


def holds_and_units_agree(session: Session, _now: datetime) -> list[str]:
    problems = []
    dead_hold = session.execute(
        select(Unit.release_id, Unit.number, Hold.id, Hold.status)
        .join(Hold, Hold.id == Unit.hold_id)
        .where(Unit.status == UnitStatus.HELD, Hold.status != HoldStatus.ACTIVE)
    ).all()
    problems += [f"release {r}: No. {n} is held by hold {h}, which is {s}" for r, n, h, s in dead_hold]
    live_hold_sold = session.execute(
        select(Unit.release_id, Unit.number, Hold.id)
        .join(Hold, Hold.id == Unit.hold_id)
        .where(Unit.status == UnitStatus.SOLD, Hold.status == HoldStatus.ACTIVE)
    ).all()
    problems += [f"release {r}: No. {n} is sold but still in live hold {h}" for r, n, h in live_hold_sold]
    other_release = session.execute(
        select(Unit.release_id, Unit.number, Hold.id)
        .join(Hold, Hold.id == Unit.hold_id)
        .where(Hold.release_id != Unit.release_id)
    ).all()
    problems += [f"release {r}: No. {n} is in hold {h} of another release" for r, n, h in other_release]
    held_units = aliased(Unit)
    wrong_count = session.execute(
        select(Hold.id, Hold.quantity, func.count(held_units.id))
        .outerjoin(held_units, and_(held_units.hold_id == Hold.id, held_units.status == UnitStatus.HELD))
        .where(Hold.status == HoldStatus.ACTIVE)
        .group_by(Hold.id, Hold.quantity)
        .having(func.count(held_units.id) != Hold.quantity)
    ).all()
    problems += [f"hold {h}: holds {c} units for a quantity of {q}" for h, q, c in wrong_count]
    return problems


def release_not_oversold(session: Session, _now: datetime) -> list[str]:
    taken = func.count(Unit.id).filter(Unit.status.in_([UnitStatus.SOLD, UnitStatus.HELD]))
    rows = session.execute(
        select(Release.slug, Release.total_units, taken)
        .join(Unit, Unit.release_id == Release.id)
        .group_by(Release.id, Release.slug, Release.total_units)
        .having(taken > Release.total_units)
    ).all()
    return [f"release {slug}: {t} sold or held of a run of {total}" for slug, total, t in rows]


def buyers_within_limit(session: Session, now: datetime) -> list[str]:
    live_holds = (
        select(Hold.release_id, Hold.buyer_key.label("email"), Hold.quantity)
        .where(Hold.status == HoldStatus.ACTIVE)
        .where(~is_reclaimable(now))
    )
    paid = select(Order.release_id, Order.buyer_key.label("email"), Order.quantity).where(
        Order.status == OrderStatus.PAID
    )
    owned = live_holds.union_all(paid).subquery()
    total = func.sum(owned.c.quantity)
    rows = session.execute(
        select(Release.slug, owned.c.email, total, Release.per_customer_limit)
        .join(Release, Release.id == owned.c.release_id)
        .group_by(Release.slug, owned.c.email, Release.per_customer_limit)
        .having(total > Release.per_customer_limit)
    ).all()
    return [f"release {slug}: {email} has {t}, above the limit of {limit}" for slug, email, t, limit in rows]


def paid_orders_match_their_payment(session: Session, _now: datetime) -> list[str]:
    """Each paid order was paid its units at the price they sold for, plus its shipping once (both kept on the order:
    prices and shipping may change)."""
    rows = session.execute(
        select(
            Order.reference,
            Order.amount_total,
            Order.quantity,
            Order.unit_amount,
            Order.shipping_amount,
            Order.currency,
            Release.currency,
        )
        .join(Release, Release.id == Order.release_id)
        .where(
            Order.status == OrderStatus.PAID,
            or_(
                Order.amount_total != Order.quantity * Order.unit_amount + Order.shipping_amount,
                Order.currency != Release.currency,
            ),
        )
    ).all()
    return [
        f"order {ref}: paid {amount} {currency} for {q} units at {price} {release_currency}"
        + (f" plus {shipping} shipping" if shipping else "")
        for ref, amount, q, price, shipping, currency, release_currency in rows
    ]


def every_paid_session_has_an_order(session: Session, _now: datetime) -> list[str]:
    """A hold the gateway reported paid must have become an order (with units, or with a refund), or have been
    recorded as an unmatched payment (refunded)."""
    rows = session.execute(
        select(Hold.id, Hold.payment_session_id)
        .outerjoin(Order, Order.checkout_session_id == Hold.payment_session_id)
        .outerjoin(UnmatchedPayment, UnmatchedPayment.checkout_session_id == Hold.payment_session_id)
        .where(
            Hold.payment_status == "paid",
            Hold.payment_session_id.is_not(None),
            Order.id.is_(None),
            UnmatchedPayment.id.is_(None),
        )
    ).all()
    return [f"hold {h}: session {sid} was paid but has no order" for h, sid in rows]


def refunds_are_on_their_way(session: Session, now: datetime) -> list[str]:
    """An order being refunded has a refund in flight; a refund the gateway refused for good needs a person."""
    problems = []
    without_refund = session.execute(
        select(Order.reference)
        .outerjoin(Refund, Refund.order_id == Order.id)
        .where(Order.status == OrderStatus.REFUNDING, Refund.id.is_(None))
    ).all()
    problems += [f"order {ref}: marked refunding but no refund is recorded" for (ref,) in without_refund]
    failed = session.execute(
        select(Order.reference, Refund.last_error)
        .join(Refund, Refund.order_id == Order.id)
        # A producer who asked for a refund saw the gateway refuse it, and the order went back as it was; a refund
        # the shop owes on its own (units gone before the payment came) still needs a person.
        .where(Refund.status == RefundStatus.FAILED, Order.status != OrderStatus.REFUNDED, Refund.requested_by == "")
    ).all()
    problems += [f"order {ref}: refund failed for good ({error}); refund it by hand" for ref, error in failed]
    unmatched_failed = session.execute(
        select(UnmatchedPayment.checkout_session_id, Refund.last_error)
        .join(Refund, Refund.unmatched_payment_id == UnmatchedPayment.id)
        .where(Refund.status == RefundStatus.FAILED)
    ).all()
    problems += [
        f"unmatched payment {sid}: refund failed for good ({error}); refund it by hand"
        for sid, error in unmatched_failed
    ]
    stuck = session.execute(
        select(Refund.id, Refund.status, Refund.retry_until).where(
            Refund.status.in_([RefundStatus.PENDING, RefundStatus.SENDING]),
            Refund.retry_until < now - HOLD_OVERDUE_AFTER,
        )
    ).all()
    problems += [f"refund {r}: still {status} after its retries ended at {until}" for r, status, until in stuck]
    return problems


def unmatched_payments_are_refunded(session: Session, _now: datetime) -> list[str]:
    """A payment bound to no hold of ours never owns units and always has its money on the way back."""
    rows = session.execute(
        select(UnmatchedPayment.checkout_session_id)
        .outerjoin(Refund, Refund.unmatched_payment_id == UnmatchedPayment.id)
        .where(UnmatchedPayment.amount > 0, UnmatchedPayment.payment_intent_id.is_not(None), Refund.id.is_(None))
    ).all()
    return [f"unmatched payment {sid}: no refund is recorded" for (sid,) in rows]


def holds_end_in_time(session: Session, now: datetime) -> list[str]:
    """A hold still active long after its time is stuck: its units are neither on sale nor sold."""
    rows = session.execute(
        select(Hold.id, Hold.expires_at, Hold.payment_session_id).where(
            Hold.status == HoldStatus.ACTIVE, Hold.expires_at < now - HOLD_OVERDUE_AFTER
        )
    ).all()
    return [
        f"hold {h}: still active {now - expires_at} after its time (session {sid or 'none'}); is the sweeper running?"
        for h, expires_at, sid in rows
    ]


def offers_hold_their_units(session: Session, _now: datetime) -> list[str]:
    """Every offered unit is held by exactly one open offer, through that offer's own live hold; an ended offer
    holds nothing; every live offer hold belongs to an open offer."""
    problems = []
    open_offer = WaitlistOffer.status.in_(LIVE_OFFER_STATUSES)
    broken = session.execute(
        select(WaitlistOffer.id, WaitlistOffer.release_id, WaitlistOffer.number, Hold.status, Unit.status, Unit.hold_id)
        .join(Hold, Hold.id == WaitlistOffer.hold_id)
        .join(Unit, Unit.id == WaitlistOffer.unit_id)
        .where(
            open_offer,
            or_(
                Hold.status != HoldStatus.ACTIVE,
                Hold.for_offer.is_(False),
                Unit.status != UnitStatus.HELD,
                Unit.hold_id.is_(None),
                Unit.hold_id != WaitlistOffer.hold_id,
            ),
        )
    ).all()
    problems += [
        f"release {r}: open offer {o} of No. {n} has hold {hold_status} and unit {unit_status} in hold {unit_hold}"
        for o, r, n, hold_status, unit_status, unit_hold in broken
    ]
    shared = session.execute(
        select(WaitlistOffer.unit_id, func.count())
        .where(open_offer)
        .group_by(WaitlistOffer.unit_id)
        .having(func.count() > 1)
    ).all()
    problems += [f"unit {u}: in {c} open offers at once" for u, c in shared]
    ended_holding = session.execute(
        select(WaitlistOffer.id, WaitlistOffer.status, Hold.id)
        .join(Hold, Hold.id == WaitlistOffer.hold_id)
        .where(~open_offer, Hold.status == HoldStatus.ACTIVE)
    ).all()
    problems += [f"offer {o}: {status} but its hold {h} is still active" for o, status, h in ended_holding]
    orphan_holds = session.execute(
        select(Hold.id)
        .outerjoin(WaitlistOffer, and_(WaitlistOffer.hold_id == Hold.id, open_offer))
        .where(Hold.for_offer.is_(True), Hold.status == HoldStatus.ACTIVE, WaitlistOffer.id.is_(None))
    ).all()
    problems += [f"hold {h}: an active offer hold without an open offer" for (h,) in orphan_holds]
    return problems


def one_open_offer_per_waiter(session: Session, _now: datetime) -> list[str]:
    """No waiter has two open offers for one release (the unique constraint allows one offer ever)."""
    rows = session.execute(
        select(WaitlistOffer.release_id, WaitlistEntry.email_key, func.count())
        .join(WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id)
        .where(WaitlistOffer.status.in_(LIVE_OFFER_STATUSES))
        .group_by(WaitlistOffer.release_id, WaitlistEntry.email_key)
        .having(func.count() > 1)
    ).all()
    return [f"release {r}: {key} has {c} open offers at once" for r, key, c in rows]


def waiters_before_public_sale(session: Session, now: datetime) -> list[str]:
    """While a sold-out release has confirmed waiters without an offer and offers are not paused, none of its
    units is on public sale."""
    waiting = (
        select(WaitlistEntry.id)
        .where(
            WaitlistEntry.release_id == Release.id,
            WaitlistEntry.status == WaitlistStatus.CONFIRMED,
            ~select(WaitlistOffer.id)
            .where(WaitlistOffer.release_id == Release.id, WaitlistOffer.entry_id == WaitlistEntry.id)
            .exists(),
        )
        .exists()
    )
    rows = session.execute(
        select(Release.id, func.count(Unit.id))
        .join(Unit, and_(Unit.release_id == Release.id, Unit.status == UnitStatus.AVAILABLE))
        .where(
            Release.sold_out_at.is_not(None),
            Release.waitlist_paused_at.is_(None),
            Release.on_sale_at <= now,
            or_(Release.off_sale_at.is_(None), Release.off_sale_at > now),
            waiting,
        )
        .group_by(Release.id)
    ).all()
    return [f"release {r}: {c} units on public sale while confirmed waiters have had no offer" for r, c in rows]


CHECKS = [
    numbers_unique_within_release,
    numbers_within_run,
    every_number_present,
    sold_units_have_one_paid_order,
    orders_own_their_quantity,
    refund_lines_match_their_units,
    refunds_within_payment,
    holds_and_units_agree,
    release_not_oversold,
    buyers_within_limit,
    paid_orders_match_their_payment,
    every_paid_session_has_an_order,
    refunds_are_on_their_way,
    unmatched_payments_are_refunded,
    holds_end_in_time,
    offers_hold_their_units,
    one_open_offer_per_waiter,
    waiters_before_public_sale,
]
