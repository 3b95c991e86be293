"""The waitlist's offer engine under real concurrency on PostgreSQL: many threads and several processes at once.

Freed numbers of a sold-out run go to the next confirmed waiter through an offer that holds the unit. Here many
transactions free units, confirm waiters, claim as the public, sweep lapsed offers and claim offers at the same
instant (threads released together by a barrier, processes by a multiprocessing barrier). Every run ends with the
waitlist's invariants checked one by one (no unit in two open offers, no waiter with two offers for one release,
every offered unit held by its offer's hold, no unit on public sale while a waiter without an offer remains) and
the auditor clean. The narrow races are also forced one way and the other (`overlap`): a second transaction starts
while the first is open, and the first ends only once the second has finished or waits on its locks. Time moves
only when the test moves the FrozenClock (a process gets the moments it acts at); nothing sleeps.

PostgreSQL only: SQLite runs one writer at a time, so nothing here could race there.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.checkout import flows
from storefront.domain import inventory, waitlist
from storefront.domain.inventory import Buyer, SoldOut
from storefront.extensions import db
from storefront.models import Hold, OutboxMessage, Release, Unit, WaitlistEntry, WaitlistOffer
from storefront.models.waitlist import LIVE_OFFER_STATUSES
from storefront.payments import gateway
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import (
    assert_audit_clean,
    claim_committed,
    claim_in_own_transaction,
    release_committed,
    run_concurrently,
    status_counts,
    unexpected,
    units_by_number,
)
from tests.integration.test_concurrency import wait_until_blocked_by

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
OFFER_FOR = timedelta(minutes=60)  # WAITLIST_OFFER_MINUTES
PAYMENT_TIME = timedelta(minutes=10)
OFFER_MAIL = "is yours to claim"  # in the subject of every offer mail


@pytest.fixture
def app_overrides():
    # 20 connections for up to ~60 threads: they queue for a connection the way gunicorn threads would.
    return {"DATABASE_POOL_SIZE": 16, "DATABASE_MAX_OVERFLOW": 4}


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


# --- Building the scene --------------------------------------------------------------------------------------


def sold_out_release(session, clock, units: int) -> tuple[int, list[int]]:
    """A release whose every unit is held, one per buyer; returns its id and the holds' ids."""
    release_id = make_release(session, on_sale_at=ON_SALE, units=units, limit=2).id
    session.commit()
    hold_ids = [claim_committed(session, release_id, 1, f"buyer{n}@example.com", clock()).id for n in range(units)]
    session.commit()
    return release_id, hold_ids


def join(session, release_id: int, emails: list[str], now: datetime) -> list[int]:
    """Put addresses on the release's list (pending, as after the join form); returns their entry ids."""
    with write_transaction(session):
        product_id = session.get(Release, release_id).batch.product_id
        return [
            waitlist.join_waitlist(
                session,
                product_id=product_id,
                release_id=release_id,
                email=email,
                buyer_key=email,
                name="",
                now=now,
                resend_after=timedelta(minutes=15),
            ).entry.id
            for email in emails
        ]


def line_up(session, clock, release_id: int, count: int, name: str = "waiter") -> list[int]:
    """`count` confirmed waiters, confirmed a second apart in a shuffled order so that the line differs from the
    order they joined in; returns their entry ids in line order."""
    entry_ids = join(session, release_id, [f"{name}{n}@example.com" for n in range(count)], clock())
    line = random.Random(f"{name}-{count}").sample(entry_ids, count)
    with write_transaction(session):
        for entry_id in line:
            clock.advance(seconds=1)
            waitlist.confirm_entry(session, entry_id, clock())
    return line


def offers_made(session, release_id: int) -> list[WaitlistOffer]:
    """Every offer of the release (live or ended), in the order they were made."""
    session.commit()
    return session.scalars(
        select(WaitlistOffer).where(WaitlistOffer.release_id == release_id).order_by(WaitlistOffer.id)
    ).all()


