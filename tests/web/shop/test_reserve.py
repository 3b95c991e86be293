"""Reserving numbered units through the real form (CSRF included), the hold page and cancelling; on both databases."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.models import Hold, Unit
from tests.factories import make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
EMAIL = "ada@example.com"


def csrf_token_from(page: str) -> str:
    match = CSRF_INPUT.search(page)
    assert match, "no form with a CSRF token on this page"
    return match.group(1)


def release_page_token(client, release) -> str:
    """Open the release page as a buyer would and take the token from its reserve form."""
    response = client.get(f"/releases/{release.slug}")
    assert response.status_code == 200
    return csrf_token_from(response.get_data(as_text=True))


def reserve(client, release, token, **fields):
    """Post the reserve form; a field given as None is left out of the request."""
    data = {"csrf_token": token, "quantity": "1", "email": EMAIL, **fields}
    data = {name: value for name, value in data.items() if value is not None}
    return client.post(f"/releases/{release.slug}/reserve", data=data)


def units_of(session, release):
    return session.execute(
        select(Unit.number, Unit.status, Unit.hold_id).where(Unit.release_id == release.id).order_by(Unit.number)
    ).all()


def hold_url_for(session, response) -> str:
    """The hold page behind a reserve that redirected to the checkout page."""
    session_id = response.headers["Location"].rsplit("/", 1)[-1]
    hold = session.scalar(select(Hold).where(Hold.payment_session_id == session_id))
    return f"/holds/{hold.token}"


def held_count(session, release) -> int:
    return session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "held"))


def hold_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Hold))


@pytest.fixture
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def test_reserving_sends_the_buyer_to_pay_and_keeps_a_hold_page(app, session, client, on_sale, stripe_sim):
    release = make_release(session, units=240, on_sale_at=ON_SALE, limit=3)
    session.commit()
    token = release_page_token(client, release)

    response = reserve(client, release, token, quantity="2")

    assert response.status_code == 303
    assert re.fullmatch(rf"{re.escape(stripe_sim.url)}/pay/cs_test_\w+", response.headers["Location"])
    page = client.get(hold_url_for(session, response)).get_data(as_text=True)
    assert "No. 1 and No. 2 of 240 are held for you" in page
    assert "€178.00" in page
    assert 'data-countdown="2026-07-01T10:11:00Z"' in page
    assert 'data-server-now="2026-07-01T10:01:00Z"' in page
    assert 'id="payment"' in page
    hold = session.scalar(select(Hold))
    assert f'href="{hold.payment_url}"' in page and "Continue to payment" in page
    assert held_count(session, release) == 2


def session_cookie_contents(app, client) -> str:
    """Everything the browser's session cookie carries, decoded and verified as Flask reads it."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    if cookie is None:
        return ""
    serializer = app.session_interface.get_signing_serializer(app)
    return json.dumps(serializer.loads(cookie.value), default=str)


def test_the_release_page_offers_the_form_and_keeps_no_email_in_the_cookie(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=3, allow_number_choice=True)
    session.commit()

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert f'action="/releases/{release.slug}/reserve"' in page
    assert 'name="quantity"' in page
    assert 'max="3"' in page
    assert "Pick your number" in page
    assert 'id="number-10"' in page  # a small run: every number in the grid (tests/web/shop/test_number_picker.py)
    assert 'aria-describedby="email-hint"' in page
    assert 'autocomplete="email"' in page  # the browser offers the address; the shop does not keep it

    response = reserve(client, release, csrf_token_from(page), email="Ada.Lovelace+drop@Example.com")
    assert response.status_code == 303
    hold = session.scalar(select(Hold))
    assert (hold.status, hold.buyer_email, hold.buyer_key) == (
        "active",
        "Ada.Lovelace+drop@Example.com",
        "ada.lovelace@example.com",
    )
    assert held_count(session, release) == 1

    # The session cookie is signed, not encrypted: anyone holding it could read an address kept there.
    contents = session_cookie_contents(app, client).casefold()
    assert "csrf_token" in contents  # it was decoded: this is the cookie the forms rely on
    for trace in ("ada.lovelace", "example.com", "@"):
        assert trace not in contents
    assert "ada.lovelace" not in client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value.casefold()
    # Back on the release page, the form does not fill the address in: nothing kept it.
    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "Ada.Lovelace" not in page


