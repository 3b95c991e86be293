"""The producer's release pages: open a release through the real form, keep numbers back, pause, edit.

Every test runs on SQLite and PostgreSQL through the test client, CSRF included. The shop's clock (the `clock`
fixture) stands at 2026-07-01 09:00 UTC, 10:00 in Dublin (Irish Standard Time, UTC+1).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from storefront.domain import releases as release_rules
from storefront.models import ActivityEntry, Hold, Release, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.helpers import claim_committed
from tests.web.producer.conftest import csrf_from

FORM = {
    "title": "Carlow Rye, Batch 8, 70 cl",
    "slug": "",
    "price": "89.00",
    "currency": "EUR",
    "total_units": "30",
    "on_sale_at": "2026-07-02T11:00",
    "off_sale_at": "",
    "per_customer_limit": "2",
    "allow_number_choice": "y",
    "withheld": "1",
}


@pytest.fixture
def batch_id(session) -> int:
    with write_transaction(session):
        return make_batch(session).id


def new_release_form(client, for_batch: int, **fields) -> dict:
    """The new-release form as a producer fills it in, with its CSRF token; a field given as None is left out."""
    token = csrf_from(client.get("/producer/releases/new").get_data(as_text=True))
    data = {"csrf_token": token, **FORM, "batch_id": str(for_batch), **fields}
    return {name: value for name, value in data.items() if value is not None}


def open_through_form(client, for_batch: int, **fields):
    return client.post("/producer/releases", data=new_release_form(client, for_batch, **fields))


def release_and_unit_counts(session) -> tuple[int, int]:
    session.commit()
    return session.scalar(select(func.count()).select_from(Release)), session.scalar(
        select(func.count()).select_from(Unit)
    )


def on_sale_release(session, **options) -> Release:
    release = make_release(session, on_sale_at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC), **options)
    session.commit()
    return release


def input_tag(page: str, field_id: str) -> str:
    match = re.search(rf'<(?:input|select)[^>]*id="{field_id}"[^>]*>', page)
    assert match, f"no input {field_id} on the page"
    return match.group(0)


def page_token(client, path: str) -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


# --- Who may come in --------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/producer/releases/new"),
    ("POST", "/producer/releases"),
    ("GET", "/producer/releases/{id}"),
    ("GET", "/producer/releases/{id}/edit"),
    ("POST", "/producer/releases/{id}/edit"),
    ("POST", "/producer/releases/{id}/withhold"),
    ("POST", "/producer/releases/{id}/return"),
    ("POST", "/producer/releases/{id}/pause"),
    ("POST", "/producer/releases/{id}/resume"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_visitors_are_sent_to_sign_in(session, client, method, path):
    release = make_release(session)
    url = path.format(id=release.id)
    # With a valid token: the CSRF check (which runs before the workspace's guard) is not what is tested here.
    data = {"csrf_token": page_token(client, "/login")} if method == "POST" else None
    response = client.open(url, method=method, data=data)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_customers_are_refused(session, customer_client, method, path):
    release = make_release(session)
    token = page_token(customer_client, "/logout")
    data = {"csrf_token": token} if method == "POST" else None
    response = customer_client.open(path.format(id=release.id), method=method, data=data)
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path"), [route for route in ROUTES if "{id}" in route[1]])
def test_an_unknown_release_is_404(producer_client, method, path):
    token = page_token(producer_client, "/logout")
    data = {"csrf_token": token, "numbers": "1", "withhold-numbers": "1", "return-numbers": "1"}
    response = producer_client.open(path.format(id=4242), method=method, data=data if method == "POST" else None)
    assert response.status_code == 404


# --- Opening ----------------------------------------------------------------------------------------------------


def test_the_form_offers_the_batches_and_a_local_time(producer_client, batch_id):
    page = producer_client.get("/producer/releases/new").get_data(as_text=True)
    assert f'<option value="{batch_id}">' in page
    assert 'type="datetime-local"' in page
    assert 'value="2026-07-02T10:00"' in page  # tomorrow, 10:00 in the shop's zone
    assert "Europe/Dublin" in page


def test_without_a_batch_the_form_sends_the_producer_to_make_one(producer_client):
    page = producer_client.get("/producer/releases/new").get_data(as_text=True)
    assert "Add the batch first" in page
    assert 'href="/producer/products"' in page


def test_opening_a_release_through_the_form(producer_client, session, batch_id):
    response = open_through_form(producer_client, batch_id, withheld="1, 5-7")

    assert response.status_code == 303
    release = session.scalar(select(Release))
    assert response.headers["Location"] == f"/producer/releases/{release.id}"
    assert release.slug == "carlow-rye-batch-8-70-cl"  # made from the title
    assert (release.price_amount, release.currency, release.total_units, release.per_customer_limit) == (
        8900,
        "EUR",
        30,
        2,
    )
    assert release.on_sale_at == datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # 11:00 in Dublin is 10:00 UTC
    assert release.allow_number_choice is True
    assert release_rules.kept_back_numbers(session, release.id) == [1, 5, 6, 7]
    assert session.scalar(select(func.count()).where(Unit.release_id == release.id)) == 30
    entry = session.scalar(select(ActivityEntry).where(ActivityEntry.action == "release.opened"))
    assert entry.actor_email == "ann@distillery.ie"

    page = producer_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Release opened with 30 numbered units." in page
    assert "No. 1, No. 5–7" in page
    assert "Thu 2 July 2026, 11:00 IST" in page
    assert f'href="/producer/releases/{release.id}/announce"' in page
    assert f'href="/releases/{release.slug}"' in page
    assert f'href="/producer/releases/{release.id}/edit"' in page


@pytest.mark.parametrize(
    ("typed", "currency", "stored"),
    [("89", "EUR", 8900), ("89.5", "EUR", 8950), ("89.00", "GBP", 8900), ("0", "EUR", 0), ("1500", "JPY", 1500)],
)
def test_prices_are_read_in_the_currencys_own_units(producer_client, session, batch_id, typed, currency, stored):
    response = open_through_form(producer_client, batch_id, price=typed, currency=currency)
    assert response.status_code == 303
    assert session.scalar(select(Release.price_amount)) == stored


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"total_units": "0"}, "A release has from 1 to 100,000 numbered units."),
        ({"total_units": "100001"}, "A release has from 1 to 100,000 numbered units."),
        ({"total_units": "ten"}, "Enter the number of units as a whole number, such as 240."),
        ({"price": "-1"}, "The price cannot be negative."),
        ({"price": "abc"}, "Enter the price as a number, such as 89.00."),
        ({"price": "89.001"}, "EUR prices have at most 2 decimals, e.g. 89.00."),
        ({"price": "15.50", "currency": "JPY"}, "JPY has no smaller unit: enter a whole amount."),
        ({"price": ""}, "Enter the price, such as 89.00."),
        ({"currency": "XXX"}, "Not a valid choice."),
        ({"title": ""}, "Give the release a title."),
        ({"slug": "Rye Batch!"}, "Use lowercase letters, digits and single hyphens, e.g. rye-batch-8."),
        ({"on_sale_at": "2026-07-01T09:00"}, "That on-sale time has already passed; choose a time from now on."),
        ({"on_sale_at": "tomorrow"}, "Enter a date and time, such as 2026-07-01 10:00."),
        ({"on_sale_at": ""}, "Enter when the release goes on sale."),
        (
            {"on_sale_at": "2027-03-28T01:30"},
            "01:30 on 28 March 2027 does not exist in Europe/Dublin: the clocks go forward then.",
        ),
        ({"off_sale_at": "2026-07-02T11:00"}, "The sale must close after it opens."),
        ({"per_customer_limit": "0"}, "Each customer must be allowed at least 1."),
        ({"withheld": "1, x"}, "“x” is not a number or a range like 5-7."),
        ({"withheld": "31"}, "Numbers kept back must be between 1 and 30; No. 31 is not."),
        ({"withheld": "1-30"}, "Keep at least one number for sale."),
        ({"batch_id": "999"}, "Choose the batch this release comes from."),
    ],
)
def test_a_bad_field_is_explained_and_creates_nothing(producer_client, session, batch_id, fields, message):
    response = open_through_form(producer_client, batch_id, **fields)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was saved: please check" in page
    assert message in page
    assert release_and_unit_counts(session) == (0, 0)


def test_a_taken_address_is_refused(producer_client, session, batch_id):
    assert open_through_form(producer_client, batch_id).status_code == 303
    response = open_through_form(producer_client, batch_id, withheld="")
    assert response.status_code == 422
    assert "is already used by another release; choose another." in response.get_data(as_text=True)
    assert release_and_unit_counts(session) == (1, 30)


def test_an_address_taken_by_a_request_at_the_same_moment_is_refused_on_the_form(
    producer_client, session, batch_id, monkeypatch
):
    """Two tabs opening the same release: the database's unique constraint decides; the loser sees a message."""
    with write_transaction(session):
        make_release(session, slug="carlow-rye-batch-8-70-cl")
    # The domain's own check ran before the other request committed: it saw the address free.
    real = release_rules.slug_in_use
    calls: list[str] = []

    def first_check_misses(*args, **kwargs) -> bool:
        calls.append("checked")
        return False if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(release_rules, "slug_in_use", first_check_misses)

    response = open_through_form(producer_client, batch_id)

    assert response.status_code == 409
    assert "was just taken by another release; choose another." in response.get_data(as_text=True)
    assert release_and_unit_counts(session) == (1, 10)


