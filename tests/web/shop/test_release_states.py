"""What buyers see of numbers kept by the maker and of a paused release; on both databases."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from storefront.domain.activity import SHOP
from storefront.domain.releases import pause_release
from storefront.models import Order, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


def test_a_number_kept_by_the_maker_is_named_and_not_counted_as_left(session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=5))
    release = make_release(session, units=30, on_sale_at=ON_SALE, withheld=[1])

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert "<span data-available>29</span> of <span data-total>30</span> left" in page
    assert "No. 1 is kept by the maker, not for sale." in page


def test_many_numbers_kept_back_are_counted_instead(session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=5))
    release = make_release(session, units=240, on_sale_at=ON_SALE, withheld=range(1, 41))

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert "<span data-available>200</span> of <span data-total>240</span> left" in page
    assert "40 numbers are kept by the maker, not for sale." in page


def test_sold_out_counts_only_the_numbers_that_were_for_sale(session, client, clock):
    clock.set(ON_SALE + timedelta(days=1))
    release = make_release(session, units=3, on_sale_at=ON_SALE, withheld=[1])
    with write_transaction(session):
        order = Order(
            release_id=release.id,
            email="a@example.com",
            buyer_key="a@example.com",
            quantity=2,
            unit_amount=8900,
            amount_total=17800,
            currency="EUR",
        )
        session.add(order)
        session.flush()
        session.execute(
            sa.update(Unit)
            .where(Unit.release_id == release.id, Unit.status == "available")
            .values(status="sold", order_id=order.id, sold_at=ON_SALE)
        )

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert 'data-status="sold_out"' in page
    assert "All 2 numbered units for sale have found a home." in page
    assert "No. 1 is kept by the maker" in page


def test_a_paused_release_stays_on_the_home_page_marked_paused(session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=5))
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    with write_transaction(session):
        pause_release(session, release.id, clock(), SHOP)

    home = client.get("/").get_data(as_text=True)
    on_sale_section = home.split("On sale now")[1]
    assert release.title in on_sale_section
    assert 'data-status="paused">Paused</span>' in on_sale_section

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "Paused by the maker" in page
    assert 'action="/releases/' not in page  # no reserve form while paused


def test_the_scripts_status_labels_match_the_templates():
    macros = (ROOT / "templates" / "_macros.html").read_text()
    script = (ROOT / "static" / "js" / "release.js").read_text()
    template_labels = dict(re.findall(r'"(\w+)": "([^"]+)"', macros.split("status_labels = {")[1].split("}")[0]))
    script_labels = dict(re.findall(r'(\w+): "([^"]+)"', script.split("STATUS_LABELS = {")[1].split("}")[0]))
    assert template_labels == script_labels
    assert template_labels["paused"] == "Paused"
