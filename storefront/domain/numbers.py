"""Which numbers of a release a buyer could pick now: the free ones as ranges, and one number's status.

"Free" means what `storefront.domain.stock.count_stock` counts as available, and so what the page's "N of M left"
says: a unit whose status is available, or a unit still held by a hold that has timed out without a payment
session (`inventory.is_reclaimable`), because a claim reclaims such holds on its way before it takes a number.
Rare cases make a claim of a "free" number still answer NumberTaken: another buyer took it in between (the claim
decides, atomically); it sits in a timed-out hold beyond the first `inventory.RECLAIM_BATCH` a claim reclaims; or
it came back from a timed-out hold of a sold-out release with a waitlist, where freed numbers go to the waiters
first. The release page then answers the taken number inline, with the next free one.

Held (in time, or being paid), sold and withheld (kept back by the maker) numbers are taken.

Everything here is a plain read: the counts are computed by the database, never by loading unit rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CompoundSelect, func, literal_column, select, union_all
from sqlalchemy.orm import Session

from storefront.domain.inventory import UNIT_IS_AVAILABLE, is_reclaimable
from storefront.models import Hold, Release, Unit

UNIT_IS_HELD = Unit.status == literal_column("'held'")

# Runs of at most this many numbers are shown as a grid of every number; longer ones as ranges and a search box.
GRID_MAX_NUMBERS = 300
# How many free ranges a long run's page names before "and N more ranges".
RANGES_NAMED = 4


class NumberState(StrEnum):
    FREE = "free"
    TAKEN = "taken"
    NOT_IN_RUN = "not_in_run"


@dataclass(frozen=True)
class FreeNumbers:
    """The free numbers of a release as inclusive ranges, lowest first: [(1, 12), (15, 15), (18, 240)].

    `ranges` may be only the first of them (when asked for at most so many); `range_count` and `free` always
    count all of them.
    """

    ranges: list[tuple[int, int]]
    range_count: int
    free: int

    @property
    def complete(self) -> bool:
        return len(self.ranges) == self.range_count

    def __contains__(self, number: int) -> bool:
        return any(first <= number <= last for first, last in self.ranges)


@dataclass(frozen=True)
class NumberStatus:
    """Whether `number` could be picked now and, when it cannot, the free number to offer instead (or None)."""

    number: int
    state: NumberState
    next_free: int | None


def timed_out_hold_ids(release_id: int, now: datetime):
    """SQL: the ids of this release's holds a claim would reclaim now (few: most holds have a payment session).

    Materialized, so the planner looks these holds up first and then their units by hold_id, instead of walking
    every unit in hold_id order to meet them (seen on PostgreSQL 15 with a small hold table).
    """
    holds = select(Hold.id).where(Hold.release_id == release_id, is_reclaimable(now)).cte().prefix_with("MATERIALIZED")
    return select(holds.c.id)


def free_unit_numbers(release_id: int, now: datetime) -> CompoundSelect:
    """SQL: the numbers of the release's free units (column `number`), in no particular order.

    Two index walks glued together: the partial index on available units (ix_unit_available), and the units of
    this release's timed-out holds (ix_hold_active_expiry, then ix_unit_hold_id).
    """
    available = select(Unit.number).where(Unit.release_id == release_id, UNIT_IS_AVAILABLE)
    timed_out = select(Unit.number).where(
        Unit.hold_id.in_(timed_out_hold_ids(release_id, now)), Unit.release_id == release_id, UNIT_IS_HELD
    )
    return union_all(available, timed_out)


def free_numbers(session: Session, release_id: int, now: datetime, *, limit: int | None = None) -> FreeNumbers:
    """The release's free numbers as ranges (the first `limit` of them, when given), from one query.

    Gaps and islands: over the free numbers in order, `number - row_number()` is the same for every number of one
    unbroken run and grows at each gap, so grouping by it gives one row per range. The database walks the free
    numbers once; Python only sees the ranges, and the totals come from window functions over the groups.
    """
    free = free_unit_numbers(release_id, now).subquery("free")
    islands = select(
        free.c.number, (free.c.number - func.row_number().over(order_by=free.c.number)).label("island")
    ).subquery("islands")
    first, last, size = func.min(islands.c.number), func.max(islands.c.number), func.count()
    query = (
        select(
            first,
            last,
            func.count().over().label("range_count"),
            func.sum(size).over().label("free"),
        )
        .group_by(islands.c.island)
        .order_by(first)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    if not rows:
        return FreeNumbers(ranges=[], range_count=0, free=0)
    return FreeNumbers(
        ranges=[(int(row[0]), int(row[1])) for row in rows], range_count=int(rows[0][2]), free=int(rows[0][3])
    )


def next_free(session: Session, release_id: int, wanted: int, now: datetime) -> int | None:
    """The free number nearest above `wanted`, else the lowest free one; None when every number is taken.

    The same rule as `inventory.next_free_number` (which NumberTaken's suggestion uses once the claim has
    reclaimed timed-out holds), counting timed-out holds' numbers as free the way this module does. Each kind of
    free unit is asked for its own minimum, so each is one step down an index, not an aggregate over the run.
    """

    def lowest(above: int):
        available = select(func.min(Unit.number)).where(
            Unit.release_id == release_id, UNIT_IS_AVAILABLE, Unit.number > above
        )
        timed_out = select(func.min(Unit.number)).where(
            Unit.hold_id.in_(timed_out_hold_ids(release_id, now)),
            Unit.release_id == release_id,
            UNIT_IS_HELD,
            Unit.number > above,
        )
        found = session.execute(select(available.scalar_subquery(), timed_out.scalar_subquery())).one()
        return min((number for number in found if number is not None), default=None)

    above = lowest(wanted)
    return above if above is not None else lowest(0)


def number_status(session: Session, release: Release, number: int, now: datetime) -> NumberStatus:
    """Say whether `number` is free in this release now, and which free number to offer when it is not."""
    if not 1 <= number <= release.total_units:
        return NumberStatus(number, NumberState.NOT_IN_RUN, None)
    free = free_unit_numbers(release.id, now).subquery("free")
    is_free = session.scalar(select(free.c.number).where(free.c.number == number).limit(1)) is not None
    if is_free:
        return NumberStatus(number, NumberState.FREE, None)
    return NumberStatus(number, NumberState.TAKEN, next_free(session, release.id, number, now))


@dataclass(frozen=True)
class NumberChoices:
    """What the release page offers to pick from: every number of a small run with whether it is free (`grid`),
    or, for a long run, its first free ranges (`grid` is None)."""

    free: FreeNumbers
    grid: list[tuple[int, bool]] | None


def number_choices(session: Session, release: Release, now: datetime) -> NumberChoices:
    """The numbers a buyer can pick from on the release page, from one query either way."""
    if release.total_units > GRID_MAX_NUMBERS:
        return NumberChoices(free=free_numbers(session, release.id, now, limit=RANGES_NAMED), grid=None)
    found = free_numbers(session, release.id, now)
    free = {number for first, last in found.ranges for number in range(first, last + 1)}
    return NumberChoices(free=found, grid=[(number, number in free) for number in range(1, release.total_units + 1)])