def test_a_missing_csrf_token_creates_nothing(producer_client, session, batch_id):
    data = new_release_form(producer_client, batch_id, csrf_token=None)
    assert producer_client.post("/producer/releases", data=data).status_code == 400
    assert release_and_unit_counts(session) == (0, 0)


def test_a_time_the_clocks_pass_twice_is_read_as_the_first_and_said_so(producer_client, session, batch_id):
    response = open_through_form(producer_client, batch_id, on_sale_at="2026-10-25T01:30")

    assert response.status_code == 303
    assert session.scalar(select(Release.on_sale_at)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    page = producer_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "happens twice in Europe/Dublin (the clocks go back); we used the first, 01:30 IST" in page


# --- The release's page: numbers kept back, pausing --------------------------------------------------------------


def test_numbers_are_kept_back_and_put_back_on_sale(producer_client, session):
    release = on_sale_release(session, units=10)
    path = f"/producer/releases/{release.id}"
    token = page_token(producer_client, path)

    response = producer_client.post(
        f"{path}/withhold", data={"withhold-csrf_token": token, "withhold-numbers": "1, 5-6"}
    )
    assert response.status_code == 303
    assert release_rules.kept_back_numbers(session, release.id) == [1, 5, 6]
    page = producer_client.get(path).get_data(as_text=True)
    assert "Kept back from sale: No. 1, No. 5–6." in page
    assert "Put No. 5 back on sale" in page

    response = producer_client.post(f"{path}/return", data={"return-csrf_token": token, "return-numbers": "5"})
    assert response.status_code == 303
    session.commit()
    assert release_rules.kept_back_numbers(session, release.id) == [1, 6]
    assert [entry.action for entry in session.scalars(select(ActivityEntry).order_by(ActivityEntry.id))][-2:] == [
        "release.withheld",
        "release.returned",
    ]


def test_a_held_number_cannot_be_kept_back(producer_client, session, clock):
    release = on_sale_release(session, units=10)
    claim_committed(session, release.id, 1, "buyer@example.com", clock(), number=4)
    path = f"/producer/releases/{release.id}"
    token = page_token(producer_client, path)

    response = producer_client.post(f"{path}/withhold", data={"withhold-csrf_token": token, "withhold-numbers": "3-4"})

    assert response.status_code == 422
    assert "No. 4 is held by a buyer" in response.get_data(as_text=True)
    session.commit()
    assert release_rules.kept_back_numbers(session, release.id) == []


@pytest.mark.parametrize("typed", ["", "x", "0", "11"])
def test_bad_numbers_are_refused(producer_client, session, typed):
    release = on_sale_release(session, units=10)
    path = f"/producer/releases/{release.id}"
    token = page_token(producer_client, path)
    response = producer_client.post(f"{path}/withhold", data={"withhold-csrf_token": token, "withhold-numbers": typed})
    assert response.status_code == 422
    session.commit()
    assert release_rules.kept_back_numbers(session, release.id) == []


def test_pausing_stops_reservations_with_a_clear_page_and_resuming_opens_them(producer_client, session, clock):
    release = on_sale_release(session, units=10)
    path = f"/producer/releases/{release.id}"

    response = producer_client.post(f"{path}/pause", data={"csrf_token": page_token(producer_client, path)})
    assert response.status_code == 303
    page = producer_client.get(path).get_data(as_text=True)
    assert "Resume sales" in page and 'data-status="paused"' in page

    public = producer_client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "Paused by the maker" in public
    assert 'data-status="paused"' in public
    api = producer_client.get(f"/api/releases/{release.slug}").get_json()
    assert api["status"] == "paused"

    shop_token = page_token(producer_client, path)
    reserve = {"csrf_token": shop_token, "quantity": "1", "email": "buyer@example.com"}
    refused = producer_client.post(f"/releases/{release.slug}/reserve", data=reserve)
    assert refused.status_code == 409
    refusal = refused.get_data(as_text=True)
    assert "Paused by the maker" in refusal and "Check back soon" in refusal
    assert session.scalar(select(func.count()).select_from(Hold)) == 0

    response = producer_client.post(f"{path}/resume", data={"csrf_token": page_token(producer_client, path)})
    assert response.status_code == 303
    assert 'data-status="on_sale"' in producer_client.get(f"/releases/{release.slug}").get_data(as_text=True)


def test_pause_needs_its_csrf_token(producer_client, session):
    release = on_sale_release(session)
    assert producer_client.post(f"/producer/releases/{release.id}/pause").status_code == 400
    session.commit()
    assert session.get(Release, release.id).paused_at is None


# --- Editing ----------------------------------------------------------------------------------------------------


def edit_form(client, release_id: int, **fields) -> dict:
    """The edit form as the page fills it in, changed by `fields` (None leaves a field out, as a disabled input)."""
    page = client.get(f"/producer/releases/{release_id}/edit").get_data(as_text=True)
    session_values = {
        "csrf_token": csrf_from(page),
        "title": "Cask strength",
        "slug": f"release-{release_id}",
        "price": "89.00",
        "currency": "EUR",
        "total_units": "10",
        "on_sale_at": "2026-07-01T09:00",  # 08:00 UTC, in Dublin
        "off_sale_at": "",
        "per_customer_limit": "3",
        "allow_number_choice": "y",
    }
    data = {**session_values, **fields}
    return {name: value for name, value in data.items() if value is not None}


def test_editing_the_terms_before_anything_was_sold(producer_client, session):
    release = on_sale_release(session, units=10, slug="edit-me")
    page = producer_client.get(f"/producer/releases/{release.id}/edit").get_data(as_text=True)
    assert 'value="2026-07-01T09:00"' in page  # 08:00 UTC shown in Dublin time
    assert " disabled" not in input_tag(page, "price")

    data = edit_form(producer_client, release.id, slug="edit-me", price="95.50", total_units="8", title="Renamed")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=data)

    assert response.status_code == 303, response.get_data(as_text=True)
    session.commit()
    release = session.get(Release, release.id)
    assert (release.title, release.price_amount, release.total_units) == ("Renamed", 9550, 8)
    assert release.on_sale_at == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # unchanged, though it is in the past
    assert session.scalar(select(func.max(Unit.number)).where(Unit.release_id == release.id)) == 8


