"""The reservation engine: claim numbered units, hold them while the buyer pays, sell them exactly once.

Every function here runs inside the edge's write transaction (`storefront.unit_of_work.write_transaction`) and only
flushes; it asserts that the transaction is open and never begins or commits. On SQLite that transaction holds the
write lock from its start (BEGIN IMMEDIATE); on PostgreSQL a claim locks only the unit rows it takes (FOR UPDATE
SKIP LOCKED), so buyers claim different units in parallel, and one advisory lock per (release, buyer key) so one
buyer's parallel requests cannot pass the limit.

Lock order, always: a hold's row first, then its units. Whoever changes a hold's units (release, convert, reclaim)
holds that hold's row lock, so they never deadlock with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal_column, select, update
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain import waitlist
from storefront.domain.buyers import buyer_key
from storefront.domain.errors import DomainError
from storefront.models import Hold, HoldStatus, Order, OrderStatus, Release, Unit, UnitStatus

# Written as a literal, not a bound parameter, so PostgreSQL can use the partial index on available units
# even in a generic (prepared) plan: a planner cannot prove `status = $1` matches the index's predicate.
UNIT_IS_AVAILABLE = Unit.status == literal_column("'available'")
HOLD_IS_ACTIVE = Hold.status == literal_column("'active'")

# How many timed-out holds one claim frees on its way; the rest are left for the next claim or the sweeper.
RECLAIM_BATCH = 200


class NotOnSale(DomainError):
    """The release is not open for claims: before `on_sale_at`, or after `off_sale_at`."""


class ReleasePaused(DomainError):
    """The producer has paused claims on this release for now (`storefront.domain.releases.pause_release`)."""


class SoldOut(DomainError):
    """Not enough units are free for this claim."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = available


class LimitReached(DomainError):
    """The buyer already has as many units of this release as the producer allows."""

    def __init__(self, message: str, remaining: int) -> None:
        super().__init__(message)
        self.remaining = remaining


class NumberTaken(DomainError):
    """The specific number asked for is held or sold; `next_free` suggests another (or None)."""

    def __init__(self, message: str, next_free: int | None) -> None:
        super().__init__(message)
        self.next_free = next_free


class InvalidClaim(DomainError):
    """The request itself is wrong: a bad quantity, a number outside the run, choice not offered."""


class HoldNotActive(DomainError):
    """The hold has already ended (released or converted) and cannot change."""


class HoldBroken(DomainError):
    """The hold no longer has all its units (they were reclaimed after it expired)."""


@dataclass(frozen=True)
class Buyer:
    """Who is claiming: the email they typed (mail goes there) and the canonical key the limit counts by.

    The key defaults to `buyer_key(email)` (plus-tags folded); the edge passes it explicitly to honour the shop's
    setting. A customer account id joins it once accounts exist.
    """

    email: str
    key: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", self.email.strip())
        if not self.key:
            object.__setattr__(self, "key", buyer_key(self.email))


def is_reclaimable(now: datetime):
    """SQL condition: this hold has passed its time and its units may be given to someone else.

    A hold with a payment session is never reclaimed here: the buyer may still be paying on the gateway's page
    (Stripe keeps a session open 30 minutes at least). The sweeper expires that session first and then releases
    the hold, or turns it into an order if the payment went through. Nor is a waitlist offer's hold: its unit goes
    to the next waiter when the sweeper ends it, never to whoever claims next.
    """
    return and_(HOLD_IS_ACTIVE, Hold.expires_at <= now, Hold.payment_session_id.is_(None), Hold.for_offer.is_(False))


