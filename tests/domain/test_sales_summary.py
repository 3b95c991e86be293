"""Each release's sales after refunds: units sold, refunded (retired or returned to sale), revenue net of refunds.

Orders are paid and refunded through the real rules (tests/refund_data.py), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storefront.domain.refunds import ChargeRefunds, GatewayRefund, reflect_charge_refunds
from storefront.domain.sales import SalesSummary, revenue_by_release, sales_summaries
from storefront.domain.stock import describe_releases
from storefront.models import Release
from storefront.unit_of_work import write_transaction
from tests.domain.test_sales import StatementCounter
from tests.factories import make_release
from tests.refund_data import ask_refund, paid_order, refuse, send

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def test_the_summary_counts_refunded_and_returned_units_and_nets_refunds(session, clock):
    release = make_release(session, units=10, on_sale_at=ON_SALE, price=PRICE, limit=3)
    quiet = make_release(session, units=5, on_sale_at=ON_SALE, price=5000)
    session.commit()
    now = clock()

    # Bob: 2 units, No. 1 refunded and kept (retired).
    bob = paid_order(session, release, "bob@example.com", now, quantity=2)
    send(session, ask_refund(session, bob, [1], now).id, "re_bob", now)
    # Cat: 3 units, No. 4 refunded and returned to sale, €10 more refunded from Stripe's dashboard.
    cat = paid_order(session, release, "cat@example.com", now, quantity=3)
    send(session, ask_refund(session, cat, [4], now, returning=[4]).id, "re_cat", now)
    with write_transaction(session):
        reflect_charge_refunds(
            session, ChargeRefunds(cat.payment_intent_id, refunds=(GatewayRefund("re_d", 1000),)), now
        )
    # Dan: 1 unit, refunded in full and kept; Eve: 1 unit, a refund on its way; Fay: 1 unit, a refund refused.
    dan = paid_order(session, release, "dan@example.com", now)
    send(session, ask_refund(session, dan, [dan.units[0].number], now).id, "re_dan", now)
    eve = paid_order(session, release, "eve@example.com", now)
    ask_refund(session, eve, [eve.units[0].number], now)
    fay = paid_order(session, release, "fay@example.com", now)
    refuse(session, ask_refund(session, fay, [fay.units[0].number], now).id, "No.", now)
    session.commit()
    release_ids = [release.id, quiet.id]

    with StatementCounter(session.get_bind()) as counter:
        summaries = sales_summaries(session, release_ids)

    queries = [statement for statement in counter.statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 4  # one per kind, for every release at once
    summary = summaries[release.id]
    # Sold now: 2 + 3 - 1 returned + 1 + 1 + 1 = 7 (refunded units kept by their buyers stay sold).
    assert (summary.sold, summary.refunded, summary.returned) == (7, 3, 1)
    assert summary.gross == {"EUR": 8 * PRICE}
    assert summary.refunds == {"EUR": 3 * PRICE + 1000}  # refunds made; the one on its way and the refused one not
    assert summary.net == {"EUR": 5 * PRICE - 1000}
    assert summaries[quiet.id] == SalesSummary()
    assert summaries[quiet.id].net == {}

    # The dashboard hands in what it has counted already (stock, revenue by status): the same summary, two queries.
    views = describe_releases(session, [session.get(Release, release_id) for release_id in release_ids], now)
    revenues = revenue_by_release(session, release_ids)
    with StatementCounter(session.get_bind()) as counter:
        reused = sales_summaries(
            session, release_ids, sold={view.release.id: view.stock.sold for view in views}, revenues=revenues
        )
    assert reused == summaries
    assert len([statement for statement in counter.statements if statement.lstrip().upper().startswith("SELECT")]) == 2


def test_a_unit_returned_and_sold_again_counts_each_sale_and_each_refund(session, clock):
    release = make_release(session, units=1, on_sale_at=ON_SALE, price=PRICE, limit=1)
    session.commit()
    now = clock()
    bob = paid_order(session, release, "bob@example.com", now)
    send(session, ask_refund(session, bob, [1], now, returning=[1]).id, "re_bob", now)
    cat = paid_order(session, release, "cat@example.com", now)
    send(session, ask_refund(session, cat, [1], now).id, "re_cat", now)

    summary = sales_summaries(session, [release.id])[release.id]

    assert (summary.sold, summary.refunded, summary.returned) == (1, 2, 1)
    assert summary.net == {"EUR": 0}


def test_no_releases_no_queries(session):
    with StatementCounter(session.get_bind()) as counter:
        assert sales_summaries(session, []) == {}
    assert counter.statements == []
