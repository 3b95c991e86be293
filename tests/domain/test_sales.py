"""The dashboard's aggregates: revenue per release and units sold over time, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storefront.domain.sales import (
    MAX_BUCKETS,
    bucket_seconds_for,
    revenue_by_release,
    sales_series,
    shows_sales_chart,
    units_sold_query,
)
from storefront.domain.stock import describe_releases
from storefront.models import OrderStatus
from tests.factories import make_release
from tests.sales_data import make_big_release, sell_units, withhold_numbers

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return ON_SALE + timedelta(minutes=minutes)


def series_of(session, release, now):
    views = describe_releases(session, [release], now)
    return sales_series(session, views, now).get(release.id)


class StatementCounter:
    """Count the SQL statements an engine runs while the block runs."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self.record)

    def record(self, _conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        self.statements.append(statement)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(0), 60),
        (timedelta(minutes=45), 60),
        (timedelta(hours=2), 60),
        (timedelta(hours=2, minutes=1), 120),
        (timedelta(hours=10), 300),
        (timedelta(days=7), 7200),
        (timedelta(days=400), 4 * 86400),
    ],
)
def test_buckets_are_a_minute_in_the_first_hours_and_never_more_than_the_limit(span, expected):
    assert bucket_seconds_for(span) == expected
    assert span.total_seconds() / expected <= MAX_BUCKETS


def test_units_sold_are_bucketed_and_cumulative(session):
    release = make_release(session, units=20, on_sale_at=ON_SALE)
    sell_units(session, release, [at(0.5)])
    sell_units(session, release, [at(1.2), at(1.9)])
    sell_units(session, release, [at(5)], quantity=3)
    session.commit()

    series = series_of(session, release, at(10))

    assert series.window.bucket_seconds == 60
    assert series.window.end == at(10)
    assert series.per_bucket[:6] == (1, 2, 0, 0, 0, 3)
    assert sum(series.per_bucket) == 6
    assert [point.sold for point in series.points][:7] == [0, 1, 3, 3, 3, 3, 6]
    assert series.sold == 6
    assert len(series.points) == 11  # the start, then the end of each of ten minutes
    assert series.points[0].at == ON_SALE
    assert series.points[-1].at == at(10)
    assert series.sellable == 20
    assert series.busiest_bucket == (at(5), 3)


def test_an_empty_release_has_a_flat_series(session):
    release = make_release(session, units=5, on_sale_at=ON_SALE)
    session.commit()

    series = series_of(session, release, at(30))

    assert series.sold == 0
    assert {point.sold for point in series.points} == {0}
    assert len(series.points) == 31
    assert series.busiest_bucket is None


def test_a_release_that_just_opened_has_one_bucket(session):
    release = make_release(session, units=5, on_sale_at=ON_SALE)
    session.commit()

    series = series_of(session, release, ON_SALE)

    assert series.window.bucket_count == 1
    assert [point.sold for point in series.points] == [0, 0]


def test_units_sold_before_and_after_the_window_are_kept_apart(session):
    release = make_release(session, units=10, on_sale_at=ON_SALE, off_sale_at=at(60))
    sell_units(session, release, [at(-5)])  # a data oddity: sold before it went on sale
    sell_units(session, release, [at(10)], quantity=2)
    sell_units(session, release, [at(75)])  # a late payment after the close
    session.commit()

    series = series_of(session, release, at(120))

    assert series.window.end == at(60)  # closed: the chart stops at off_sale_at
    assert series.sold_before == 1
    assert series.points[0].sold == 1
    assert series.sold == 3
    assert series.sold_after == 1


def test_the_chart_of_a_sold_out_release_ends_at_its_last_sale(session):
    release = make_release(session, units=3, on_sale_at=ON_SALE)
    sell_units(session, release, [at(0.5), at(1.5), at(2.5)])
    session.commit()

    series = series_of(session, release, at(300))

    assert series.window.end == at(2.5)
    assert series.window.bucket_seconds == 60
    assert [point.sold for point in series.points] == [0, 1, 2, 3]


def test_the_chart_height_leaves_out_withheld_units(session):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    withhold_numbers(session, release, [1, 2])
    session.commit()

    assert series_of(session, release, at(5)).sellable == 8


