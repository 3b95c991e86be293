"""The free numbers of a release as ranges, and one number's status: on SQLite and PostgreSQL, big runs included."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, update

from storefront.domain.inventory import NumberTaken
from storefront.domain.numbers import FreeNumbers, NumberState, free_numbers, number_status
from storefront.models import Release, Unit
from tests.factories import make_release
from tests.integration.helpers import claim_committed, convert_committed, new_order_for

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def new_release(session, **options) -> Release:
    release = make_release(session, on_sale_at=ON_SALE, **options)
    session.commit()
    return release


def take(session, release, number, email, now, *, paying=False):
    hold = claim_committed(session, release.id, 1, email, now, number=number)
    if paying:  # a buyer on the payment page: never reclaimed by a claim passing by
        hold.payment_session_id = f"cs_test_{number}"
        session.commit()
    return hold


def test_held_sold_and_kept_numbers_are_gaps_in_the_ranges(session, clock):
    release = new_release(session, units=20, withheld=[20])
    take(session, release, 13, "ann@example.com", clock())
    sold = take(session, release, 14, "bob@example.com", clock())
    convert_committed(session, sold, new_order_for(sold), clock())
    take(session, release, 16, "cy@example.com", clock(), paying=True)
    take(session, release, 17, "di@example.com", clock())

    found = free_numbers(session, release.id, clock())

    assert found == FreeNumbers(ranges=[(1, 12), (15, 15), (18, 19)], range_count=3, free=15)
    assert found.complete and 15 in found and 16 not in found


def test_a_timed_out_hold_counts_as_free_unless_its_buyer_is_paying(session, clock):
    """As a claim sees it: it reclaims a timed-out hold on its way, but never one with an open payment page."""
    release = new_release(session, units=6)
    take(session, release, 2, "ann@example.com", clock())
    take(session, release, 4, "bob@example.com", clock(), paying=True)
    take(session, release, 5, "cy@example.com", clock())
    clock.advance(minutes=11)
    take(session, release, 5, "di@example.com", clock())  # reclaims the timed-out holds of 2 and 5, takes 5 again

    now = clock()
    assert free_numbers(session, release.id, now).ranges == [(1, 3), (6, 6)]
    assert number_status(session, release, 2, now).state is NumberState.FREE
    assert number_status(session, release, 4, now).next_free == 6

    clock.advance(minutes=11)  # di's hold of 5 times out too: free again before anyone reclaims it
    assert free_numbers(session, release.id, clock()).ranges == [(1, 3), (5, 6)]
    claim_committed(session, release.id, 1, "ed@example.com", clock(), number=5)  # the claim agrees
    assert free_numbers(session, release.id, clock()).ranges == [(1, 3), (6, 6)]


def test_one_numbers_status_and_the_number_offered_instead(session, clock):
    release = new_release(session, units=10, withheld=[1])
    for number in (5, 6, 10):
        take(session, release, number, f"buyer{number}@example.com", clock())
    now = clock()

    status = number_status(session, release, 4, now)
    assert (status.state, status.next_free) == (NumberState.FREE, None)
    assert number_status(session, release, 5, now).next_free == 7
    assert number_status(session, release, 1, now).next_free == 2  # kept back by the maker: taken
    assert number_status(session, release, 10, now).next_free == 2  # nothing above: the lowest free one
    for outside in (0, 11, -3):
        assert number_status(session, release, outside, now).state is NumberState.NOT_IN_RUN

    # The page and the claim agree: the claim of a taken number suggests the same number.
    with pytest.raises(NumberTaken) as refused:
        claim_committed(session, release.id, 1, "zed@example.com", now, number=5)
    assert refused.value.next_free == 7


def test_a_sold_out_run_has_no_ranges_and_nothing_to_offer(session, clock):
    release = new_release(session, units=2)
    take(session, release, 1, "ann@example.com", clock())
    take(session, release, 2, "bob@example.com", clock())

    assert free_numbers(session, release.id, clock()) == FreeNumbers(ranges=[], range_count=0, free=0)
    status = number_status(session, release, 1, clock())
    assert (status.state, status.next_free) == (NumberState.TAKEN, None)


def test_asking_for_the_first_ranges_still_counts_them_all(session, clock):
    release = new_release(session, units=12, withheld=[3, 6, 9])

    found = free_numbers(session, release.id, clock(), limit=2)

    assert found == FreeNumbers(ranges=[(1, 2), (4, 5)], range_count=4, free=9)
    assert not found.complete


def test_a_run_of_100000_comes_back_as_ranges_from_one_statement(session, clock, backend):
    release = new_release(session, units=100_000, limit=5)
    release_id = release.id
    session.execute(  # every 1,000th number kept back, in one statement
        update(Unit).where(Unit.release_id == release_id, Unit.number % 1000 == 0).values(status="withheld")
    )
    session.commit()
    take(session, release, 1, "ann@example.com", clock())
    take(session, release, 2_500, "bob@example.com", clock())

    statements = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731 - the statement of before_cursor_execute
    event.listen(session.get_bind(), "before_cursor_execute", listen)
    try:
        found = free_numbers(session, release_id, clock(), limit=3)
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listen)

    assert [statement for statement in statements if statement != "BEGIN"] == [statements[-1]]
    assert found.ranges == [(2, 999), (1001, 1999), (2001, 2499)]
    assert (found.range_count, found.free) == (101, 100_000 - 100 - 2)
    assert number_status(session, release, 2_500, clock()).next_free == 2_501
    assert number_status(session, release, 99_999, clock()).state is NumberState.FREE


def test_postgresql_walks_the_index_of_available_units(session, clock, backend):
    if backend != "postgresql":
        pytest.skip("the plans checked are PostgreSQL's")
    for _ in range(4):  # the unit table holds many releases; this one is a part of it
        new_release(session, units=20_000)
    release = new_release(session, units=20_000)
    take(session, release, 7, "ann@example.com", clock())
    session.commit()
    # As autovacuum leaves a live table: statistics, and the visibility map an index-only scan relies on.
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE unit")
        connection.exec_driver_sql("VACUUM ANALYZE hold")

    (ranges,) = plans_of(session, lambda: free_numbers(session, release.id, clock()))
    # A taken number: is it free (one probe), then the next free one (one step down the index, not an aggregate).
    status, suggestion = plans_of(session, lambda: number_status(session, release, 7, clock()))

    for plan in (ranges, status, suggestion):
        assert "ix_unit_available" in plan, plan
        assert "Seq Scan on unit" not in plan, plan
    assert "Sort" not in suggestion and "HashAggregate" not in suggestion, suggestion


def plans_of(session, run) -> list[str]:
    """PostgreSQL's plan for each statement `run` sends to the database."""
    captured = []
    listen = lambda connection, cursor, statement, parameters, *rest: captured.append((statement, parameters))  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listen)
    try:
        run()
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listen)
    connection = session.connection()
    return [
        "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        for statement, parameters in captured
        if "FROM unit" in statement  # not the release's own row, reloaded after the commit
    ]
