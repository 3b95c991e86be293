"""The release form's "Shipping per order": read like the price, empty is free, a bad amount saves nothing, and a
change (allowed after sales, unlike the price) is written in the activity log."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storefront.models import ActivityEntry, Release
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch
from tests.integration.helpers import claim_committed
from tests.web.producer.test_releases import edit_form, on_sale_release, open_through_form


@pytest.fixture
def batch_id(session) -> int:
    with write_transaction(session):
        return make_batch(session).id


@pytest.mark.parametrize(
    ("typed", "currency", "stored"),
    [("6.00", "EUR", 600), ("6", "EUR", 600), ("4.5", "GBP", 450), ("", "EUR", 0), ("800", "JPY", 800)],
)
def test_shipping_is_read_like_the_price_and_empty_is_free(producer_client, session, batch_id, typed, currency, stored):
    response = open_through_form(producer_client, batch_id, shipping=typed, currency=currency, price="89")

    assert response.status_code == 303, response.get_data(as_text=True)
    session.commit()
    assert session.scalar(select(Release.shipping_amount)) == stored
    opened = session.scalar(select(ActivityEntry.summary).where(ActivityEntry.action == "release.opened"))
    assert ("free shipping" in opened) == (stored == 0)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("-1", "The shipping cannot be negative."),
        ("six", "Enter the shipping as a number, such as 89.00."),
        ("6.001", "EUR amounts have at most 2 decimals, e.g. 89.00."),
        ("99999999", "Enter the shipping as a number, such as 89.00."),
    ],
)
def test_bad_shipping_is_explained_and_saves_nothing(producer_client, session, batch_id, typed, message):
    response = open_through_form(producer_client, batch_id, shipping=typed)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was saved: please check" in page
    assert message in page
    session.commit()
    assert session.scalar(select(func.count()).select_from(Release)) == 0


def test_shipping_can_change_after_sales_and_the_log_says_so(producer_client, session, clock):
    release = on_sale_release(session, units=10, slug="shipped")
    claim_committed(session, release.id, 1, "buyer@example.com", clock())

    page = producer_client.get(f"/producer/releases/{release.id}/edit").get_data(as_text=True)
    assert 'id="shipping"' in page
    data = edit_form(producer_client, release.id, slug="shipped", price=None, currency=None, shipping="6.50")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=data)

    assert response.status_code == 303, response.get_data(as_text=True)
    session.commit()
    assert session.get(Release, release.id).shipping_amount == 650
    edited = session.scalar(select(ActivityEntry.summary).where(ActivityEntry.action == "release.edited"))
    assert "shipping to €6.50 per order" in edited
    # The form shows it back as typed, and emptying it makes shipping free again.
    page = producer_client.get(f"/producer/releases/{release.id}/edit").get_data(as_text=True)
    assert 'value="6.50"' in page
    data = edit_form(producer_client, release.id, slug="shipped", price=None, currency=None, shipping="")
    assert producer_client.post(f"/producer/releases/{release.id}/edit", data=data).status_code == 303
    session.commit()
    assert session.get(Release, release.id).shipping_amount == 0


def test_a_bad_shipping_edit_keeps_the_old_amount(producer_client, session):
    release = on_sale_release(session, units=10, slug="kept")
    with write_transaction(session):
        session.get(Release, release.id).shipping_amount = 600

    data = edit_form(producer_client, release.id, slug="kept", shipping="-6", title="Renamed")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=data)

    assert response.status_code == 422
    assert "The shipping cannot be negative." in response.get_data(as_text=True)
    session.commit()
    kept = session.get(Release, release.id)
    assert (kept.shipping_amount, kept.title != "Renamed") == (600, True)
