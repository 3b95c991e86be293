"""Picking a number on the release page: a grid for small runs, ranges and a number box for long ones, and a number
taken at the last moment answered on the page itself; on both databases."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront.models import Hold
from tests.factories import make_release
from tests.integration.helpers import claim_committed, convert_committed, new_order_for
from tests.web.shop.test_reserve import csrf_token_from, hold_url_for, reserve, units_of

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
RADIO = re.compile(r'<input class="number-picker__input" type="radio" name="number" value="(\d*)" id="[\w-]+"( \w+)?>')


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def radios(page: str) -> dict[str, str]:
    """The number grid's radios: value ("" for any free number) → "", "disabled" or "checked"."""
    return {value: state.strip() for value, state in RADIO.findall(page)}


def test_a_small_run_shows_every_number_with_the_taken_ones_disabled(session, client, clock):
    release = make_release(session, units=12, on_sale_at=ON_SALE, withheld=[12])
    claim_committed(session, release.id, 1, "ann@example.com", clock(), number=3)
    sold = claim_committed(session, release.id, 1, "bob@example.com", clock(), number=4)
    convert_committed(session, sold, new_order_for(sold), clock())

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    grid = radios(page)
    assert list(grid) == [""] + [str(number) for number in range(1, 13)]
    assert grid[""] == "checked"  # "Any free number" unless the buyer picks one
    assert {number for number, state in grid.items() if state == "disabled"} == {"3", "4", "12"}
    assert '<legend class="field__label">Pick your number</legend>' in page
    assert "<span data-number-free>9</span> of 12 free. Crossed-out numbers are taken." in page
    assert '<label class="number-picker__choice" for="number-3">3<span class="visually-hidden"> (taken)</span>' in page
    assert "A picked number holds just that one, so How many must be 1." in page

    # The grid is the form's own field: choosing No. 7 holds No. 7.
    response = reserve(client, release, csrf_token_from(page), number="7")
    assert response.status_code == 303
    assert "No. 7 of 12 is held for you" in client.get(hold_url_for(session, response)).get_data(as_text=True)


def test_a_long_run_names_its_first_free_ranges_and_offers_a_number_box(session, client, clock):
    release = make_release(session, units=1000, on_sale_at=ON_SALE, withheld=[5, 10, 15, 20, 25, 1000])
    claim_committed(session, release.id, 1, "ann@example.com", clock(), number=1)

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert radios(page) == {}
    assert "Free now: No. 2–4, 6–9, 11–14, 16–19 and 2 more ranges." in page
    assert re.search(r'<input [^>]*id="number"[^>]*max="1000"', page)
    assert "data-number-check" in page and "data-number-search" in page


def test_a_run_of_100000_keeps_the_page_small(session, client, clock):
    release = make_release(session, units=100_000, on_sale_at=ON_SALE, limit=5)

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert "Free now: No. 1–100,000." in page
    assert len(re.findall(r"<input\b", page)) < 10
    assert len(page.encode()) < 40_000


def test_a_number_taken_at_the_last_moment_is_answered_on_the_release_page(session, client, clock):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=3)
    token = csrf_token_from(client.get(f"/releases/{release.slug}").get_data(as_text=True))
    claim_committed(session, release.id, 1, "fast@example.com", clock(), number=5)  # someone else was faster
    before = units_of(session, release)

    response = reserve(client, release, token, number="5", email="slow@example.com")

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Nothing is reserved yet: please check" in page
    assert "No. 5 was just taken. No. 6 is free, and now chosen for you." in page
    assert 'aria-describedby="number-hint number-error"' in page
    grid = radios(page)
    assert (grid["5"], grid["6"], grid[""]) == ("disabled", "checked", "")  # the grid as it is now
    assert 'value="slow@example.com"' in page  # the form keeps what the buyer typed
    assert units_of(session, release) == before

    # Reserve again, as the page now stands: No. 6.
    again = reserve(client, release, csrf_token_from(page), number="6", email="slow@example.com")
    assert again.status_code == 303
    assert "No. 6 of 10 is held for you" in client.get(hold_url_for(session, again)).get_data(as_text=True)


def test_in_a_long_run_the_number_box_gets_the_free_number_instead(session, client, clock):
    release = make_release(session, units=500, on_sale_at=ON_SALE, limit=3)
    token = csrf_token_from(client.get(f"/releases/{release.slug}").get_data(as_text=True))
    for number in (400, 401):
        claim_committed(session, release.id, 1, f"buyer{number}@example.com", clock(), number=number)

    response = reserve(client, release, token, number="400")

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "No. 400 was just taken. No. 402 is free, and now chosen for you." in page
    assert re.search(r'<input [^>]*aria-invalid="true"[^>]*id="number"[^>]*value="402"', page)
    assert session.scalar(select(Hold).where(Hold.buyer_email == "ada@example.com")) is None


def test_when_every_number_is_taken_the_sold_out_page_answers(session, client, clock):
    release = make_release(session, units=2, on_sale_at=ON_SALE, limit=3)
    token = csrf_token_from(client.get(f"/releases/{release.slug}").get_data(as_text=True))
    claim_committed(session, release.id, 2, "fast@example.com", clock())

    response = reserve(client, release, token, number="2")

    assert response.status_code == 409
    assert "No. 2 is taken, and so is every other number" in response.get_data(as_text=True)


def test_no_picker_before_the_sale_opens(session, client, clock):
    clock.set(ON_SALE - timedelta(hours=1))
    release = make_release(session, units=10, on_sale_at=ON_SALE)

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert "Pick your number" not in page and radios(page) == {}