def waiting_in_line(session, release_id: int) -> list[int]:
    """Confirmed waiters who have not had an offer, in line order."""
    session.commit()
    return list(
        session.scalars(
            select(WaitlistEntry.id)
            .where(waitlist.waiting_for(release_id))
            .order_by(WaitlistEntry.confirmed_at, WaitlistEntry.id)
        )
    )


def email_of(session, entry_ids: list[int]) -> list[str]:
    emails = dict(
        session.execute(select(WaitlistEntry.id, WaitlistEntry.email).where(WaitlistEntry.id.in_(entry_ids))).all()
    )
    return [emails[entry_id] for entry_id in entry_ids]


def offer_mails(session) -> Counter:
    """How many offer mails each address has been sent (every one of them delivered)."""
    session.commit()
    rows = session.execute(
        select(OutboxMessage.recipient, OutboxMessage.sent_at).where(OutboxMessage.subject.contains(OFFER_MAIL))
    ).all()
    assert all(sent_at is not None for _, sent_at in rows), "an offer mail was queued but never sent"
    return Counter(recipient for recipient, _ in rows)


def check_waitlist(session, release_id: int, now: datetime) -> list[WaitlistOffer]:
    """Check the waitlist's invariants one by one, then the whole auditor; return the release's offers."""
    offers = offers_made(session, release_id)
    open_offers = [offer for offer in offers if offer.status in LIVE_OFFER_STATUSES]
    shared_units = [unit for unit, count in Counter(o.unit_id for o in open_offers).items() if count > 1]
    assert shared_units == [], "a unit is in two open offers"
    twice_served = [entry for entry, count in Counter(o.entry_id for o in offers).items() if count > 1]
    assert twice_served == [], "a waiter had two offers for one release"
    for offer in open_offers:
        hold, unit = session.get(Hold, offer.hold_id), session.get(Unit, offer.unit_id)
        assert (hold.status, hold.for_offer, unit.status, unit.hold_id, unit.number) == (
            "active",
            True,
            "held",
            hold.id,
            offer.number,
        ), f"offer {offer.id} of No. {offer.number} does not hold its unit"
    ended_entries = [o.entry_id for o in open_offers if session.get(WaitlistEntry, o.entry_id).status != "confirmed"]
    assert ended_entries == [], "an open offer belongs to an address that has left the list"
    paused = session.get(Release, release_id).waitlist_paused_at is not None
    waiting = waiting_in_line(session, release_id)
    on_public_sale = [n for n, unit in units_by_number(session, release_id).items() if unit.status == "available"]
    if waiting and not paused:
        assert on_public_sale == [], f"Nos. {on_public_sale} on public sale while {len(waiting)} waiters wait"
    assert_audit_clean(session, now)
    return offers_made(session, release_id)


# --- Tasks for the threads -----------------------------------------------------------------------------------


def free_unit(hold_id: int, now: datetime, how: str):
    """End one hold in a transaction of its own: the inventory's release_hold (the buyer cancels), or the checkout
    flow's end_hold (what the cancel button and the sweeper call)."""

    def run() -> None:
        if how == "end_hold":
            assert flows.end_hold(db.session, gateway(), hold_id, "cancelled", now) == flows.Ending.RELEASED
            return
        with write_transaction(db.session):
            inventory.release_hold(db.session, db.session.get(Hold, hold_id), now, "cancelled")

    return run


def free_all(hold_ids: list[int], now: datetime) -> list:
    return [free_unit(hold_id, now, ("release_hold", "end_hold")[n % 2]) for n, hold_id in enumerate(hold_ids)]


def confirm(entry_id: int, now: datetime):
    def run() -> None:
        with write_transaction(db.session):
            waitlist.confirm_entry(db.session, entry_id, now)

    return run


def public_buyer(release_id: int, email: str, now: datetime, attempts: int, seed: int):
    """A buyer refreshing the release page and pressing "Reserve" again and again; returns the holds they got."""

    def run() -> list:
        rng = random.Random(seed)
        got = []
        for _ in range(attempts):
            try:
                got.append(claim_in_own_transaction(db.session, release_id, rng.choice((1, 2)), email, now))
            except (SoldOut, inventory.LimitReached):
                continue
        return got

    return run