def test_several_releases_are_bucketed_in_one_query_each_at_its_own_scale(app, session):
    short = make_release(session, units=10, on_sale_at=ON_SALE)
    long = make_release(session, units=10, on_sale_at=ON_SALE - timedelta(days=3))
    sell_units(session, short, [at(3)])
    sell_units(session, long, [ON_SALE - timedelta(days=2, hours=12), at(3)])
    session.commit()
    now = at(30)
    views = describe_releases(session, [short, long], now)

    with StatementCounter(session.get_bind()) as counter:
        series = sales_series(session, views, now)

    assert len(counter.statements) == 1
    assert series[short.id].window.bucket_seconds == 60
    assert series[short.id].per_bucket[3] == 1
    assert series[long.id].window.bucket_seconds == 3600
    assert series[long.id].per_bucket[12] == 1  # 12 hours in
    assert series[long.id].sold == 2


def test_which_releases_get_a_chart(session):
    upcoming = make_release(session, units=2, on_sale_at=at(60))
    on_sale = make_release(session, units=2, on_sale_at=ON_SALE - timedelta(days=30))
    recent_closed = make_release(session, units=2, on_sale_at=ON_SALE - timedelta(days=2), off_sale_at=at(-60))
    old_sold_out = make_release(session, units=1, on_sale_at=ON_SALE - timedelta(days=8))
    sell_units(session, old_sold_out, [ON_SALE - timedelta(days=8)])
    session.commit()
    now = ON_SALE
    views = {
        view.release.id: view
        for view in describe_releases(session, [upcoming, on_sale, recent_closed, old_sold_out], now)
    }

    assert not shows_sales_chart(views[upcoming.id], now)
    assert shows_sales_chart(views[on_sale.id], now)  # selling for a month: still charted while it sells
    assert shows_sales_chart(views[recent_closed.id], now)
    assert not shows_sales_chart(views[old_sold_out.id], now)


def test_revenue_counts_paid_orders_and_keeps_refunds_apart(session):
    release = make_release(session, units=10, on_sale_at=ON_SALE, price=8900)
    other = make_release(session, units=10, on_sale_at=ON_SALE, price=5000)
    quiet = make_release(session, units=10, on_sale_at=ON_SALE)
    sell_units(session, release, [at(1)], quantity=2)
    sell_units(session, release, [at(2)])
    sell_units(session, release, [at(3)], status=OrderStatus.REFUNDED)
    sell_units(session, release, [at(4)], quantity=2, status=OrderStatus.REFUNDING)
    sell_units(session, other, [at(1)])
    session.commit()

    revenue = revenue_by_release(session, [release.id, other.id, quiet.id])

    assert revenue[release.id].paid == {"EUR": 3 * 8900}
    assert revenue[release.id].paid_orders == 2
    assert revenue[release.id].refunded == {"EUR": 3 * 8900}
    assert revenue[release.id].refunded_orders == 2
    assert revenue[other.id].paid == {"EUR": 5000}
    assert revenue[quiet.id].paid == {}
    assert revenue[quiet.id].paid_orders == 0


def test_a_hundred_thousand_units_are_bucketed_in_few_rows(session):
    moments = [ON_SALE + timedelta(seconds=index % (4 * 3600)) for index in range(30_000)]
    release = make_big_release(session, units=100_000, sold_moments=moments, on_sale_at=ON_SALE)
    session.commit()
    now = at(5 * 60)
    views = describe_releases(session, [release], now)

    with StatementCounter(session.get_bind()) as counter:
        series = sales_series(session, views, now)[release.id]

    assert len(counter.statements) == 1
    assert series.sold == 30_000
    assert series.window.bucket_seconds == 300  # five hours in five-minute buckets
    assert sum(series.per_bucket[:48]) == 30_000  # all sold in the first four hours
    assert series.sellable == 100_000


def test_the_bucket_query_reads_the_sold_at_index(session, backend):
    moments = [ON_SALE + timedelta(seconds=index % (4 * 3600)) for index in range(30_000)]
    release = make_big_release(session, units=100_000, sold_moments=moments, on_sale_at=ON_SALE)
    # Other releases' units too, as a shop that has sold for a while has.
    make_big_release(session, units=20_000, sold_moments=moments[:5_000], on_sale_at=ON_SALE - timedelta(days=40))
    session.commit()
    session.execute(sa.text("ANALYZE unit" if backend == "postgresql" else "ANALYZE"))
    now = at(5 * 60)
    window = sales_series(session, describe_releases(session, [release], now), now)[release.id].window
    query = units_sold_query([window], backend)
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN" if backend == "postgresql" else "EXPLAIN QUERY PLAN"

    plan = "\n".join(str(row[-1]) for row in session.execute(sa.text(f"{explain} {compiled}")))

    # PostgreSQL: a bitmap (or, once vacuumed, index-only) scan of the partial index; SQLite: a covering index search.
    assert "ix_unit_release_sold_at" in plan, plan