def test_no_number_picking_where_the_producer_did_not_offer_it(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    token = release_page_token(client, release)
    assert 'name="number"' not in client.get(f"/releases/{release.slug}").get_data(as_text=True)

    response = reserve(client, release, token, number="4")

    assert response.status_code == 400
    assert "does not offer picking a number" in response.get_data(as_text=True)
    assert hold_count(session) == 0


def test_a_specific_number_can_be_reserved(app, session, client, on_sale):
    release = make_release(session, units=240, on_sale_at=ON_SALE, allow_number_choice=True)
    session.commit()
    token = release_page_token(client, release)

    response = reserve(client, release, token, number="17")

    assert response.status_code == 303
    page = client.get(hold_url_for(session, response)).get_data(as_text=True)
    assert "No. 17 of 240 is held for you" in page


def test_a_taken_number_offers_the_next_free_one(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=True)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, number="5", email="first@example.com").status_code == 303
    before = units_of(session, release)

    response = reserve(client, release, token, number="5")

    # Answered on the release page itself (tests/web/shop/test_number_picker.py), with No. 6 chosen instead.
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "No. 5 was just taken. No. 6 is free" in page
    assert re.search(r'<input[^>]*value="6" id="number-6" checked>', page)
    assert units_of(session, release) == before

    # Taking the offer is one click: the page's own form, with its token and the buyer's email.
    offer = client.post(
        f"/releases/{release.slug}/reserve",
        data={"csrf_token": csrf_token_from(page), "quantity": "1", "number": "6", "email": EMAIL},
    )
    assert offer.status_code == 303
    assert "No. 6 of 10 is held for you" in client.get(hold_url_for(session, offer)).get_data(as_text=True)


@pytest.mark.parametrize("quantity", ["0", "-1", "2.5", "abc", "4", "", None, "1_0", "99999999999999999999"])
def test_a_bad_quantity_is_refused_and_nothing_is_held(app, session, client, on_sale, quantity):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=3)
    session.commit()
    token = release_page_token(client, release)
    before = units_of(session, release)

    response = reserve(client, release, token, quantity=quantity)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing is reserved yet" in page  # the release page again, with the form and its errors
    assert 'id="quantity-error"' in page
    assert 'aria-describedby="quantity-hint quantity-error"' in page
    assert 'aria-invalid="true"' in page
    assert units_of(session, release) == before
    assert hold_count(session) == 0


def test_a_quantity_above_the_limit_says_what_the_limit_is(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=3)
    session.commit()

    response = reserve(client, release, release_page_token(client, release), quantity="4")

    assert response.status_code == 400
    assert "The limit is 3 per customer" in response.get_data(as_text=True)


@pytest.mark.parametrize("number", ["0", "11", "x", "1.5"])
def test_a_number_outside_the_run_is_refused(app, session, client, on_sale, number):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=True)
    session.commit()

    response = reserve(client, release, release_page_token(client, release), number=number)

    assert response.status_code == 400
    assert 'id="number-error"' in response.get_data(as_text=True)
    assert hold_count(session) == 0


def test_a_picked_number_holds_only_that_one(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=True)
    session.commit()

    response = reserve(client, release, release_page_token(client, release), number="3", quantity="2")

    assert response.status_code == 400
    assert "A picked number holds just that one" in response.get_data(as_text=True)
    assert hold_count(session) == 0


@pytest.mark.parametrize("email", ["", "   ", "not-an-email", "ada@", "@example.com", None])
def test_a_missing_or_invalid_email_is_refused(app, session, client, on_sale, email):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)
    before = units_of(session, release)

    response = reserve(client, release, token, email=email)

    assert response.status_code == 400
    assert 'id="email-error"' in response.get_data(as_text=True)
    assert units_of(session, release) == before
    assert hold_count(session) == 0


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_post_without_a_valid_csrf_token_is_refused(app, session, client, on_sale, token):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    release_page_token(client, release)  # the browser session has a token; the post does not carry it

    response = reserve(client, release, token)

    assert response.status_code == 400
    assert "Please try that again" in response.get_data(as_text=True)
    assert hold_count(session) == 0
    assert held_count(session, release) == 0


def test_reserving_before_the_release_opens_is_impossible_even_by_posting_directly(app, session, client, clock):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    clock.set(ON_SALE + timedelta(minutes=1))
    token = release_page_token(client, release)
    clock.set(ON_SALE - timedelta(seconds=1))
    before = units_of(session, release)

    response = reserve(client, release, token)

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Not on sale yet" in page
    assert units_of(session, release) == before
    assert hold_count(session) == 0