def sweep(now: datetime):
    return lambda: flows.sweep_holds(db.session, gateway(), now)


def claim_offer(offer_id: int, now: datetime):
    """The waiter presses "Claim" on their offer's page; returns the hold they pay through."""

    def run() -> int:
        with write_transaction(db.session):
            return waitlist.claim_offer(db.session, offer_id, now, PAYMENT_TIME).id

    return run


# --- Two transactions in a chosen overlap ------------------------------------------------------------------------


class RequestFailed(Exception):
    """The first transaction's request failed after its step: it rolls back."""


def overlap(app, first_step, second_step, *, first_fails: bool = False):
    """Run `first_step` in a transaction, and while it is open, `second_step` in another one (a thread of its own);
    end the first once the second has finished or waits on a lock the first holds. Returns what the first returned.

    Each step gets its transaction's session. The first commits, or rolls back when `first_fails`.
    """
    first_session, second_session = Session(db.engine), Session(db.engine)
    errors: list[str] = []

    def second_transaction() -> None:
        try:
            with app.app_context(), write_transaction(second_session):  # its offers are mailed in this app
                second_step(second_session)
        except BaseException:
            errors.append(traceback.format_exc())

    other = threading.Thread(target=second_transaction)
    result = None
    try:
        with write_transaction(first_session):
            result = first_step(first_session)
            other.start()
            wait_until_blocked_by(first_session, other)
            if first_fails:
                raise RequestFailed
    except RequestFailed:
        pass
    finally:
        if other.ident is not None:
            other.join(timeout=30)
        first_session.close()
        second_session.close()
    assert not other.is_alive(), "the second transaction never finished"
    assert errors == []
    return result


def freeing(hold_id: int, now: datetime):
    return lambda session: inventory.release_hold(session, session.get(Hold, hold_id), now)


def confirming(entry_id: int, now: datetime):
    return lambda session: waitlist.confirm_entry(session, entry_id, now)


# --- 1. Many units freed at once ------------------------------------------------------------------------------


@pytest.mark.parametrize("waiters", [60, 25], ids=["more-waiters-than-units", "fewer-waiters-than-units"])
def test_units_freed_at_once_go_once_each_to_the_first_waiters_in_line(app, session, clock, waiters):
    units = 40
    release_id, hold_ids = sold_out_release(session, clock, units)
    line = line_up(session, clock, release_id, waiters)
    now = clock()

    outcomes = run_concurrently(app, free_all(hold_ids, now))

    assert unexpected(outcomes) == []
    offers = check_waitlist(session, release_id, now)
    served = min(units, waiters)
    # Offers were made one after another under the release's lock: each went to whoever was first in line then.
    assert [offer.entry_id for offer in offers] == line[:served]
    assert {offer.status for offer in offers} == {"live"}
    assert len({offer.number for offer in offers}) == served
    assert waiting_in_line(session, release_id) == line[served:]
    assert status_counts(session, release_id) == Counter({"held": served, "available": units - served})
    # Each waiter was mailed their offer once, and its hour runs from now.
    assert offer_mails(session) == Counter(email_of(session, line[:served]))
    assert {(offer.notified_at, offer.expires_at) for offer in offers} == {(now, now + OFFER_FOR)}
    if served == units:
        with pytest.raises(SoldOut):
            claim_committed(session, release_id, 1, "public@example.com", now)
    else:
        hold = claim_committed(session, release_id, 1, "public@example.com", now)
        assert hold.status == "active"  # nobody left in line: the rest went back on public sale
    assert_audit_clean(session, now)


# --- 2. Freeing, confirming and public claims at once -----------------------------------------------------------


