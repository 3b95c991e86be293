"""Opening and changing numbered releases: the unit rows, numbers kept back from sale, pausing claims.

Every function runs inside the edge's write transaction, only flushes, and writes an activity line with the change.

How edits and claims stay apart (PostgreSQL): a claim reads its release row with FOR KEY SHARE (and inserting its
hold takes that same lock again through the foreign key), so buyers never wait for each other on it. Every change
here that must not interleave with a claim (the price, currency or count, pausing) locks the release row FOR
UPDATE, which conflicts with KEY SHARE: it waits for claims already under way to commit, then sees their holds,
and claims that come later wait for the change and see the new terms. "Nothing held or sold" is therefore checked
and acted on with no claim able to slip in between. On SQLite every write transaction holds the database's write
lock from its start, so the same holds trivially.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, delete, exists, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain import waitlist
from storefront.domain.activity import Actor, record_activity
from storefront.domain.errors import DomainError
from storefront.models import Batch, Hold, Order, Release, Unit, UnitStatus
from storefront.models.catalog import CURRENCY_PATTERN, SLUG_PATTERN
from storefront.text import format_money

MAX_UNITS = 100_000
# Numbers in one IN (...) list: SQLite allows 32,766 parameters per statement.
NUMBERS_CHUNK = 1_000
TITLE_MAX = 200
# As the form reads it (up to 9,999,999.99): within the database's integer.
MAX_SHIPPING = 999_999_999
SLUG_MAX = 120


@dataclass(frozen=True)
class ReleaseTerms:
    """What the producer decides about a release; money in minor units, times aware."""

    title: str
    slug: str
    price_amount: int
    currency: str
    total_units: int
    on_sale_at: datetime
    off_sale_at: datetime | None = None
    per_customer_limit: int = 2
    allow_number_choice: bool = False
    # Charged once per order on top of the units, in the same currency; 0 is free shipping.
    shipping_amount: int = 0
    # When the product's waiters may reserve with their personal links, before everyone else; None: no early access.
    early_access_at: datetime | None = None


class ReleaseNotFound(DomainError):
    """There is no release with that id."""


class InvalidReleaseTerms(DomainError):
    """One or more terms are refused; `problems` maps each term's name (a ReleaseTerms field) to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


class NumbersUnavailable(DomainError):
    """Some of the numbers asked for cannot be kept back or returned; `numbers` names them."""

    def __init__(self, message: str, numbers: Sequence[int]) -> None:
        super().__init__(message)
        self.numbers = list(numbers)


# --- Opening ----------------------------------------------------------------------------------------------------


def open_release(
    session: Session,
    batch_id: int,
    terms: ReleaseTerms,
    now: datetime,
    actor: Actor,
    *,
    withheld: Iterable[int] = (),
    allow_past_on_sale: bool = False,
) -> Release:
    """Create a release of a batch and its numbered units 1..N (the `withheld` numbers kept back from sale).

    `allow_past_on_sale` is for trusted callers (the demo loader, test factories) that record a release which
    opened in the past; the producer's form never passes it. Raises InvalidReleaseTerms naming every bad term.
    A slug taken by a concurrent request surfaces as the database's IntegrityError at the flush.
    """
    require_write_transaction(session)
    withheld_numbers = set(withheld)
    problems = term_problems(terms, now, check_on_sale=not allow_past_on_sale)
    if session.get(Batch, batch_id) is None:
        problems["batch_id"] = "Choose the batch this release is bottled or packed from."
    if "slug" not in problems and slug_in_use(session, terms.slug):
        problems["slug"] = f"The address “{terms.slug}” is already used by another release; choose another."
    if not all(is_whole(number) for number in withheld_numbers):
        problems["withheld"] = "Numbers kept back must be whole numbers, such as 1 or 5."
    elif "total_units" not in problems:
        outside = sorted(number for number in withheld_numbers if not 1 <= number <= terms.total_units)
        if outside:
            problems["withheld"] = (
                f"Numbers kept back must be between 1 and {terms.total_units}; {describe_numbers(outside)} is not."
            )
        elif len(withheld_numbers) >= terms.total_units:
            problems["withheld"] = "Keep at least one number for sale."
    if problems:
        raise InvalidReleaseTerms(problems)

    release = Release(
        batch_id=batch_id,
        slug=terms.slug,
        title=terms.title.strip(),
        price_amount=terms.price_amount,
        currency=terms.currency,
        shipping_amount=terms.shipping_amount,
        total_units=terms.total_units,
        on_sale_at=terms.on_sale_at,
        off_sale_at=terms.off_sale_at,
        per_customer_limit=terms.per_customer_limit,
        allow_number_choice=terms.allow_number_choice,
        early_access_at=terms.early_access_at,
        created_at=now,
        updated_at=now,
    )
    session.add(release)
    session.flush()
    insert_units(session, release.id, 1, terms.total_units)
    change_status(session, release.id, sorted(withheld_numbers), UnitStatus.AVAILABLE, UnitStatus.WITHHELD)
    kept = f", {describe_numbers(sorted(withheld_numbers))} kept back" if withheld_numbers else ""
    record_activity(
        session,
        actor,
        "release.opened",
        "release",
        release.id,
        f"Opened “{release.title}”: {release.total_units} numbered at "
        f"{format_money(release.price_amount, release.currency)}, "
        f"{shipping_text(release.shipping_amount, release.currency)}{kept}",
        now,
    )
    return release