def test_after_a_reservation_price_is_locked_and_the_count_only_rises(producer_client, session, clock):
    release = on_sale_release(session, units=10, slug="locked")
    claim_committed(session, release.id, 1, "buyer@example.com", clock())

    page = producer_client.get(f"/producer/releases/{release.id}/edit").get_data(as_text=True)
    assert "price and currency are\n    fixed" in page or "price and currency are fixed" in page
    assert " disabled" in input_tag(page, "price")

    lowered = edit_form(producer_client, release.id, slug="locked", price=None, currency=None, total_units="9")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=lowered)
    assert response.status_code == 422
    assert "can be raised but not lowered" in response.get_data(as_text=True)

    # A price typed anyway (a tampered form) is ignored: the locked price is the release's own.
    raised = edit_form(producer_client, release.id, slug="locked", price="1.00", currency="GBP", total_units="12")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=raised)
    assert response.status_code == 303, response.get_data(as_text=True)
    session.commit()
    release = session.get(Release, release.id)
    assert (release.price_amount, release.currency, release.total_units) == (8900, "EUR", 12)
    assert session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "available")) == 11


def test_an_edit_with_a_bad_field_changes_nothing(producer_client, session):
    release = on_sale_release(session, units=10, slug="stays")
    data = edit_form(producer_client, release.id, slug="stays", title="New title", on_sale_at="2026-06-01T10:00")
    response = producer_client.post(f"/producer/releases/{release.id}/edit", data=data)
    assert response.status_code == 422
    assert "That on-sale time has already passed" in response.get_data(as_text=True)
    session.commit()
    assert session.get(Release, release.id).title != "New title"
