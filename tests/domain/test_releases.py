"""Opening, editing, withholding and pausing releases (storefront.domain.releases), on SQLite and PostgreSQL.

The last tests race a producer's change against buyers' claims on PostgreSQL, each in a session of its own, and
end with the invariant auditor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from storefront.domain.activity import Actor
from storefront.domain.fulfilment import record_checkout_request
from storefront.domain.inventory import Buyer, ReleasePaused, claim, convert, held_numbers
from storefront.domain.releases import (
    MAX_UNITS,
    InvalidReleaseTerms,
    NumbersUnavailable,
    ReleaseNotFound,
    ReleaseTerms,
    describe_numbers,
    has_commitments,
    kept_back_numbers,
    open_release,
    pause_release,
    resume_release,
    return_withheld_numbers,
    update_release,
    withhold_numbers,
)
from storefront.domain.stock import count_stock
from storefront.extensions import db
from storefront.models import ActivityEntry, Hold, Order, Release, ReleaseStatus, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.helpers import (
    HOLD_FOR,
    assert_audit_clean,
    claim_committed,
    convert_committed,
    new_order_for,
    release_committed,
)

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
ON_SALE = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)
ANN = Actor(id=None, email="ann@distillery.ie")


def terms(**changes) -> ReleaseTerms:
    base = ReleaseTerms(
        title="Carlow Rye, Batch 8, 70 cl",
        slug="rye-batch-8",
        price_amount=8900,
        currency="EUR",
        total_units=30,
        on_sale_at=ON_SALE,
        off_sale_at=None,
        per_customer_limit=2,
        allow_number_choice=True,
    )
    return replace(base, **changes)


@pytest.fixture
def batch_id(session) -> int:
    with write_transaction(session):
        return make_batch(session).id


def open_committed(session, batch_id: int, release_terms: ReleaseTerms | None = None, **options) -> int:
    with write_transaction(session):
        return open_release(session, batch_id, release_terms or terms(), NOW, ANN, **options).id


def statuses(session, release_id: int) -> dict[int, str]:
    return dict(session.execute(select(Unit.number, Unit.status).where(Unit.release_id == release_id)).all())


def activity(session) -> list[tuple[str, str]]:
    return [
        (entry.action, entry.summary)
        for entry in session.scalars(select(ActivityEntry).order_by(ActivityEntry.id))
        if entry.actor_email == ANN.email
    ]


def counts(session) -> tuple[int, int, int]:
    return tuple(session.scalar(select(func.count()).select_from(model)) for model in (Release, Unit, ActivityEntry))


# --- Opening ----------------------------------------------------------------------------------------------------


def test_opening_a_release_makes_its_numbered_units_and_logs_it(session, batch_id):
    release_id = open_committed(session, batch_id, withheld=[1, 5, 6, 7])

    release = session.get(Release, release_id)
    assert (release.title, release.slug, release.price_amount, release.total_units) == (
        "Carlow Rye, Batch 8, 70 cl",
        "rye-batch-8",
        8900,
        30,
    )
    units = statuses(session, release_id)
    assert sorted(units) == list(range(1, 31))
    assert {number for number, status in units.items() if status == "withheld"} == {1, 5, 6, 7}
    assert {status for number, status in units.items() if number not in {1, 5, 6, 7}} == {"available"}
    assert activity(session) == [
        (
            "release.opened",
            "Opened “Carlow Rye, Batch 8, 70 cl”: 30 numbered at €89.00, free shipping, No. 1, No. 5–7 kept back",
        )
    ]
    stock = count_stock(session, [release], NOW)[release_id]
    assert (stock.total, stock.available, stock.withheld, stock.sold) == (30, 26, 4, 0)


@pytest.mark.parametrize(
    ("changes", "withheld", "term"),
    [
        ({"total_units": 0}, (), "total_units"),
        ({"total_units": MAX_UNITS + 1}, (), "total_units"),
        ({"price_amount": -1}, (), "price_amount"),
        ({"price_amount": 89.0}, (), "price_amount"),
        ({"currency": "euro"}, (), "currency"),
        ({"title": "  "}, (), "title"),
        ({"slug": "Rye Batch"}, (), "slug"),
        ({"per_customer_limit": 0}, (), "per_customer_limit"),
        ({"on_sale_at": NOW - timedelta(minutes=1)}, (), "on_sale_at"),
        ({"on_sale_at": datetime(2026, 7, 2, 10, 0)}, (), "on_sale_at"),
        ({"off_sale_at": ON_SALE}, (), "off_sale_at"),
        ({}, (0,), "withheld"),
        ({}, ("1",), "withheld"),
        ({}, (31,), "withheld"),
        ({"total_units": 2}, (1, 2), "withheld"),
    ],
)
def test_a_bad_term_creates_nothing(session, batch_id, changes, withheld, term):
    before = counts(session)
    with pytest.raises(InvalidReleaseTerms) as refusal:
        open_committed(session, batch_id, terms(**changes), withheld=withheld)
    assert list(refusal.value.problems) == [term]
    assert refusal.value.message
    assert counts(session) == before


def test_every_bad_term_is_named_at_once(session, batch_id):
    with pytest.raises(InvalidReleaseTerms) as refusal:
        open_committed(session, batch_id + 1000, terms(title="", price_amount=-5, total_units=0))
    assert set(refusal.value.problems) == {"title", "price_amount", "total_units", "batch_id"}


def test_a_taken_slug_is_refused_by_name(session, batch_id):
    open_committed(session, batch_id)
    with pytest.raises(InvalidReleaseTerms) as refusal:
        open_committed(session, batch_id, terms(title="Another"))
    assert refusal.value.problems == {
        "slug": "The address “rye-batch-8” is already used by another release; choose another."
    }


def test_the_release_and_its_units_are_one_transaction(session, batch_id):
    before = counts(session)
    with pytest.raises(RuntimeError), write_transaction(session):
        open_release(session, batch_id, terms(), NOW, ANN)
        raise RuntimeError("the request failed after the release was opened")
    assert counts(session) == before


def test_on_sale_may_be_this_minute_but_not_earlier_unless_a_trusted_caller_says_so(session, batch_id, clock):
    now = datetime(2026, 7, 1, 9, 0, 40, tzinfo=UTC)
    with write_transaction(session):
        open_release(session, batch_id, terms(slug="now", on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC)), now, ANN)
    with pytest.raises(InvalidReleaseTerms), write_transaction(session):
        open_release(session, batch_id, terms(slug="past", on_sale_at=now - timedelta(minutes=1)), now, ANN)
    with write_transaction(session):
        release = open_release(
            session, batch_id, terms(slug="past", on_sale_at=now - timedelta(days=2)), now, ANN, allow_past_on_sale=True
        )
    assert release.on_sale_at == now - timedelta(days=2)


def test_a_hundred_thousand_units_open_in_one_go(session, batch_id):
    started = time.perf_counter()
    release_id = open_committed(session, batch_id, terms(total_units=MAX_UNITS), withheld=[1, MAX_UNITS])
    elapsed = time.perf_counter() - started
    assert session.scalar(select(func.count()).where(Unit.release_id == release_id)) == MAX_UNITS
    assert session.scalar(select(func.max(Unit.number)).where(Unit.release_id == release_id)) == MAX_UNITS
    assert kept_back_numbers(session, release_id) == [1, MAX_UNITS]
    assert elapsed < 15, f"opening {MAX_UNITS} units took {elapsed:.1f} s"


def test_the_factory_opens_releases_through_the_domain(session):
    release = make_release(session, units=5, withheld=[2])
    assert statuses(session, release.id) == {
        1: "available",
        2: "withheld",
        3: "available",
        4: "available",
        5: "available",
    }
    assert (
        session.scalar(select(ActivityEntry.action).where(ActivityEntry.subject_id == release.id)) == "release.opened"
    )


# --- Numbers kept back ------------------------------------------------------------------------------------------


def test_numbers_are_kept_back_and_returned(session, batch_id):
    release_id = open_committed(session, batch_id)

    with write_transaction(session):
        assert withhold_numbers(session, release_id, [1, 5, 6, 7], NOW, ANN) == [1, 5, 6, 7]
    with write_transaction(session):
        assert withhold_numbers(session, release_id, [1], NOW, ANN) == []  # already kept back: nothing to do
    assert kept_back_numbers(session, release_id) == [1, 5, 6, 7]

    with write_transaction(session):
        assert return_withheld_numbers(session, release_id, [5, 6], NOW, ANN) == [5, 6]
    assert kept_back_numbers(session, release_id) == [1, 7]
    assert [action for action, _ in activity(session)] == ["release.opened", "release.withheld", "release.returned"]
    assert activity(session)[1][1] == "Kept No. 1, No. 5–7 of “Carlow Rye, Batch 8, 70 cl” back from sale"


def test_a_held_or_sold_number_cannot_be_kept_back_and_nothing_changes(session, batch_id, clock):
    release_id = open_committed(
        session, batch_id, terms(on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC), total_units=10)
    )
    held = claim_committed(session, release_id, 1, "buyer@example.com", clock(), number=3)
    sold = claim_committed(session, release_id, 1, "other@example.com", clock(), number=4)
    convert_committed(session, sold, new_order_for(sold), clock())

    with pytest.raises(NumbersUnavailable) as refusal, write_transaction(session):
        withhold_numbers(session, release_id, [2, 3, 4], clock(), ANN)
    assert refusal.value.numbers == [3, 4]
    assert refusal.value.message == (
        "Only numbers for sale can be kept back: No. 3 is held by a buyer; No. 4 is sold. Nothing was changed."
    )
    assert kept_back_numbers(session, release_id) == []
    assert held.status == "active"
    assert_audit_clean(session, clock())


@pytest.mark.parametrize("numbers", [[], [0], [11]])
def test_numbers_outside_the_run_are_refused(session, batch_id, numbers):
    release_id = open_committed(session, batch_id, terms(total_units=10))
    with pytest.raises(NumbersUnavailable), write_transaction(session):
        withhold_numbers(session, release_id, numbers, NOW, ANN)


def test_kept_back_numbers_are_never_claimed_and_count_as_neither_available_nor_sold(session, batch_id, clock):
    release_id = open_committed(
        session, batch_id, terms(on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC), total_units=3), withheld=[1]
    )
    hold = claim_committed(session, release_id, 2, "buyer@example.com", clock())
    assert held_numbers(session, hold) == [2, 3]
    stock = count_stock(session, [session.get(Release, release_id)], clock())[release_id]
    assert (stock.available, stock.held, stock.sold, stock.withheld) == (0, 2, 0, 1)


def test_describing_numbers_folds_runs_into_ranges():
    assert describe_numbers([7, 1, 5, 6]) == "No. 1, No. 5–7"
    assert describe_numbers([3]) == "No. 3"


# --- Pausing ----------------------------------------------------------------------------------------------------


def test_a_paused_release_refuses_claims_until_it_is_resumed(session, batch_id, clock):
    release_id = open_committed(session, batch_id, terms(on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC)))
    with write_transaction(session):
        pause_release(session, release_id, clock(), ANN)
    with write_transaction(session):
        pause_release(session, release_id, clock(), ANN)  # pausing twice changes nothing

    release = session.get(Release, release_id)
    assert release.paused_at == clock()
    assert release.status_at(clock(), available=30) is ReleaseStatus.PAUSED
    with pytest.raises(ReleasePaused):
        claim_committed(session, release_id, 1, "buyer@example.com", clock())
    assert session.scalar(select(func.count()).select_from(Hold)) == 0

    with write_transaction(session):
        resume_release(session, release_id, clock(), ANN)
    with write_transaction(session):
        resume_release(session, release_id, clock(), ANN)
    assert session.get(Release, release_id).paused_at is None
    claim_committed(session, release_id, 1, "buyer@example.com", clock())
    assert [action for action, _ in activity(session)] == ["release.opened", "release.paused", "release.resumed"]


def test_an_unknown_release_is_said_so(session):
    for action in (pause_release, resume_release):
        with pytest.raises(ReleaseNotFound), write_transaction(session):
            action(session, 999, NOW, ANN)
    with pytest.raises(ReleaseNotFound), write_transaction(session):
        update_release(session, 999, terms(), NOW, ANN)
    with pytest.raises(ReleaseNotFound), write_transaction(session):
        withhold_numbers(session, 999, [1], NOW, ANN)


# --- Editing ----------------------------------------------------------------------------------------------------


def test_everything_may_change_while_nothing_was_held_or_sold(session, batch_id):
    release_id = open_committed(session, batch_id, withheld=[1, 30])
    new_terms = terms(
        title="Carlow Rye, Batch 8, 50 cl",
        slug="rye-batch-8-50cl",
        price_amount=6500,
        currency="GBP",
        total_units=20,
        on_sale_at=ON_SALE + timedelta(days=1),
        off_sale_at=ON_SALE + timedelta(days=8),
        per_customer_limit=1,
        allow_number_choice=False,
    )
    with write_transaction(session):
        update_release(session, release_id, new_terms, NOW, ANN)

    release = session.get(Release, release_id)
    assert (release.slug, release.price_amount, release.currency, release.total_units) == (
        "rye-batch-8-50cl",
        6500,
        "GBP",
        20,
    )
    assert sorted(statuses(session, release_id)) == list(range(1, 21))
    assert kept_back_numbers(session, release_id) == [1]
    assert activity(session)[-1][0] == "release.edited"
    assert "price to £65.00" in activity(session)[-1][1]


def test_after_a_hold_the_total_may_be_raised_but_price_currency_and_lowering_are_refused(session, batch_id, clock):
    opened = terms(on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC), total_units=10)
    release_id = open_committed(session, batch_id, opened)
    hold = claim_committed(session, release_id, 1, "buyer@example.com", clock())
    release_committed(session, hold, clock())  # even a hold that ended: a buyer was shown the price

    with pytest.raises(InvalidReleaseTerms) as refusal, write_transaction(session):
        update_release(
            session, release_id, replace(opened, price_amount=9900, currency="GBP", total_units=9), clock(), ANN
        )
    assert set(refusal.value.problems) == {"price_amount", "currency", "total_units"}
    assert "cannot change now that units have already been reserved or sold" in refusal.value.problems["price_amount"]

    with write_transaction(session):
        update_release(
            session, release_id, replace(opened, title="Renamed", total_units=12, per_customer_limit=4), clock(), ANN
        )
    release = session.get(Release, release_id)
    assert (release.title, release.total_units, release.per_customer_limit, release.price_amount) == (
        "Renamed",
        12,
        4,
        8900,
    )
    assert statuses(session, release_id)[11] == "available" and statuses(session, release_id)[12] == "available"
    assert has_commitments(session, release_id)
    assert_audit_clean(session, clock())


def test_a_sale_locks_the_price(session, clock):
    release = make_release(session, units=5, on_sale_at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    release_id = release.id
    session.commit()
    hold = claim_committed(session, release_id, 1, "buyer@example.com", clock())
    convert_committed(session, hold, new_order_for(hold), clock())
    current = terms(
        title=release.title,
        slug=release.slug,
        total_units=5,
        per_customer_limit=3,
        on_sale_at=release.on_sale_at,
    )
    with pytest.raises(InvalidReleaseTerms) as refusal, write_transaction(session):
        update_release(session, release_id, replace(current, price_amount=100), clock(), ANN)
    assert list(refusal.value.problems) == ["price_amount"]


def test_an_unchanged_on_sale_time_in_the_past_is_kept_but_a_new_one_must_be_ahead(session, clock):
    release = make_release(session, units=5, on_sale_at=datetime(2026, 6, 30, 10, 0, tzinfo=UTC))
    current = terms(
        title=release.title, slug=release.slug, total_units=5, per_customer_limit=3, on_sale_at=release.on_sale_at
    )
    with write_transaction(session):
        update_release(session, release.id, replace(current, title="Still open"), clock(), ANN)
    with pytest.raises(InvalidReleaseTerms) as refusal, write_transaction(session):
        update_release(session, release.id, replace(current, on_sale_at=clock() - timedelta(hours=1)), clock(), ANN)
    assert list(refusal.value.problems) == ["on_sale_at"]


def test_an_edit_cannot_take_another_releases_slug(session, batch_id):
    first = open_committed(session, batch_id)
    open_committed(session, batch_id, terms(slug="taken"))
    with pytest.raises(InvalidReleaseTerms) as refusal, write_transaction(session):
        update_release(session, first, terms(slug="taken"), NOW, ANN)
    assert list(refusal.value.problems) == ["slug"]


def test_saving_unchanged_terms_logs_nothing(session, batch_id):
    release_id = open_committed(session, batch_id)
    with write_transaction(session):
        update_release(session, release_id, terms(), NOW, ANN)
    assert [action for action, _ in activity(session)] == ["release.opened"]


# --- Against concurrent claims (PostgreSQL) ---------------------------------------------------------------------


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
            assert time.monotonic() < deadline, "the other transaction neither finished nor waited on this one"
            thread.join(timeout=0.01)


def in_thread(app, work) -> tuple[threading.Thread, dict]:
    """Run `work(session)` in a thread with a session of its own; the dict gets its "value" or "error"."""
    outcome: dict = {}

    def run() -> None:
        with app.app_context():
            own = Session(db.engine)
            try:
                outcome["value"] = work(own)
            except Exception as error:  # the test decides what was expected
                outcome["error"] = error
            finally:
                own.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def open_on_sale(session, **changes) -> tuple[int, ReleaseTerms]:
    opened = terms(on_sale_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC), **changes)
    with write_transaction(session):
        batch = make_batch(session)
        release_id = open_release(session, batch.id, opened, NOW, ANN).id
    return release_id, opened


def pay(session, hold_id: int, now: datetime) -> Order:
    """What checkout and its webhook do: record the price asked for on the hold, then sell at exactly that."""
    session.commit()
    with write_transaction(session):
        hold = session.get(Hold, hold_id)
        release = session.get(Release, hold.release_id)
        record_checkout_request(session, hold, held_numbers(session, hold), release.price_amount, release.currency)
        order = Order(
            release_id=hold.release_id,
            email=hold.buyer_email,
            buyer_key=hold.buyer_key,
            quantity=hold.quantity,
            unit_amount=hold.unit_amount,
            amount_total=hold.expected_amount,
            currency=hold.payment_currency,
            hold_id=hold.id,
        )
        convert(session, hold, order, now)
        return order


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_price_change_waits_for_a_claim_under_way_and_then_refuses(app, session, clock):
    release_id, opened = open_on_sale(session)
    claiming = Session(db.engine)
    try:
        with write_transaction(claiming):
            claim(claiming, release_id, 1, Buyer("buyer@example.com"), clock(), HOLD_FOR)
            editor, outcome = in_thread(
                app,
                lambda own: commit_update(own, release_id, replace(opened, price_amount=9900), clock()),
            )
            wait_until_blocked_by(claiming, editor)
            assert editor.is_alive(), f"the price change did not wait for the claim: {outcome}"
        editor.join(timeout=30)
    finally:
        claiming.close()
    assert isinstance(outcome.get("error"), InvalidReleaseTerms), outcome
    assert session.get(Release, release_id).price_amount == 8900


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_waits_for_a_price_change_under_way_and_pays_the_new_price(app, session, clock):
    release_id, opened = open_on_sale(session)
    editing = Session(db.engine)
    try:
        with write_transaction(editing):
            update_release(editing, release_id, replace(opened, price_amount=9900), clock(), ANN)
            buyer, outcome = in_thread(
                app, lambda own: claim_and_commit(own, release_id, "buyer@example.com", clock()).id
            )
            wait_until_blocked_by(editing, buyer)
            assert buyer.is_alive(), f"the claim did not wait for the price change: {outcome}"
        buyer.join(timeout=30)
    finally:
        editing.close()
    order = pay(session, outcome["value"], clock())
    assert (order.unit_amount, order.amount_total) == (9900, 9900)
    assert_audit_clean(session, clock())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_pause_waits_for_a_claim_under_way_and_refuses_the_claims_after_it(app, session, clock):
    release_id, _opened = open_on_sale(session)
    claiming = Session(db.engine)
    try:
        with write_transaction(claiming):
            claim(claiming, release_id, 1, Buyer("first@example.com"), clock(), HOLD_FOR)
            pauser, paused = in_thread(app, lambda own: commit_pause(own, release_id, clock()))
            wait_until_blocked_by(claiming, pauser)
            assert pauser.is_alive(), f"the pause did not wait for the claim: {paused}"
        pauser.join(timeout=30)
    finally:
        claiming.close()
    assert "error" not in paused, paused
    with pytest.raises(ReleasePaused):
        claim_committed(session, release_id, 1, "second@example.com", clock())
    assert session.scalar(select(func.count()).select_from(Hold).where(Hold.release_id == release_id)) == 1


def commit_update(session: Session, release_id: int, new_terms: ReleaseTerms, now: datetime) -> Release:
    with write_transaction(session):
        return update_release(session, release_id, new_terms, now, ANN)


def commit_pause(session: Session, release_id: int, now: datetime) -> None:
    with write_transaction(session):
        pause_release(session, release_id, now, ANN)


def claim_and_commit(session: Session, release_id: int, email: str, now: datetime, seen: list | None = None) -> Hold:
    """Claim one unit and, still inside the claim's transaction, note the price in force as it commits."""
    with write_transaction(session):
        hold = claim(session, release_id, 1, Buyer(email), now, HOLD_FOR)
        if seen is not None:
            seen.append((hold.id, session.scalar(select(Release.price_amount).where(Release.id == release_id))))
        return hold


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_claims_racing_a_price_change_are_always_sold_at_the_price_in_force_when_they_were_made(app, session, clock):
    """Many rounds of buyers and one price change released at the same instant: whichever wins, every hold is
    paid at the price that was in force when its claim committed, and the price never moves once a hold exists."""
    now = clock()
    for round_number in range(8):
        release_id, opened = open_on_sale(session, slug=f"race-{round_number}", per_customer_limit=1)
        session.commit()
        seen: list[tuple[int, int]] = []
        barrier = threading.Barrier(7)

        def buy(own: Session, index: int, release_id=release_id, seen=seen, barrier=barrier) -> int:
            barrier.wait(timeout=30)
            return claim_and_commit(own, release_id, f"b{index}@example.com", now, seen).id

        def change_price(own: Session, release_id=release_id, opened=opened, barrier=barrier) -> Release:
            barrier.wait(timeout=30)
            return commit_update(own, release_id, replace(opened, price_amount=12000), now)

        started = [in_thread(app, lambda own, i=i: buy(own, i)) for i in range(6)]
        started.append(in_thread(app, change_price))
        for thread, _outcome in started:
            thread.join(timeout=60)
            assert not thread.is_alive()
        *buyers, edited = [outcome for _thread, outcome in started]
        assert all("value" in outcome for outcome in buyers), buyers
        assert "value" in edited or isinstance(edited.get("error"), InvalidReleaseTerms), edited

        session.commit()
        final_price = session.scalar(select(Release.price_amount).where(Release.id == release_id))
        assert final_price == (12000 if "value" in edited else 8900)
        for hold_id, price_at_claim in seen:
            order = pay(session, hold_id, now)
            assert order.unit_amount == price_at_claim == final_price, (round_number, edited)
    assert_audit_clean(session, now)