def insert_units(session: Session, release_id: int, first: int, last: int) -> None:
    """Insert available unit rows numbered first..last in one INSERT ... SELECT over a generated series.

    The numbers are generated by the database (a recursive CTE, which SQLite and PostgreSQL both run), so
    100,000 rows cost one statement and no Python objects: measured about 3x faster than executemany of the
    same rows in chunks on PostgreSQL, where the time left is the indexes' upkeep.
    """
    numbers = select(literal(first, Integer).label("number")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.number + 1).where(numbers.c.number < last))
    session.execute(
        insert(Unit).from_select(
            ["release_id", "number", "status"],
            select(literal(release_id, Integer), numbers.c.number, literal(str(UnitStatus.AVAILABLE), String)),
        )
    )


def term_problems(terms: ReleaseTerms, now: datetime, *, check_on_sale: bool) -> dict[str, str]:
    """Say what is wrong with each term on its own (uniqueness and the units' history are checked by callers)."""
    problems: dict[str, str] = {}
    if not isinstance(terms.title, str) or not terms.title.strip():
        problems["title"] = "Give the release a title, e.g. “Carlow Rye, Batch 8, 70 cl”."
    elif len(terms.title.strip()) > TITLE_MAX:
        problems["title"] = f"Keep the title to {TITLE_MAX} characters."
    if not isinstance(terms.slug, str) or not SLUG_PATTERN.match(terms.slug) or len(terms.slug) > SLUG_MAX:
        problems["slug"] = "The address may use lowercase letters, digits and single hyphens, e.g. rye-batch-8."
    if not is_whole(terms.price_amount) or terms.price_amount < 0:
        problems["price_amount"] = "The price must be zero or more."
    if not is_whole(terms.shipping_amount) or not 0 <= terms.shipping_amount <= MAX_SHIPPING:
        problems["shipping_amount"] = "Shipping must be zero (free shipping) or more, up to 9,999,999.99."
    if not isinstance(terms.currency, str) or not CURRENCY_PATTERN.match(terms.currency):
        problems["currency"] = "Choose a currency by its three-letter code, such as EUR."
    if not is_whole(terms.total_units) or not 1 <= terms.total_units <= MAX_UNITS:
        problems["total_units"] = f"A release has from 1 to {MAX_UNITS:,} numbered units."
    if not is_whole(terms.per_customer_limit) or terms.per_customer_limit < 1:
        problems["per_customer_limit"] = "Each customer must be allowed at least 1."
    if not is_aware(terms.on_sale_at):
        problems["on_sale_at"] = "Give the on-sale time with its time zone."
    elif check_on_sale and terms.on_sale_at < start_of_minute(now):
        problems["on_sale_at"] = "That on-sale time has already passed; choose a time from now on."
    if terms.off_sale_at is not None:
        if not is_aware(terms.off_sale_at):
            problems["off_sale_at"] = "Give the off-sale time with its time zone."
        elif is_aware(terms.on_sale_at) and terms.off_sale_at <= terms.on_sale_at:
            problems["off_sale_at"] = "The sale must close after it opens."
    if terms.early_access_at is not None:
        if not is_aware(terms.early_access_at):
            problems["early_access_at"] = "Give the early-access time with its time zone."
        elif is_aware(terms.on_sale_at) and terms.early_access_at >= terms.on_sale_at:
            problems["early_access_at"] = "Early access must start before the release goes on sale to everyone."
    return problems