def claim(
    session: Session,
    release_id: int,
    quantity: int,
    buyer: Buyer,
    now: datetime,
    hold_for: timedelta,
    number: int | None = None,
    early_access: bool = False,
) -> Hold:
    """Hold `quantity` units of a release for `buyer` until `now + hold_for`, atomically.

    Takes the lowest free numbers, or exactly `number` when the buyer picked one. `early_access` lets the claim in
    from the release's `early_access_at` (the caller has checked the buyer's personal link). Raises NotOnSale,
    SoldOut, LimitReached, NumberTaken or InvalidClaim; on any error the caller rolls back and nothing has changed.
    """
    require_write_transaction(session)
    release = read_release_for_claim(session, release_id)
    if release is None:
        raise InvalidClaim("This release does not exist.")
    check_claim_request(release, quantity, number, now, early_access=early_access)

    lock_buyer(session, release.id, buyer.key)
    # The buyer's own timed-out holds end first, so they can neither count twice nor be paid for later.
    reclaim_expired_holds(session, release.id, now, buyer_key=buyer.key)
    remaining = release.per_customer_limit - units_owned(session, release.id, buyer.key, now)
    if quantity > remaining:
        if remaining <= 0:
            message = f"You already have the limit of {release.per_customer_limit} from this release."
        else:
            message = f"You can take {remaining} more from this release (limit {release.per_customer_limit})."
        raise LimitReached(message, max(remaining, 0))

    reclaim_expired_holds(session, release.id, now)
    hold = Hold(
        release_id=release.id,
        buyer_email=buyer.email,
        buyer_key=buyer.key,
        quantity=quantity,
        status=HoldStatus.ACTIVE,
        created_at=now,
        expires_at=now + hold_for,
    )
    session.add(hold)
    session.flush()

    if number is not None:
        taken = take_number(session, release.id, number, hold)
        if not taken:
            raise NumberTaken(
                f"No. {number} is already taken.", next_free=next_free_number(session, release.id, number)
            )
    else:
        taken = take_lowest(session, release.id, quantity, hold)
        if len(taken) < quantity:
            # Some units were taken by this statement; the caller's rollback puts them back.
            left = len(taken)
            if left == 0:
                raise SoldOut("Every unit of this release is sold or held.", available=0)
            raise SoldOut(f"Only {left} left; please ask for {left} or fewer.", available=left)
    session.flush()
    session.expire(hold, ["units"])
    return hold


def has_claimable_units(session: Session, release_id: int, now: datetime) -> bool:
    """Whether a claim could find any unit now: a free one, or one in a hold that may be reclaimed.

    A plain read for the sold-out fast path; the claim itself still decides, atomically.
    """
    free = session.scalar(select(Unit.id).where(Unit.release_id == release_id, UNIT_IS_AVAILABLE).limit(1))
    if free is not None:
        return True
    timed_out = session.scalar(select(Hold.id).where(Hold.release_id == release_id, is_reclaimable(now)).limit(1))
    return timed_out is not None


