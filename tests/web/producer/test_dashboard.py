"""The producer's dashboard: every release's counts and revenue, the sales chart and its refresh endpoint."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storefront.domain.activity import SHOP, Actor, record_activity
from storefront.domain.inventory import Buyer, claim
from storefront.extensions import db
from storefront.models import OrderStatus
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.sales_data import make_big_release, sell_units, withhold_numbers

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return ON_SALE + timedelta(minutes=minutes)


def release_row(page: str, release_id: int) -> str:
    """The dashboard table's row for one release."""
    match = re.search(rf'<tr data-release-row="{release_id}".*?</tr>', page, re.DOTALL)
    assert match, f"no row for release {release_id}"
    return match.group(0)


def chart_block(page: str, release_id: int) -> str | None:
    """A release's chart block (figure), or None when the page has none for it."""
    match = re.search(rf'<figure[^>]*id="sales-chart-{release_id}".*?</figure>', page, re.DOTALL)
    return match.group(0) if match else None


def count_of(html: str, name: str) -> int:
    match = re.search(rf'data-{name}="(\d+)"', html)
    assert match, f"no data-{name}"
    return int(match.group(1))


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


# --- Who may see it -------------------------------------------------------------------------------------------------

ROUTES = ["/producer/", "/producer/activity", "/producer/releases/{release_id}/chart"]


@pytest.fixture
def release_id(session) -> int:
    release = make_release(session, units=3, on_sale_at=ON_SALE)
    session.commit()
    return release.id


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_visitors_are_sent_to_sign_in(client, release_id, route):
    path = route.format(release_id=release_id)

    response = client.get(path)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("route", ROUTES)
def test_customers_are_refused(customer_client, release_id, route):
    assert customer_client.get(route.format(release_id=release_id)).status_code == 403


# --- The dashboard --------------------------------------------------------------------------------------------------


def test_the_dashboard_shows_live_counts_revenue_and_a_link_per_release(producer_client, session, clock):
    release = make_release(session, units=10, on_sale_at=ON_SALE, price=8900)
    sell_units(session, release, [at(1), at(2)])
    sell_units(session, release, [at(3)], quantity=2)
    sell_units(session, release, [at(4)], status=OrderStatus.REFUNDED)
    withhold_numbers(session, release, [10])
    session.commit()
    clock.set(at(30))
    with write_transaction(session):
        claim(session, release.id, 2, Buyer("holder@example.com"), clock(), timedelta(minutes=10))

    page = producer_client.get("/producer/").get_data(as_text=True)

    row = release_row(page, release.id)
    assert count_of(row, "available") == 2
    assert count_of(row, "held") == 2
    assert count_of(row, "sold") == 5  # a refunded order's units stay sold: the numbers are gone
    assert count_of(row, "withheld") == 1
    assert count_of(row, "total") == 10
    assert 'data-revenue="€356.00"' in row  # four paid units at €89.00; the refunded order is not revenue
    assert "€89.00 refunded" in row
    assert f'href="/producer/releases/{release.id}"' in row
    assert 'data-status="on_sale"' in row
    assert "Wed 1 July 2026, 11:00 IST" in row  # on sale at 10:00 UTC, shown on the shop's clock (Dublin)


def test_releases_are_listed_newest_on_sale_first(producer_client, session, clock):
    old = make_release(session, units=2, on_sale_at=ON_SALE - timedelta(days=20), slug="old-rye")
    upcoming = make_release(session, units=2, on_sale_at=ON_SALE + timedelta(days=3), slug="next-rye")
    current = make_release(session, units=2, on_sale_at=ON_SALE, slug="this-rye")
    session.commit()
    clock.set(at(5))

    page = producer_client.get("/producer/").get_data(as_text=True)

    positions = [page.index(f'data-release-row="{release.id}"') for release in (upcoming, current, old)]
    assert positions == sorted(positions)


def test_a_release_on_sale_has_a_chart_of_units_sold_and_an_upcoming_one_has_none(producer_client, session, clock):
    selling = make_release(session, units=40, on_sale_at=ON_SALE)
    sell_units(session, selling, [at(0.5), at(1), at(1.5)])
    sell_units(session, selling, [at(12)], quantity=3)
    later = make_release(session, units=40, on_sale_at=ON_SALE + timedelta(days=3))
    soon = make_release(session, units=40, on_sale_at=at(90))
    session.commit()
    clock.set(at(20))

    response = producer_client.get("/producer/")
    page = response.get_data(as_text=True)

    block = chart_block(page, selling.id)
    assert block is not None
    assert "<svg" in block and "<title" in block and "<desc" in block
    assert "6 of 40 units sold" in block
    assert 'data-live="true"' in block
    assert 'data-refresh-seconds="10"' in block
    assert f'data-chart-url="/producer/releases/{selling.id}/chart"' in block
    assert chart_block(page, later.id) is None
    soon_block = chart_block(page, soon.id)  # opens within the day: an empty block that starts at on-sale
    assert soon_block is not None and "<svg" not in soon_block
    assert 'data-opens-at="2026-07-01T11:30:00Z"' in soon_block
    assert "/static/js/dashboard.js" in page
    assert "style=" not in page
    assert '<meta http-equiv="refresh" content="10">' in page  # inside <noscript>: the page without the script