def is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None


def start_of_minute(moment: datetime) -> datetime:
    # Forms give times to the minute: "now", typed a few seconds into the minute, is not in the past.
    return moment.replace(second=0, microsecond=0)


def slug_in_use(session: Session, slug: str, *, other_than: int | None = None) -> bool:
    query = select(Release.id).where(Release.slug == slug)
    if other_than is not None:
        query = query.where(Release.id != other_than)
    return session.scalar(query.limit(1)) is not None


# --- Editing ----------------------------------------------------------------------------------------------------


def lock_release(session: Session, release_id: int) -> Release:
    """Load a release fresh with its row locked FOR UPDATE: claims (KEY SHARE) wait until we commit."""
    release = session.scalar(
        select(Release).where(Release.id == release_id).with_for_update().execution_options(populate_existing=True)
    )
    if release is None:
        raise ReleaseNotFound("There is no such release.")
    return release


def has_commitments(session: Session, release_id: int) -> bool:
    """Whether anyone ever held or bought from this release: a unit held or sold, or any hold or order made."""
    return bool(
        session.scalar(
            select(
                or_(
                    exists().where(Hold.release_id == release_id),
                    exists().where(Order.release_id == release_id),
                    exists().where(Unit.release_id == release_id, Unit.status.in_([UnitStatus.HELD, UnitStatus.SOLD])),
                )
            )
        )
    )


def update_release(session: Session, release_id: int, terms: ReleaseTerms, now: datetime, actor: Actor) -> Release:
    """Change a release's terms. Price, currency and count change freely only while nothing was ever held or sold;
    after that the count may only be raised (new numbers are appended, available).

    The release row is locked first, so the "nothing held or sold" check and the change happen with no claim in
    between (see the module's docstring). Raises ReleaseNotFound or InvalidReleaseTerms.
    """
    require_write_transaction(session)
    release = lock_release(session, release_id)
    moved = terms.on_sale_at != release.on_sale_at
    problems = term_problems(terms, now, check_on_sale=moved)
    if (
        "slug" not in problems
        and terms.slug != release.slug
        and slug_in_use(session, terms.slug, other_than=release.id)
    ):
        problems["slug"] = f"The address “{terms.slug}” is already used by another release; choose another."

    money_changed = terms.price_amount != release.price_amount or terms.currency != release.currency
    count_changed = terms.total_units != release.total_units
    committed = (money_changed or count_changed) and has_commitments(session, release.id)
    if committed:
        because = "units have already been reserved or sold"
        if terms.price_amount != release.price_amount and "price_amount" not in problems:
            problems["price_amount"] = f"The price cannot change now that {because}."
        if terms.currency != release.currency and "currency" not in problems:
            problems["currency"] = f"The currency cannot change now that {because}."
        if terms.total_units < release.total_units and "total_units" not in problems:
            problems["total_units"] = (
                f"The number of units can be raised but not lowered now that {because} (it is {release.total_units})."
            )
    if problems:
        raise InvalidReleaseTerms(problems)

    changes = describe_changes(release, terms)
    old_total = release.total_units
    if terms.total_units > old_total:
        insert_units(session, release.id, old_total + 1, terms.total_units)
    elif terms.total_units < old_total:
        # Nothing was ever held or sold (checked above), so the numbers above the new total are all
        # available or kept back: they go.
        session.execute(
            delete(Unit).where(Unit.release_id == release.id, Unit.number > terms.total_units),
            execution_options={"synchronize_session": False},
        )
    new_values = {**vars(terms), "title": terms.title.strip()}
    for name, value in new_values.items():
        if getattr(release, name) != value:
            setattr(release, name, value)
    if changes:
        release.updated_at = now
        record_activity(
            session, actor, "release.edited", "release", release.id, f"Edited “{release.title}”: {changes}", now
        )
    session.flush()
    if terms.total_units > old_total:
        # Numbers added to a sold-out run are numbers come free: its waitlist is offered them before the public.
        waitlist.units_freed(session, release.id, terms.total_units - old_total, now)
    return release


