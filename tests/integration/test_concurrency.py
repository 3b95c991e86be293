"""The reservation engine under real concurrency: many buyers at once, in threads and in processes.

Every buyer has a thread, an app context and a database session of its own, and all of them are released at the
same instant by a barrier. Time moves only when the test moves the FrozenClock; nothing sleeps.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from storefront.domain.inventory import Buyer, HoldNotActive, LimitReached, NumberTaken, SoldOut, claim
from storefront.extensions import db
from storefront.models import Hold
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import (
    HOLD_FOR,
    assert_audit_clean,
    buy_in_process,
    check_drop,
    check_sold_once,
    claim_committed,
    claim_in_own_transaction,
    convert_committed,
    new_order_for,
    run_concurrently,
    status_counts,
    unexpected,
    units_by_number,
)

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def app_overrides():
    # 40 connections for up to 300 threads: buyers queue for a connection the way gunicorn threads would.
    return {"DATABASE_POOL_SIZE": 30, "DATABASE_MAX_OVERFLOW": 10}


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def new_release(session, **options) -> int:
    release_id = make_release(session, on_sale_at=ON_SALE, **options).id
    session.commit()  # and read nothing after: on SQLite (WAL) a read would pin a snapshot from before the race
    return release_id


def buyer(release_id: int, quantity: int, email: str, now: datetime, number: int | None = None):
    """One buyer's request, to run in a thread of its own (its own app context, so its own session)."""
    return lambda: claim_in_own_transaction(db.session, release_id, quantity, email, now, number=number)