def test_reserving_after_the_release_closed_is_refused(app, session, client, clock):
    release = make_release(session, units=10, on_sale_at=ON_SALE, off_sale_at=ON_SALE + timedelta(hours=1))
    session.commit()
    clock.set(ON_SALE + timedelta(minutes=1))
    token = release_page_token(client, release)
    clock.set(ON_SALE + timedelta(hours=1))

    response = reserve(client, release, token)

    assert response.status_code == 409
    assert "This release has closed" in response.get_data(as_text=True)
    assert hold_count(session) == 0


def test_sold_out_answers_409_with_the_waitlist_form(app, session, client, on_sale):
    release = make_release(session, units=2, on_sale_at=ON_SALE, limit=2)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, quantity="2", email="first@example.com").status_code == 303

    response = reserve(client, release, token)

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<h1" in page and "Sold out" in page
    assert 'id="waitlist"' in page
    waitlist = page.split('id="waitlist"')[1].split("</section>")[0]
    assert f'action="/waitlist/releases/{release.slug}"' in waitlist
    assert 'name="email"' in waitlist and "First come, first served" in waitlist
    assert held_count(session, release) == 2


def test_asking_for_more_than_is_left_offers_what_is_left(app, session, client, on_sale):
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, quantity="2", email="first@example.com").status_code == 303

    response = reserve(client, release, token, quantity="2")

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Only 1 left" in page
    assert '<input type="hidden" name="quantity" value="1">' in page
    assert held_count(session, release) == 2


def test_one_buyer_reaches_the_limit_over_two_requests(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=2)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, quantity="1").status_code == 303

    response = reserve(client, release, token, quantity="2", email="  ADA@example.com ")

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "You have reached the limit" in page
    assert "You may take 1 more" in page
    assert held_count(session, release) == 1

    assert reserve(client, release, token, quantity="1").status_code == 303
    response = reserve(client, release, token, quantity="1")
    assert response.status_code == 409
    assert "You already have all 2" in response.get_data(as_text=True)
    assert held_count(session, release) == 2


def test_cancelling_puts_the_numbers_back_on_sale(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=3)
    session.commit()
    hold_url = hold_url_for(session, reserve(client, release, release_page_token(client, release), quantity="3"))
    assert held_count(session, release) == 3
    hold_page = client.get(hold_url).get_data(as_text=True)

    response = client.post(f"{hold_url}/cancel", data={"csrf_token": csrf_token_from(hold_page)})

    assert response.status_code == 303
    assert response.headers["Location"] == hold_url
    page = client.get(hold_url).get_data(as_text=True)
    assert "You cancelled this hold" in page and "Your numbers are back on sale" in page
    release_page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "<span data-available>10</span> of <span data-total>10</span> left" in release_page
    assert held_count(session, release) == 0
    hold = session.scalar(select(Hold))
    assert (hold.status, hold.end_reason, hold.payment_status) == ("released", "cancelled", "expired")

    # Cancelling again (a double click, the back button) is harmless: the buyer sees their ended hold.
    again = client.post(f"{hold_url}/cancel", data={"csrf_token": csrf_token_from(hold_page)})
    assert again.status_code == 303
    assert again.headers["Location"] == hold_url
    assert "You cancelled this hold" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert held_count(session, release) == 0


def test_cancelling_needs_the_csrf_token(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    hold_url = hold_url_for(session, reserve(client, release, release_page_token(client, release)))

    response = client.post(f"{hold_url}/cancel")

    assert response.status_code == 400
    assert held_count(session, release) == 1


def test_an_expired_hold_says_so_and_offers_no_payment(app, session, client, clock, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    hold_url = hold_url_for(session, reserve(client, release, release_page_token(client, release)))
    clock.advance(minutes=app.config["HOLD_MINUTES"])

    page = client.get(hold_url).get_data(as_text=True)

    assert "Your hold has expired" in page
    assert 'id="payment"' not in page
    assert "Cancel this hold" not in page


def test_an_unknown_hold_token_is_404(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)

    page = client.get("/holds/no-such-hold")
    cancel = client.post("/holds/no-such-hold/cancel", data={"csrf_token": token})

    assert page.status_code == 404
    assert "Page not found" in page.get_data(as_text=True)
    assert cancel.status_code == 404


def test_reserving_an_unknown_release_is_404(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)

    response = client.post("/releases/no-such-release/reserve", data={"csrf_token": token, "quantity": "1"})

    assert response.status_code == 404
    assert hold_count(session) == 0