def shipping_text(amount: int, currency: str) -> str:
    """Shipping as the activity log says it: "shipping €6.00 per order" or "free shipping"."""
    return f"shipping {format_money(amount, currency)} per order" if amount else "free shipping"


def describe_changes(release: Release, terms: ReleaseTerms) -> str:
    """List what `terms` would change about `release`, for the activity log."""
    changes = []
    if terms.title.strip() != release.title:
        changes.append(f"title to “{terms.title.strip()}”")
    if terms.slug != release.slug:
        changes.append(f"address to {terms.slug}")
    if terms.price_amount != release.price_amount or terms.currency != release.currency:
        changes.append(f"price to {format_money(terms.price_amount, terms.currency)}")
    shipping_changed = terms.shipping_amount != release.shipping_amount
    if shipping_changed or (terms.currency != release.currency and terms.shipping_amount):
        # Checkouts opened from now on charge it; holds already at the payment page keep what they were asked.
        changes.append(
            f"shipping to {format_money(terms.shipping_amount, terms.currency)} per order"
            if terms.shipping_amount
            else "free shipping"
        )
    if terms.total_units != release.total_units:
        changes.append(f"units from {release.total_units} to {terms.total_units}")
    if terms.on_sale_at != release.on_sale_at:
        changes.append(f"on sale at {terms.on_sale_at.isoformat()}")
    if terms.off_sale_at != release.off_sale_at:
        changes.append(f"off sale at {terms.off_sale_at.isoformat()}" if terms.off_sale_at else "no closing time")
    if terms.per_customer_limit != release.per_customer_limit:
        changes.append(f"limit {terms.per_customer_limit} per customer")
    if terms.allow_number_choice != release.allow_number_choice:
        changes.append("number choice " + ("on" if terms.allow_number_choice else "off"))
    if terms.early_access_at != release.early_access_at:
        changes.append(
            f"early access from {terms.early_access_at.isoformat()}" if terms.early_access_at else "no early access"
        )
    return ", ".join(changes)


# --- Numbers kept back ------------------------------------------------------------------------------------------


def withhold_numbers(
    session: Session, release_id: int, numbers: Iterable[int], now: datetime, actor: Actor
) -> list[int]:
    """Keep numbers back from sale; return those newly kept back. Numbers already kept back are left as they are.

    Only available numbers can be kept back: a held or sold number is refused by name (NumbersUnavailable) and
    nothing changes. A claim that has locked a unit makes this wait for it, then see it held.
    """
    require_write_transaction(session)
    release = get_release(session, release_id)
    wanted = checked_numbers(release, numbers)
    changed = change_status(session, release.id, wanted, UnitStatus.AVAILABLE, UnitStatus.WITHHELD)
    refused = refusals(session, release.id, set(wanted) - set(changed), allowed=UnitStatus.WITHHELD)
    if refused:
        raise NumbersUnavailable(
            "Only numbers for sale can be kept back: " + "; ".join(refused.values()) + ". Nothing was changed.",
            sorted(refused),
        )
    if changed:
        record_activity(
            session,
            actor,
            "release.withheld",
            "release",
            release.id,
            f"Kept {describe_numbers(changed)} of “{release.title}” back from sale",
            now,
        )
    return changed


def return_withheld_numbers(
    session: Session, release_id: int, numbers: Iterable[int], now: datetime, actor: Actor
) -> list[int]:
    """Put numbers kept back on sale again; return those returned. Numbers already for sale are left as they are."""
    require_write_transaction(session)
    release = get_release(session, release_id)
    wanted = checked_numbers(release, numbers)
    changed = change_status(session, release.id, wanted, UnitStatus.WITHHELD, UnitStatus.AVAILABLE)
    refused = refusals(session, release.id, set(wanted) - set(changed), allowed=UnitStatus.AVAILABLE)
    if refused:
        raise NumbersUnavailable(
            "Only numbers kept back can be returned to sale: " + "; ".join(refused.values()) + ". Nothing was changed.",
            sorted(refused),
        )
    if changed:
        # Numbers back on sale in a sold-out release go to its waitlist first, like any freed number.
        waitlist.units_freed(session, release.id, len(changed), now)
        record_activity(
            session,
            actor,
            "release.returned",
            "release",
            release.id,
            f"Put {describe_numbers(changed)} of “{release.title}” back on sale",
            now,
        )
    return changed