def test_public_buyers_hammering_a_sold_out_run_get_nothing_while_waiters_wait(app, session, clock):
    units, newcomers, buyers = 24, 12, 12
    release_id, hold_ids = sold_out_release(session, clock, units)
    line = line_up(session, clock, release_id, units)  # as many waiters as units: someone always waits
    new_entries = join(session, release_id, [f"new{n}@example.com" for n in range(newcomers)], clock())
    now = clock()

    tasks = [
        *free_all(hold_ids, now),
        *[confirm(entry_id, now) for entry_id in new_entries],
        *[public_buyer(release_id, f"public{n}@example.com", now, attempts=5, seed=n) for n in range(buyers)],
    ]
    outcomes = run_concurrently(app, random.Random("hammer").sample(tasks, len(tasks)))

    assert unexpected(outcomes) == []
    public_holds = [hold for outcome in outcomes if isinstance(outcome.value, list) for hold in outcome.value]
    assert public_holds == [], "a public buyer got a number while confirmed waiters had no offer"
    offers = check_waitlist(session, release_id, now)
    assert [offer.entry_id for offer in offers] == line
    assert waiting_in_line(session, release_id) == sorted(new_entries)  # confirmed at one moment: in order of id
    assert status_counts(session, release_id) == Counter({"held": units})


def test_freed_units_new_waiters_and_public_buyers_at_once_keep_the_line_first(app, session, clock):
    units, waiters, newcomers, buyers = 30, 6, 12, 12
    for round_ in range(3):
        release_id, hold_ids = sold_out_release(session, clock, units)
        line = line_up(session, clock, release_id, waiters, name=f"round{round_}-")
        new_entries = join(session, release_id, [f"new{round_}-{n}@example.com" for n in range(newcomers)], clock())
        now = clock()

        tasks = [
            *free_all(hold_ids, now),
            *[confirm(entry_id, now) for entry_id in new_entries],
            *[
                public_buyer(release_id, f"public{round_}-{n}@example.com", now, attempts=4, seed=round_ * 100 + n)
                for n in range(buyers)
            ],
        ]
        outcomes = run_concurrently(app, random.Random(f"mixed-{round_}").sample(tasks, len(tasks)))

        assert unexpected(outcomes) == []
        offers = check_waitlist(session, release_id, now)
        offered = [offer.entry_id for offer in offers]
        assert offered[:waiters] == line, "the waiters confirmed before any unit came free were served first"
        assert set(offered) <= set(line) | set(new_entries)
        public = [result for outcome in outcomes if isinstance(outcome.value, list) for result in outcome.value]
        units_now = units_by_number(session, release_id)
        for result in public:
            assert {units_now[n].hold_id for n in result.numbers} == {result.hold_id}
        # Every freed number is in an offer, with a public buyer, or on sale: none lost, none in two places.
        in_offers = {offer.number for offer in offers}
        to_public = [n for result in public for n in result.numbers]
        available = {n for n, unit in units_now.items() if unit.status == "available"}
        assert len(to_public) == len(set(to_public))
        assert in_offers.isdisjoint(to_public) and in_offers.isdisjoint(available)
        assert len(in_offers) + len(to_public) + len(available) == units
        session.rollback()


@pytest.mark.parametrize("first", ["free-first", "confirm-first"])
@pytest.mark.parametrize("marked_sold_out", [True, False], ids=["marked-sold-out", "first-unit-freed"])
def test_a_waiter_confirming_while_a_unit_is_freed_gets_it(app, session, clock, first, marked_sold_out):
    """The two transactions overlap: whichever ends second must see what the first did and make the offer, whether
    the release is known to have sold out already or this is the first unit to come back."""
    release_id, hold_ids = sold_out_release(session, clock, 3)
    if marked_sold_out:
        release_committed(session, session.get(Hold, hold_ids[2]), clock())  # no waiter yet: No. 3 goes public
        claim_committed(session, release_id, 1, "public@example.com", clock())
    (ann,) = join(session, release_id, ["ann@example.com"], clock())
    now = clock()
    steps = [freeing(hold_ids[0], now), confirming(ann, now)]

    overlap(app, *(steps if first == "free-first" else reversed(steps)))

    (offer,) = check_waitlist(session, release_id, now)
    assert (offer.entry_id, offer.number, offer.status) == (ann, 1, "live")
    assert offer_mails(session) == Counter(["ann@example.com"])