def assert_audit_command_clean(app) -> None:
    result = app.test_cli_runner().invoke(args=["storefront", "audit"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("database_url", "buyers", "units"),
    [("postgresql", 300, 50), ("sqlite", 40, 20)],
    indirect=["database_url"],
)
def test_a_drop_sells_every_unit_once(app, session, clock, buyers, units):
    release_id = new_release(session, units=units, limit=3)
    rng = random.Random(f"drop-{buyers}-{units}")
    wants = [rng.randint(1, 3) for _ in range(buyers)]

    outcomes = run_concurrently(
        app, [buyer(release_id, want, f"buyer{i}@example.com", clock()) for i, want in enumerate(wants)]
    )

    check_drop(session, release_id, units, outcomes, clock())
    assert_audit_command_clean(app)
    refused = [o.error for o in outcomes if o.error is not None]
    assert refused and all(isinstance(error, SoldOut) for error in refused)


def test_a_picked_number_races_lowest_number_claims_for_the_same_unit(app, session, clock, backend):
    repetitions = 25 if backend == "postgresql" else 10  # on PostgreSQL either side wins, roughly half the time each
    for repetition in range(repetitions):
        release_id = new_release(session, units=2, limit=1)
        tasks = [
            buyer(release_id, 1, f"picker{repetition}@example.com", clock(), number=1),
            buyer(release_id, 1, f"first{repetition}@example.com", clock()),
            buyer(release_id, 1, f"second{repetition}@example.com", clock()),
        ]
        outcomes = run_concurrently(app, tasks)

        assert unexpected(outcomes, SoldOut, NumberTaken) == []
        held = [o.value for o in outcomes if o.error is None]
        assert len(held) == 2, [repr(o.error) for o in outcomes]
        assert sorted(n for result in held for n in result.numbers) == [1, 2]
        units = units_by_number(session, release_id)
        holder_of_1 = [result for result in held if 1 in result.numbers]
        assert len(holder_of_1) == 1 and units[1].hold_id == holder_of_1[0].hold_id
        loser = next(o.error for o in outcomes if o.error is not None)
        if isinstance(loser, NumberTaken):
            assert loser.next_free in {None, 2}  # No. 2 may still have looked free while its claim was running
        session.rollback()
    assert_audit_clean(session, clock())


def test_one_buyer_firing_parallel_claims_stops_at_the_limit(app, session, clock, backend):
    rounds = 3 if backend == "postgresql" else 1
    for round_ in range(rounds):
        release_id = new_release(session, units=30, limit=3)
        # One mailbox, typed five ways: case, surrounding spaces and a "+tag" (folded by default) are one buyer.
        spellings = [
            "ann@example.com",
            "Ann@Example.com",
            " ANN@EXAMPLE.COM",
            "ann@EXAMPLE.com ",
            "Ann+drop@example.com",
        ]
        outcomes = run_concurrently(
            app, [buyer(release_id, 1, spellings[i % len(spellings)], clock()) for i in range(10)]
        )

        assert unexpected(outcomes, LimitReached) == []
        held = [o.value for o in outcomes if o.error is None]
        assert len(held) == 3, f"round {round_}: {len(held)} claims passed a limit of 3"
        assert all(o.error.remaining == 0 for o in outcomes if o.error is not None)
        assert status_counts(session, release_id) == {"held": 3, "available": 27}
        holds = session.scalars(select(Hold).where(Hold.release_id == release_id)).all()
        # The limit counts by the canonical key; each hold keeps the address as its buyer typed it (mail goes there).
        assert {hold.buyer_key for hold in holds} == {"ann@example.com"}
        assert {hold.buyer_email for hold in holds} <= {spelling.strip() for spelling in spellings}
        session.rollback()
    assert_audit_clean(session, clock())


def test_one_buyer_mixing_quantities_in_parallel_never_passes_the_limit(app, session, clock):
    release_id = new_release(session, units=30, limit=3)
    rng = random.Random("one-buyer-mixed")
    wants = [rng.randint(1, 3) for _ in range(12)]
    outcomes = run_concurrently(app, [buyer(release_id, want, "bob@example.com", clock()) for want in wants])

    assert unexpected(outcomes, LimitReached) == []
    held = [o.value for o in outcomes if o.error is None]
    assert 1 <= sum(result.quantity for result in held) <= 3
    assert_audit_clean(session, clock())


def test_many_claimers_reclaim_timed_out_holds_without_losing_or_doubling_a_unit(app, session, clock, backend):
    total = 30
    release_id = new_release(session, units=total, limit=3)
    old_holds = [claim_committed(session, release_id, 3, f"early{i}@example.com", clock()).id for i in range(10)]
    # One buyer paid in time; another's payment arrives late, racing the claimers for its timed-out hold.
    paid_in_time = session.get(Hold, old_holds[0])
    convert_committed(session, paid_in_time, new_order_for(paid_in_time), clock())
    late_order = new_order_for(session.get(Hold, old_holds[1]))
    session.rollback()

    clock.advance(minutes=10, seconds=1)
    now = clock()
    rng = random.Random(f"reclaim-{backend}")
    wants = [rng.randint(1, 3) for _ in range(20 if backend == "postgresql" else 12)]

    def late_payment():
        return convert_committed(db.session, db.session.get(Hold, old_holds[1]), late_order, now).id

    tasks = [buyer(release_id, want, f"late{i}@example.com", now) for i, want in enumerate(wants)]
    *claims, payment = run_concurrently(app, [*tasks, late_payment])

    assert unexpected(claims, SoldOut) == []
    assert payment.error is None or isinstance(payment.error, HoldNotActive), payment.trace
    late_paid = payment.error is None
    held = [o.value for o in claims if o.error is None]
    assert held, "nobody got any of the timed-out units"

    units = units_by_number(session, release_id)
    statuses = Counter(unit.status for unit in units.values())
    assert statuses["sold"] == 3 + (3 if late_paid else 0)
    assert statuses["held"] == sum(result.quantity for result in held)
    assert statuses["sold"] + statuses["held"] + statuses["available"] == total
    numbers = [n for result in held for n in result.numbers]
    assert len(numbers) == len(set(numbers)), "a number was given to two buyers"
    for result in held:
        assert {units[n].hold_id for n in result.numbers} == {result.hold_id}

    session.expire_all()
    ends = Counter(
        (hold.status, hold.end_reason) for hold in session.scalars(select(Hold).where(Hold.id.in_(old_holds)))
    )
    # The first claimer reclaimed every timed-out hold that no payment was busy with; the late payment either
    # converted its hold first or found it already released.
    assert ends == {("converted", "paid"): 1 + late_paid, ("released", "expired"): 9 - late_paid}
    assert_audit_clean(session, now)
    assert_audit_command_clean(app)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_during_another_claims_reclaim_is_not_told_sold_out(app, session, clock):
    release_id = new_release(session, units=6, limit=3)
    for i in range(2):
        claim_committed(session, release_id, 3, f"early{i}@example.com", clock())
    clock.advance(minutes=11)
    now = clock()
    reclaiming, meanwhile = Session(db.engine), Session(db.engine)
    answer = {}

    def claim_meanwhile():
        try:
            answer["numbers"] = claim_in_own_transaction(meanwhile, release_id, 1, "late@example.com", now).numbers
        except SoldOut as refusal:
            answer["refusal"] = refusal

    try:
        with write_transaction(reclaiming):
            # The first claimer after the timeout frees all six units and takes No. 1; it has not committed yet.
            claim(reclaiming, release_id, 1, Buyer("first@example.com"), now, HOLD_FOR)
            other = threading.Thread(target=claim_meanwhile)
            other.start()
            # Commit only once the other claim has answered (the bug: "sold out" at once) or waits on our locks.
            wait_until_blocked_by(reclaiming, other)
        other.join(timeout=30)
        assert not other.is_alive()
    finally:
        reclaiming.close()
        meanwhile.close()
    assert answer == {"numbers": (2,)}, f"five units were coming free, yet the answer was {answer}"


def wait_until_blocked_by(session: Session, thread: threading.Thread, timeout: float = 30) -> None:
    """Return once `thread` has finished or another backend waits on a lock this session's transaction holds."""
    backend_pid = session.scalar(select(func.pg_backend_pid()))
    waiting_on_us = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = time.monotonic() + timeout
    with db.engine.connect() as observer:
        while thread.is_alive():
            if observer.execute(waiting_on_us, {"pid": backend_pid}).scalar():
                return
            observer.rollback()
            assert time.monotonic() < deadline, "the other claim neither answered nor waited on the reclaim"
            thread.join(timeout=0.01)


def test_claims_from_several_processes_sell_every_unit_once(postgres_schema_url, clock):
    from config import TestConfig
    from storefront import create_app

    processes, threads_each, total = 4, 10, 20
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=postgres_schema_url, CLOCK=clock)
    try:
        with app.app_context():
            db.create_all()
            release_id = new_release(db.session, units=total, limit=3)
            db.session.remove()

        rng = random.Random("processes")
        plans = [[(f"p{p}-t{t}@example.com", rng.randint(1, 3)) for t in range(threads_each)] for p in range(processes)]
        spawn = multiprocessing.get_context("spawn")
        start_together = spawn.Barrier(processes)
        results = spawn.Queue()
        workers = [
            spawn.Process(
                target=buy_in_process, args=(postgres_schema_url, release_id, clock(), plan, start_together, results)
            )
            for plan in plans
        ]
        for worker in workers:
            worker.start()
        try:
            reports = [results.get(timeout=120) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
            results.close()
            results.join_thread()
        assert [worker.exitcode for worker in workers] == [0] * processes

        answers = [answer for report in reports for answer in report]
        assert sorted(answer.email for answer in answers) == sorted(email for plan in plans for email, _ in plan)
        assert [answer.refusal for answer in answers if answer.refusal not in {"", "SoldOut"}] == []
        assert any(answer.refusal == "SoldOut" for answer in answers)
        with app.app_context():
            held = [answer for answer in answers if not answer.refusal]
            check_sold_once(db.session, release_id, total, held, clock())
            assert_audit_command_clean(app)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