def get_release(session: Session, release_id: int) -> Release:
    release = session.get(Release, release_id)
    if release is None:
        raise ReleaseNotFound("There is no such release.")
    return release


def checked_numbers(release: Release, numbers: Iterable[int]) -> list[int]:
    wanted = sorted(set(numbers))
    if not wanted:
        raise NumbersUnavailable("Name at least one number, e.g. 1 or 5-7.", [])
    outside = [number for number in wanted if not is_whole(number) or not 1 <= number <= release.total_units]
    if outside:
        raise NumbersUnavailable(
            f"Numbers run from 1 to {release.total_units}; {describe_numbers(outside)} is not one of them.", outside
        )
    return wanted


def change_status(session: Session, release_id: int, numbers: list[int], before: str, after: str) -> list[int]:
    """Move those of `numbers` whose unit is `before` to `after` in one UPDATE per chunk; return them."""
    changed: list[int] = []
    for start in range(0, len(numbers), NUMBERS_CHUNK):
        chunk = numbers[start : start + NUMBERS_CHUNK]
        changed.extend(
            session.scalars(
                update(Unit)
                .where(Unit.release_id == release_id, Unit.number.in_(chunk), Unit.status == before)
                .values(status=after)
                .returning(Unit.number),
                execution_options={"synchronize_session": False},
            )
        )
    return sorted(changed)


def refusals(session: Session, release_id: int, numbers: set[int], allowed: str) -> dict[int, str]:
    """Why each of `numbers` was not changed; numbers already in the `allowed` state are no refusal."""
    reasons = {
        UnitStatus.HELD: "is held by a buyer",
        UnitStatus.SOLD: "is sold",
        UnitStatus.AVAILABLE: "is already for sale",
        UnitStatus.WITHHELD: "is already kept back",
    }
    found: dict[int, str] = {}
    ordered = sorted(numbers)
    for start in range(0, len(ordered), NUMBERS_CHUNK):
        rows = session.execute(
            select(Unit.number, Unit.status).where(
                Unit.release_id == release_id, Unit.number.in_(ordered[start : start + NUMBERS_CHUNK])
            )
        )
        found.update({number: status for number, status in rows if status != allowed})
    return {number: f"No. {number} {reasons.get(status, status)}" for number, status in sorted(found.items())}


def kept_back_numbers(session: Session, release_id: int, limit: int | None = None) -> list[int]:
    """The numbers of a release kept back from sale, lowest first (at most `limit` of them)."""
    query = (
        select(Unit.number)
        .where(Unit.release_id == release_id, Unit.status == UnitStatus.WITHHELD)
        .order_by(Unit.number)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def describe_numbers(numbers: Sequence[int]) -> str:
    """Write [1, 5, 6, 7] as "No. 1, No. 5–7": runs of consecutive numbers as ranges."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(f"No. {first}" if first == last else f"No. {first}–{last}" for first, last in runs)


# --- Pausing ----------------------------------------------------------------------------------------------------


def pause_release(session: Session, release_id: int, now: datetime, actor: Actor) -> Release:
    """Stop claims on a release until it is resumed; pausing a paused release changes nothing.

    The row lock waits for claims already under way, so once this commits no new hold is made.
    """
    require_write_transaction(session)
    release = lock_release(session, release_id)
    if release.paused_at is None:
        release.paused_at = now
        release.updated_at = now
        record_activity(session, actor, "release.paused", "release", release.id, f"Paused “{release.title}”", now)
        session.flush()
    return release


def resume_release(session: Session, release_id: int, now: datetime, actor: Actor) -> Release:
    """Let claims on a paused release through again; resuming an open release changes nothing."""
    require_write_transaction(session)
    release = lock_release(session, release_id)
    if release.paused_at is not None:
        release.paused_at = None
        release.updated_at = now
        record_activity(session, actor, "release.resumed", "release", release.id, f"Resumed “{release.title}”", now)
        session.flush()
    return release