def test_a_waiter_confirming_while_a_public_claim_of_the_last_free_unit_rolls_back_gets_it(app, session, clock):
    release_id, hold_ids = sold_out_release(session, clock, 2)
    release_committed(session, session.get(Hold, hold_ids[0]), clock())  # no waiter yet: No. 1 goes public
    (ann,) = join(session, release_id, ["ann@example.com"], clock())
    now = clock()

    def public_claim(claiming) -> None:
        """A public buyer's claim takes No. 1; their request then fails, and the claim rolls back."""
        assert inventory.claim(claiming, release_id, 1, Buyer("bob@example.com"), now, PAYMENT_TIME).id

    overlap(app, public_claim, confirming(ann, now), first_fails=True)

    (offer,) = check_waitlist(session, release_id, now)
    assert (offer.entry_id, offer.number) == (ann, 1), "No. 1 stayed on public sale with Ann waiting"


# --- 3. Sweepers in several processes pass lapsed offers on ----------------------------------------------------


def sweep_in_process(database_url: str, settings: dict, moments: list, threads: int, start_together, results) -> None:
    """Entry point of a spawned process: its own app and engine, on a clock that reads each moment in turn; at
    each moment, wait for every other process, then sweep with `threads` threads at once.

    Sends back, per moment, each thread's (holds released, traceback of any error).
    """
    from config import TestConfig
    from storefront import create_app

    current = {"now": moments[0]}
    app = create_app(
        TestConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        CLOCK=lambda: current["now"],  # what the offer mailer, run after each commit, starts offers' time at
        DATABASE_POOL_SIZE=threads + 1,
        DATABASE_MAX_OVERFLOW=0,
        **settings,
    )
    try:
        with app.app_context():
            db.session.execute(select(1))  # open the pool before the race
            db.session.rollback()
        for now in moments:
            current["now"] = now
            start_together.wait(timeout=120)
            outcomes = run_concurrently(app, [sweep(now)] * threads)
            results.put([(o.value.released if o.error is None else 0, o.trace) for o in outcomes])
    except BaseException:
        results.put([(0, traceback.format_exc())])
    finally:
        with app.app_context():
            db.engine.dispose()