def test_a_release_that_sold_out_a_week_ago_has_no_chart(producer_client, session, clock):
    gone = make_release(session, units=1, on_sale_at=ON_SALE - timedelta(days=9))
    sell_units(session, gone, [ON_SALE - timedelta(days=9)])
    session.commit()
    clock.set(at(5))

    page = producer_client.get("/producer/").get_data(as_text=True)

    assert count_of(release_row(page, gone.id), "sold") == 1
    assert chart_block(page, gone.id) is None
    assert "http-equiv" not in page  # nothing is selling: no need to reload


def test_the_dashboard_shows_the_five_latest_activity_lines(producer_client, session, clock):
    with write_transaction(session):
        for index in range(7):
            record_activity(session, SHOP, "edited", "product", None, f"product edit {index}", clock())
    session.commit()

    page = producer_client.get("/producer/").get_data(as_text=True)

    shown = re.findall(r"product edit (\d)", page)
    assert shown == ["6", "5", "4", "3", "2"]
    assert 'href="/producer/activity"' in page


def test_the_dashboard_issues_the_same_few_statements_for_a_hundred_thousand_units(
    producer_client, session, clock, app
):
    small = make_release(session, units=10, on_sale_at=ON_SALE)
    sell_units(session, small, [at(1), at(2)])
    session.commit()
    clock.set(at(5 * 60))
    with StatementCounter(db.engine) as before:
        assert producer_client.get("/producer/").status_code == 200

    # 30,000 of 100,000 units sold over four hours, bulk-inserted as a checkout would leave them.
    moments = [ON_SALE + timedelta(seconds=(index * 7919) % (4 * 3600)) for index in range(30_000)]
    big = make_big_release(session, units=100_000, sold_moments=moments, on_sale_at=ON_SALE)
    session.commit()
    with StatementCounter(db.engine) as after:
        response = producer_client.get("/producer/")

    page = response.get_data(as_text=True)
    assert count_of(release_row(page, big.id), "sold") == 30_000
    assert count_of(release_row(page, big.id), "available") == 70_000
    assert "30000 of 100000 units sold" in chart_block(page, big.id)
    assert len(after.statements) == len(before.statements), after.statements
    assert len(after.statements) <= 12, after.statements


# --- The chart's refresh endpoint -----------------------------------------------------------------------------------


def test_the_chart_endpoint_returns_the_fresh_block_with_its_counts(producer_client, session, clock):
    release = make_release(session, units=4, on_sale_at=ON_SALE)
    sell_units(session, release, [at(1)])
    session.commit()
    clock.set(at(10))

    first = producer_client.get(f"/producer/releases/{release.id}/chart")

    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    fragment = first.get_data(as_text=True)
    assert fragment.lstrip().startswith("<figure")
    assert "<html" not in fragment
    assert count_of(fragment, "sold") == 1 and count_of(fragment, "available") == 3
    assert 'data-live="true"' in fragment and "1 of 4 units sold" in fragment

    sell_units(session, release, [at(11)], quantity=3)
    session.commit()
    clock.set(at(12))
    second = producer_client.get(f"/producer/releases/{release.id}/chart").get_data(as_text=True)

    assert count_of(second, "sold") == 4 and count_of(second, "available") == 0
    assert 'data-status="sold_out"' in second and 'data-status-label="Sold out"' in second
    assert 'data-live="false"' in second  # sold out for good: the script stops asking
    assert 'data-revenue="€356.00"' in second
    assert "4 of 4 units sold" in second


def test_the_chart_endpoint_of_an_upcoming_release_has_no_chart(producer_client, session, clock):
    release = make_release(session, units=4, on_sale_at=ON_SALE + timedelta(days=5))
    session.commit()

    fragment = producer_client.get(f"/producer/releases/{release.id}/chart").get_data(as_text=True)

    assert "<svg" not in fragment
    assert 'data-live="false"' in fragment
    assert 'data-status="upcoming"' in fragment


def test_the_chart_endpoint_answers_404_for_an_unknown_release(producer_client):
    assert producer_client.get("/producer/releases/999999/chart").status_code == 404


def test_activity_by_a_signed_in_producer_names_them(producer_client, producer_user, session, clock):
    release = make_release(session, units=2, on_sale_at=ON_SALE)
    with write_transaction(session):
        record_activity(session, Actor.of(producer_user), "paused", "release", release.id, "Paused it", clock())
    session.commit()

    page = producer_client.get("/producer/").get_data(as_text=True)

    assert re.search(
        rf'ann@distillery.ie</span>\s*<a class="activity-list__what" href="/producer/releases/{release.id}">Paused it',
        page,
    )
