"""Shared helpers for the reservation engine's tests: committed claims, stock snapshots, buyers run in parallel.

On SQLite every claim, release and convert must start its own transaction (BEGIN IMMEDIATE), so these helpers
commit whatever the session has open before calling the engine, and commit or roll back right after it.
"""

from __future__ import annotations

import socket
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.domain.audit import audit
from storefront.domain.inventory import Buyer, claim, convert, held_numbers, release_hold
from storefront.extensions import db
from storefront.models import Hold, Order, Unit
from storefront.unit_of_work import write_transaction

HOLD_FOR = timedelta(minutes=10)


def assert_audit_clean(session: Session, now: datetime) -> None:
    """Fail with every violation the auditor finds; leave the session without an open transaction."""
    session.commit()
    problems = audit(session, now)
    session.rollback()
    assert problems == [], "\n".join(problems)


def claim_committed(
    session: Session,
    release_id: int,
    quantity: int,
    email: str,
    now: datetime,
    *,
    number: int | None = None,
    hold_for: timedelta = HOLD_FOR,
) -> Hold:
    """Claim in a transaction of its own, as a view would: commit on success, roll back on a domain error."""
    session.commit()
    with write_transaction(session):
        return claim(session, release_id, quantity, Buyer(email), now, hold_for, number=number)


def release_committed(session: Session, hold: Hold, now: datetime, reason: str = "cancelled") -> Hold:
    session.commit()
    with write_transaction(session):
        return release_hold(session, hold, now, reason)


def new_order_for(hold: Hold) -> Order:
    """The order a payment for this hold would create."""
    return Order(
        release_id=hold.release_id,
        email=hold.buyer_email,
        buyer_key=hold.buyer_key,
        quantity=hold.quantity,
        unit_amount=8900,
        amount_total=8900 * hold.quantity,
        currency="EUR",
        hold_id=hold.id,
    )


def convert_committed(session: Session, hold: Hold, order: Order, now: datetime) -> Hold:
    session.commit()
    with write_transaction(session):
        return convert(session, hold, order, now)


def numbers_of(session: Session, hold: Hold) -> list[int]:
    numbers = held_numbers(session, hold)
    session.rollback()
    return numbers


def units_by_number(session: Session, release_id: int) -> dict[int, Unit]:
    """Every unit of a release, fresh from the database, keyed by number."""
    session.commit()  # a new transaction: on SQLite (WAL) an old read transaction would show an old snapshot
    units = session.scalars(select(Unit).where(Unit.release_id == release_id).order_by(Unit.number)).all()
    return {unit.number: unit for unit in units}


def status_counts(session: Session, release_id: int) -> Counter:
    return Counter(unit.status for unit in units_by_number(session, release_id).values())


# --- Buyers in parallel ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one concurrent task ended with: its return value, or the exception it raised."""

    value: object = None
    error: BaseException | None = None
    trace: str = ""


def run_concurrently(app, tasks: Sequence[Callable[[], object]], *, timeout: float = 120) -> list[Outcome]:
    """Run each task in a thread of its own, inside an app context of its own, all released at once.

    Each thread's `db.session` is its own (Flask-SQLAlchemy scopes sessions by app context) and is removed,
    returning its connection to the pool, when the context ends.
    """
    barrier = threading.Barrier(len(tasks))
    outcomes = [Outcome() for _ in tasks]

    def run(index: int, task: Callable[[], object]) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=timeout)
                outcomes[index].value = task()
            except BaseException as error:  # reported to the test, which decides what was expected
                outcomes[index].error = error
                outcomes[index].trace = traceback.format_exc()
                db.session.rollback()

    threads = [threading.Thread(target=run, args=(i, task), daemon=True) for i, task in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"{len(stuck)} threads did not finish within {timeout} s"
    return outcomes


def unexpected(outcomes: Sequence[Outcome], *expected: type[BaseException]) -> list[str]:
    """Tracebacks of outcomes that failed with anything but the expected errors."""
    return [o.trace for o in outcomes if o.error is not None and not isinstance(o.error, expected)]


@dataclass(frozen=True)
class ClaimResult:
    email: str
    quantity: int
    hold_id: int
    numbers: tuple[int, ...]
    refusal: str = ""


def claim_in_own_transaction(
    session: Session, release_id: int, quantity: int, email: str, now: datetime, number: int | None = None
) -> ClaimResult:
    """One buyer's request: claim, read what was taken, commit. Domain errors roll back and propagate."""
    with write_transaction(session):
        hold = claim(session, release_id, quantity, Buyer(email), now, HOLD_FOR, number=number)
        return ClaimResult(email, quantity, hold.id, tuple(held_numbers(session, hold)))


def check_drop(session: Session, release_id: int, total: int, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Every buyer got a hold or a plain "sold out", and the units went out exactly once (see check_sold_once)."""
    from storefront.domain.inventory import SoldOut

    assert unexpected(outcomes, SoldOut) == []
    check_sold_once(session, release_id, total, [o.value for o in outcomes if o.error is None], now)


def check_sold_once(session: Session, release_id: int, total: int, held: Sequence[ClaimResult], now: datetime):
    """The invariants of a finished drop: every unit in exactly one live hold, each hold exactly what it claimed."""
    units = units_by_number(session, release_id)
    assert sorted(units) == list(range(1, total + 1))
    assert Counter(unit.status for unit in units.values()) == Counter({"held": total}), "units left or lost"

    numbers = [n for result in held for n in result.numbers]
    assert len(numbers) == len(set(numbers)) == total, "a number was given to two buyers"
    assert sum(result.quantity for result in held) == total
    for result in held:
        assert len(result.numbers) == result.quantity
        assert all(units[n].hold_id == result.hold_id for n in result.numbers)
    holds = session.scalars(select(Hold).where(Hold.release_id == release_id)).all()
    assert all(hold.status == "active" for hold in holds)
    assert sum(hold.quantity for hold in holds) == total
    assert sorted(hold.id for hold in holds) == sorted(result.hold_id for result in held)
    assert_audit_clean(session, now)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Buyers in other processes (multiprocessing, spawn) ----------------------------------------------------------


def buy_in_process(
    database_url: str,
    release_id: int,
    now: datetime,
    buyers: list[tuple[str, int]],
    start_together,
    results,
) -> None:
    """Entry point of a spawned process: build the app, then claim for every buyer in a thread of its own.

    Sends back one ClaimResult per buyer: a hold, or a refusal ("SoldOut", or the traceback of anything else).
    """
    from config import TestConfig
    from storefront import create_app
    from storefront.domain.inventory import SoldOut

    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, DATABASE_POOL_SIZE=5, DATABASE_MAX_OVERFLOW=0)
    report = []
    try:
        with app.app_context():
            db.session.execute(select(1))  # open the pool before the race
            db.session.rollback()
        start_together.wait(timeout=120)

        def buy(email: str, quantity: int):
            return lambda: claim_in_own_transaction(db.session, release_id, quantity, email, now)

        outcomes = run_concurrently(app, [buy(email, quantity) for email, quantity in buyers])
        for (email, quantity), outcome in zip(buyers, outcomes, strict=True):
            if outcome.error is None:
                report.append(outcome.value)
            elif isinstance(outcome.error, SoldOut):
                report.append(ClaimResult(email, quantity, 0, (), refusal="SoldOut"))
            else:
                report.append(ClaimResult(email, quantity, 0, (), refusal=outcome.trace))
    except BaseException:
        report.append(ClaimResult("", 0, 0, (), refusal=traceback.format_exc()))
    finally:
        with app.app_context():
            db.engine.dispose()
        results.put(report)