def read_release_for_claim(session: Session, release_id: int) -> Release | None:
    """Read the release's current terms with its row locked FOR KEY SHARE.

    Claims share this lock, so buyers never wait for each other on it (inserting the hold takes the same lock
    again through its foreign key); a producer's pause or price change locks the row FOR UPDATE and so waits for
    claims under way, and claims after it see its terms (storefront.domain.releases).
    """
    return session.scalar(
        select(Release)
        .where(Release.id == release_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )


def check_claim_request(
    release: Release, quantity: int, number: int | None, now: datetime, *, early_access: bool = False
) -> None:
    opens_at = release.on_sale_at
    if early_access and release.early_access_at is not None:
        opens_at = release.early_access_at
    if now < opens_at:
        raise NotOnSale("This release is not on sale yet.")
    if release.off_sale_at is not None and now >= release.off_sale_at:
        raise NotOnSale("This release has closed.")
    if release.paused_at is not None:
        raise ReleasePaused("The maker has paused sales of this release for a moment; check back soon.")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise InvalidClaim("Choose how many you want: at least 1.")
    if quantity > release.per_customer_limit:
        raise InvalidClaim(f"You can take at most {release.per_customer_limit} from this release.")
    if number is not None:
        if not release.allow_number_choice:
            raise InvalidClaim("This release does not offer picking a number.")
        if quantity != 1:
            raise InvalidClaim("Pick one number at a time.")
        if not 1 <= number <= release.total_units:
            raise InvalidClaim(f"Numbers run from 1 to {release.total_units}.")


def lock_buyer(session: Session, release_id: int, buyer_key: str) -> None:
    """Serialise one buyer's claims on one release, and nobody else's (PostgreSQL; SQLite already is)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(release_id, func.hashtext(buyer_key))))


def units_owned(session: Session, release_id: int, buyer_key: str, now: datetime) -> int:
    """Units the buyer holds (holds not yet reclaimable) or has bought (paid orders) in this release."""
    held = session.scalar(
        select(func.coalesce(func.sum(Hold.quantity), 0)).where(
            Hold.release_id == release_id,
            Hold.buyer_key == buyer_key,
            Hold.status == HoldStatus.ACTIVE,
            ~is_reclaimable(now),
        )
    )
    bought = session.scalar(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.release_id == release_id,
            Order.buyer_key == buyer_key,
            Order.status == OrderStatus.PAID,
        )
    )
    return int(held) + int(bought)


def reclaim_expired_holds(session: Session, release_id: int, now: datetime, buyer_key: str | None = None) -> int:
    """Release this release's timed-out holds (only one buyer's, when `buyer_key` is given).

    It waits for a hold another transaction has locked rather than skipping it: a skipped hold would make this
    claim answer "sold out" while units are coming back. Locks are taken in id order, so two claims reclaiming
    the same holds queue instead of deadlocking.
    """
    expired = select(Hold.id).where(Hold.release_id == release_id, is_reclaimable(now))
    if buyer_key is not None:
        expired = expired.where(Hold.buyer_key == buyer_key)
    else:
        expired = expired.limit(RECLAIM_BATCH)
    hold_ids = list(session.scalars(expired.order_by(Hold.id).with_for_update()))
    if hold_ids:
        freed = free_units_of(session, hold_ids)
        end_holds(session, hold_ids, now, "expired")
        waitlist.units_freed(session, release_id, freed, now)
    return len(hold_ids)


def take_lowest(session: Session, release_id: int, quantity: int, hold: Hold) -> Sequence[int]:
    """Move up to `quantity` of the lowest free units into `hold`; return their numbers.

    The candidate rows are picked in a MATERIALIZED CTE so the planner cannot re-run the subquery and lock more
    than `quantity` rows; SKIP LOCKED lets parallel claims pass each other instead of queueing on one row.
    """
    candidates = (
        select(Unit.id)
        .where(Unit.release_id == release_id, UNIT_IS_AVAILABLE)
        .order_by(Unit.number)
        .limit(quantity)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    statement = (
        update(Unit)
        .where(Unit.id.in_(select(candidates.c.id)), UNIT_IS_AVAILABLE)
        .values(status=UnitStatus.HELD, hold_id=hold.id, held_until=hold.expires_at)
        .returning(Unit.number)
    )
    return sorted(session.scalars(statement, execution_options={"synchronize_session": False}))


def take_number(session: Session, release_id: int, number: int, hold: Hold) -> bool:
    """Move exactly unit `number` into `hold` if it is free; a concurrent claim of it makes this one lose."""
    return take_numbers(session, release_id, [number], hold) == [number]


def take_numbers(session: Session, release_id: int, numbers: Sequence[int], hold: Hold) -> list[int]:
    """Move those of `numbers` that are free into `hold`; return the numbers taken."""
    if not numbers:
        return []
    statement = (
        update(Unit)
        .where(Unit.release_id == release_id, Unit.number.in_(list(numbers)), UNIT_IS_AVAILABLE)
        .values(status=UnitStatus.HELD, hold_id=hold.id, held_until=hold.expires_at)
        .returning(Unit.number)
    )
    return sorted(session.scalars(statement, execution_options={"synchronize_session": False}))


def next_free_number(session: Session, release_id: int, wanted: int) -> int | None:
    """The free number nearest above `wanted` (or the lowest free one), to offer instead."""
    free = select(func.min(Unit.number)).where(Unit.release_id == release_id, UNIT_IS_AVAILABLE)
    return session.scalar(free.where(Unit.number > wanted)) or session.scalar(free)


def free_units_of(session: Session, hold_ids: Sequence[int]) -> int:
    """Put the units of these holds back to available; returns how many. The caller passes them on to
    `waitlist.units_freed`, which offers them to a sold-out release's waitlist before anyone else."""
    return session.execute(
        update(Unit)
        .where(Unit.hold_id.in_(hold_ids), Unit.status == UnitStatus.HELD)
        .values(status=UnitStatus.AVAILABLE, hold_id=None, held_until=None),
        execution_options={"synchronize_session": False},
    ).rowcount