def test_sweepers_in_several_processes_pass_each_lapsed_offer_to_one_next_waiter(app, session, clock):
    units, waiters, processes, threads_each = 16, 40, 3, 4
    release_id, hold_ids = sold_out_release(session, clock, units)
    line = line_up(session, clock, release_id, waiters)
    for hold_id in hold_ids:
        release_committed(session, session.get(Hold, hold_id), clock())
    first = offers_made(session, release_id)
    assert [offer.entry_id for offer in first] == line[:units]
    # Each round, every live offer has just run out; the next round's offers run from the round's sweep.
    moments = [clock() + OFFER_FOR, clock() + 2 * OFFER_FOR]
    settings = {key: app.config[key] for key in ("MAIL_DIR", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "SECRET_KEY")}

    spawn = multiprocessing.get_context("spawn")
    start_together = spawn.Barrier(processes + 1)  # this process joins each round once it has checked the last
    results = spawn.Queue()
    workers = [
        spawn.Process(
            target=sweep_in_process,
            args=(app.config["SQLALCHEMY_DATABASE_URI"], settings, moments, threads_each, start_together, results),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        served = units
        for round_, now in enumerate(moments):
            start_together.wait(timeout=120)
            reports = [answer for _ in workers for answer in results.get(timeout=120)]
            assert [trace for _, trace in reports if trace] == []
            clock.set(now)

            lapsed = [offer for offer in offers_made(session, release_id) if offer.status == "lapsed"]
            newly_served = min(units, waiters - served)
            assert sum(released for released, _ in reports) == units, "each lapsed offer's hold ended once"
            assert len(lapsed) == units * (round_ + 1)
            offers = check_waitlist(session, release_id, now)
            live = [offer for offer in offers if offer.status == "live"]
            # Each lapsed number passed to exactly one next waiter, in line order; nobody got two.
            assert [offer.entry_id for offer in live] == line[served : served + newly_served]
            assert {(offer.notified_at, offer.expires_at) for offer in live} == {(now, now + OFFER_FOR)}
            served += newly_served
            assert status_counts(session, release_id) == Counter(
                {"held": newly_served, "available": units - newly_served}
            )
        assert offer_mails(session) == Counter(email_of(session, line))
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    assert [worker.exitcode for worker in workers] == [0] * processes
    # The line is empty: the last numbers were back on public sale.
    hold = claim_committed(session, release_id, 1, "public@example.com", clock())
    assert hold.status == "active"
    assert_audit_clean(session, clock())


# --- 4. Two units freed at the same moment -----------------------------------------------------------------------


@pytest.mark.parametrize("waiters", [0, 1, 2])
def test_two_units_freed_at_the_same_moment(app, session, clock, waiters):
    for round_ in range(8):
        release_id, hold_ids = sold_out_release(session, clock, 2)
        line = line_up(session, clock, release_id, waiters, name=f"round{round_}-") if waiters else []
        now = clock()

        outcomes = run_concurrently(app, free_all(hold_ids, now))

        assert unexpected(outcomes) == []
        offers = check_waitlist(session, release_id, now)
        assert [offer.entry_id for offer in offers] == line
        assert status_counts(session, release_id) == Counter({"held": waiters, "available": 2 - waiters})
        public = [
            claim_committed(session, release_id, 1, f"public{round_}-{n}@example.com", now) for n in range(2 - waiters)
        ]
        assert sorted(number for hold in public for number in hold_numbers(session, hold)) == sorted(
            {1, 2} - {offer.number for offer in offers}
        ), "the number nobody was waiting for is back on public sale"
        session.rollback()
    assert_audit_clean(session, clock())


def hold_numbers(session, hold: Hold) -> list[int]:
    return list(session.scalars(select(Unit.number).where(Unit.hold_id == hold.id)))


# --- 5. Offers claimed as the sweeper lapses them --------------------------------------------------------------


@pytest.mark.parametrize("claimed_early_by", [timedelta(seconds=1), timedelta(0)], ids=["in-time", "at-the-edge"])
def test_offers_claimed_as_the_sweeper_lapses_them_end_one_way_each(app, session, clock, claimed_early_by):
    units, waiters, sweepers = 12, 24, 4
    release_id, hold_ids = sold_out_release(session, clock, units)
    line = line_up(session, clock, release_id, waiters)
    for hold_id in hold_ids:
        release_committed(session, session.get(Hold, hold_id), clock())
    first = offers_made(session, release_id)
    runs_out = clock() + OFFER_FOR
    assert {offer.expires_at for offer in first} == {runs_out}
    claim_at = runs_out - claimed_early_by

    tasks = [claim_offer(offer.id, claim_at) for offer in first] + [sweep(runs_out)] * sweepers
    outcomes = run_concurrently(app, tasks)
    claims, sweeps = outcomes[:units], outcomes[units:]

    assert unexpected(claims, waitlist.OfferUnavailable) == []
    assert unexpected(sweeps) == []
    clock.set(runs_out)
    offers = check_waitlist(session, release_id, runs_out)
    by_id = {offer.id: offer for offer in offers}
    claimed = [offer.id for offer, outcome in zip(first, claims, strict=True) if outcome.error is None]
    refused = [offer.id for offer, outcome in zip(first, claims, strict=True) if outcome.error is not None]
    if claimed_early_by == timedelta(0):
        assert claimed == [], "an offer was claimed at the moment it ran out"
    # Each offer ended exactly one way: claimed (its waiter is paying) or lapsed (its number passed on), as its
    # claim was told.
    assert {offer_id: by_id[offer_id].status for offer_id in claimed} == dict.fromkeys(claimed, "claimed")
    assert {offer_id: by_id[offer_id].status for offer_id in refused} == dict.fromkeys(refused, "lapsed")
    for offer_id, outcome in zip([o.id for o in first], claims, strict=True):
        if outcome.error is None:
            hold = session.get(Hold, outcome.value)
            assert (hold.id, hold.status, hold.expires_at) == (
                by_id[offer_id].hold_id,
                "active",
                claim_at + PAYMENT_TIME,
            )
    assert sum(outcome.value.released for outcome in sweeps) == len(refused)
    # Each lapsed number went to the next waiter in line; no number was lost.
    first_ids = {offer.id for offer in first}
    passed_on = [offer for offer in offers if offer.id not in first_ids]
    assert [offer.entry_id for offer in passed_on] == line[units : units + len(refused)]
    assert sorted(offer.number for offer in passed_on) == sorted(by_id[offer_id].number for offer_id in refused)
    assert status_counts(session, release_id) == Counter({"held": units})
    assert_audit_clean(session, runs_out)


@pytest.mark.parametrize("first", ["claim-first", "sweeper-first"])
def test_an_offer_claimed_as_a_sweeper_takes_it_up_ends_one_way(app, session, clock, first):
    """A sweep reads the offer's hold as run out, then leases it, then ends it, each in a step of its own; the
    waiter's claim, one second before the offer ran out, lands between the read and the lease, or between the lease
    and the ending. The offer then ends one way: claimed (the sweeper leaves it) or lapsed (the claim is refused)."""
    release_id, hold_ids = sold_out_release(session, clock, 1)
    ann, bob = line_up(session, clock, release_id, 2)
    release_committed(session, session.get(Hold, hold_ids[0]), clock())
    (offer,) = offers_made(session, release_id)
    offer_id, hold_id, runs_out = offer.id, offer.hold_id, offer.expires_at

    if first == "claim-first":
        claimed = claim_offer(offer_id, runs_out - timedelta(seconds=1))()
        assert claimed == hold_id
        assert not flows.lease_hold(session, hold_id, runs_out), "the sweeper took up a hold its waiter had claimed"
    else:
        assert flows.lease_hold(session, hold_id, runs_out)
        with pytest.raises(waitlist.OfferUnavailable, match="ran out of time"):
            claim_offer(offer_id, runs_out - timedelta(seconds=1))()
        assert flows.end_hold(session, gateway(), hold_id, "expired", runs_out) == flows.Ending.RELEASED

    clock.set(runs_out)
    offers = check_waitlist(session, release_id, runs_out)
    if first == "claim-first":
        assert [(o.entry_id, o.status) for o in offers] == [(ann, "claimed")]
        assert session.get(Hold, hold_id).expires_at == runs_out - timedelta(seconds=1) + PAYMENT_TIME
    else:
        assert [(o.entry_id, o.status) for o in offers] == [(ann, "lapsed"), (bob, "live")]


# --- 6. An address leaving as its offer is made -----------------------------------------------------------------


def test_an_address_leaving_as_a_freed_unit_is_offered_to_it_is_passed_over(app, session, clock):
    release_id, hold_ids = sold_out_release(session, clock, 2)
    ann, bob = line_up(session, clock, release_id, 2)
    now = clock()

    # The first in line clicks "unsubscribe" just as No. 1 comes free and the engine picks them for it.
    live_offer_holds = overlap(
        app, lambda leaving: waitlist.unsubscribe_address(leaving, ann, now), freeing(hold_ids[0], now)
    )
    for hold_id in live_offer_holds:  # what the unsubscribe page does next
        flows.end_hold(session, gateway(), hold_id, "withdrawn", now)

    offers = check_waitlist(session, release_id, now)
    assert [(offer.entry_id, offer.number, offer.status) for offer in offers if offer.status == "live"] == [
        (bob, 1, "live")
    ]
    assert offer_mails(session) == Counter(email_of(session, [bob])), "an address that left was mailed an offer"
