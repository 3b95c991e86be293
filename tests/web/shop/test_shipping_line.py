"""The shipping line next to a release's price, and the hold page's total: what the payment page will charge."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront.models import Hold, ShopPage, ShopSettings
from storefront.unit_of_work import write_transaction
from tests.factories import make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def release_page(client, session, *, shipping: int, **options) -> str:
    release = make_release(session, units=20, on_sale_at=ON_SALE, price=8900, **options)
    release.shipping_amount = shipping
    session.commit()
    response = client.get(f"/releases/{release.slug}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def shipping_line(page: str) -> str:
    match = re.search(r'<div class="shipping-line" data-shipping-line>(.*?)</div>', page, re.S)
    assert match, "no shipping line on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=5))


def test_the_line_gives_the_cost_per_order_and_the_countries_by_name(client, session):
    page = release_page(client, session, shipping=600)

    line = shipping_line(page)
    assert line.startswith("Shipping €6.00 per order to Ireland, United Kingdom and 12 more countries")
    assert "All 14 countries we ship to" in line
    assert "France, Germany, Netherlands, Belgium, Luxembourg, Austria, Spain, Portugal, Italy, Denmark" in line
    assert "Dispatched" not in line  # the producer has not said how soon
    assert "Shipping and delivery" not in line  # nor written a shipping page


def test_free_shipping_says_so(client, session):
    line = shipping_line(release_page(client, session, shipping=0))

    assert line.startswith("Free shipping to Ireland, United Kingdom and 12 more countries")


@pytest.mark.parametrize("app_overrides", [{"SHIPPING_COUNTRIES": ["IE", "GB"]}])
def test_a_short_list_of_countries_is_named_in_full(client, session):
    line = shipping_line(release_page(client, session, shipping=450))

    assert line.startswith("Shipping €4.50 per order to Ireland and United Kingdom")
    assert "countries we ship to" not in line


def test_the_dispatch_time_and_the_shipping_page_are_given_when_the_producer_wrote_them(client, session):
    with write_transaction(session):
        session.add(ShopSettings(id=1, dispatch_time="within 2 working days"))
        session.add(ShopPage(kind="shipping", title="Shipping", body_markdown="We ship by **An Post**."))

    page = release_page(client, session, shipping=600)

    line = shipping_line(page)
    assert "Dispatched within 2 working days" in line
    assert re.search(r'<a href="/pages/shipping">Shipping and delivery</a>', page)
    assert client.get("/pages/shipping").status_code == 200


def test_the_hold_page_total_is_units_plus_shipping(client, session):
    release = make_release(session, units=20, on_sale_at=ON_SALE, price=8900, slug="held-rye")
    release.shipping_amount = 600
    session.commit()
    form_page = client.get("/releases/held-rye").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form_page).group(1)

    reserved = client.post(
        "/releases/held-rye/reserve", data={"csrf_token": csrf, "email": "ann@example.com", "quantity": "2"}
    )
    assert reserved.status_code == 303
    session.commit()
    token = session.scalar(select(Hold.token).where(Hold.release_id == release.id))
    hold_page = client.get(f"/holds/{token}").get_data(as_text=True)

    assert "€184.00" in hold_page
    assert re.search(r"2 × €89.00\s*\+ €6.00 shipping", hold_page)