def end_holds(session: Session, hold_ids: Sequence[int], now: datetime, reason: str) -> None:
    """Mark holds released; a reason asked for before (a cancel waiting on the gateway) wins over `reason`."""
    session.execute(
        update(Hold)
        .where(Hold.id.in_(hold_ids), Hold.status == HoldStatus.ACTIVE)
        .values(status=HoldStatus.RELEASED, ended_at=now, end_reason=func.coalesce(Hold.end_requested, reason)),
        execution_options={"synchronize_session": False},
    )


def lock_hold(session: Session, hold_id: int) -> Hold:
    """Load a hold with its row locked, fresh from the database."""
    hold = session.scalar(
        select(Hold).where(Hold.id == hold_id).with_for_update().execution_options(populate_existing=True)
    )
    if hold is None:
        raise HoldNotActive("This hold does not exist.")
    return hold


def release_hold(
    session: Session, hold: Hold, now: datetime, reason: str = "cancelled", payment_status: str | None = None
) -> Hold:
    """Put a hold's units back on sale (cancel, expiry, failed payment). Releasing twice is harmless.

    `payment_status` records what the gateway said of the hold's session (e.g. "expired"), when it said anything.
    The reason recorded is the one asked for first (`end_requested`), else `reason`. Only
    `storefront.checkout.flows.end_hold` calls this for a hold with a payment session, after closing the session.
    """
    require_write_transaction(session)
    hold = lock_hold(session, hold.id)
    if payment_status is not None:
        hold.payment_status = payment_status
    if hold.status == HoldStatus.RELEASED:
        session.flush()
        return hold
    if hold.status == HoldStatus.CONVERTED:
        raise HoldNotActive("This hold has been paid for; its units are sold.")
    freed = free_units_of(session, [hold.id])
    end_holds(session, [hold.id], now, reason)
    session.flush()
    session.refresh(hold)
    waitlist.end_offers_of_hold(session, hold, now)
    waitlist.units_freed(session, hold.release_id, freed, now)
    return hold


def convert(session: Session, hold: Hold, order: Order, now: datetime) -> Hold:
    """Sell a hold's units to `order`, exactly once. Converting again to the same order changes nothing.

    Raises HoldNotActive if the hold was released or converted to another order, and HoldBroken if some of its
    units are gone (it expired and was reclaimed); in both cases the caller decides what the payment gets.
    """
    require_write_transaction(session)
    hold = lock_hold(session, hold.id)
    if hold.status == HoldStatus.CONVERTED:
        if order.id is not None and order.hold_id == hold.id:
            return hold
        raise HoldNotActive("This hold was already sold to another order.")
    if hold.status == HoldStatus.RELEASED:
        raise HoldNotActive("This hold was released; its units may have gone to someone else.")
    if order.id is None:
        session.add(order)
        session.flush()
    sold = session.execute(
        update(Unit)
        .where(Unit.hold_id == hold.id, Unit.status == UnitStatus.HELD)
        .values(status=UnitStatus.SOLD, order_id=order.id, sold_at=now, held_until=None),
        execution_options={"synchronize_session": False},
    ).rowcount
    if sold != hold.quantity:
        raise HoldBroken(f"This hold has {sold} of its {hold.quantity} units left.")
    hold.status = HoldStatus.CONVERTED
    hold.ended_at = now
    hold.end_reason = "paid"
    session.flush()
    waitlist.offer_hold_converted(session, hold, now)
    return hold


def move_expiry(session: Session, hold: Hold, expires_at: datetime) -> None:
    """Give a locked, active hold a new time, and its units the same `held_until`."""
    hold.expires_at = expires_at
    session.execute(
        update(Unit).where(Unit.hold_id == hold.id).values(held_until=expires_at),
        execution_options={"synchronize_session": False},
    )
    session.flush()


def request_end(session: Session, hold_id: int, reason: str) -> Hold:
    """Record why an active hold is ending, before the gateway is asked to close its session (first reason wins)."""
    require_write_transaction(session)
    hold = lock_hold(session, hold_id)
    if hold.status == HoldStatus.ACTIVE and hold.end_requested is None:
        hold.end_requested = reason
        session.flush()
    return hold


def held_numbers(session: Session, hold: Hold) -> list[int]:
    return list(session.scalars(select(Unit.number).where(Unit.hold_id == hold.id).order_by(Unit.number)))
