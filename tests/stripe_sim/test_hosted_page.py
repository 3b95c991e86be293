"""The hosted payment page a buyer sees at the session's `url`: Pay, Decline and Cancel."""

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from storefront.stripe_sim import create_sim_app
from storefront.stripe_sim.simulator import Simulator

from .support import API_KEY, WEBHOOK_SECRET

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SESSION_FORM = {
    "mode": "payment",
    "line_items[0][price_data][currency]": "eur",
    "line_items[0][price_data][unit_amount]": "8900",
    "line_items[0][price_data][product_data][name]": "Batch B-2026-07 Rye — No. 17 of 240",
    "line_items[0][quantity]": "1",
    "line_items[1][price_data][currency]": "eur",
    "line_items[1][price_data][unit_amount]": "450",
    "line_items[1][price_data][product_data][name]": "Gift wrap <b>",
    "line_items[1][quantity]": "2",
    "customer_email": "ada@example.com",
    "metadata[hold_id]": "12",
    "shipping_address_collection[allowed_countries][0]": "IE",
    "shipping_address_collection[allowed_countries][1]": "GB",
    "success_url": "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://shop.example/checkout/cancel",
}
BUYER = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "line1": "12 Harbour Road",
    "city": "Cobh",
    "postal_code": "P24 A123",
    "country": "IE",
}


@pytest.fixture
def sim_app() -> Iterator[Flask]:
    app = create_sim_app(None, WEBHOOK_SECRET, public_url="https://pay.example")
    yield app
    app.extensions["stripe_sim"].close()


@pytest.fixture
def simulator(sim_app: Flask) -> Simulator:
    return sim_app.extensions["stripe_sim"]


@pytest.fixture
def browser(sim_app: Flask) -> FlaskClient:
    return sim_app.test_client()


@pytest.fixture
def session(browser: FlaskClient) -> dict:
    response = browser.post("/v1/checkout/sessions", data=SESSION_FORM, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json


def page_path(session: dict) -> str:
    assert session["url"].startswith("https://pay.example/pay/")
    return session["url"].removeprefix("https://pay.example")


def test_the_page_shows_the_items_total_and_the_three_choices(browser, session):
    page = browser.get(page_path(session))

    html = page.text
    assert page.status_code == 200
    assert "Test payment — simulator" in html
    assert "Batch B-2026-07 Rye — No. 17 of 240" in html
    assert "Gift wrap &lt;b&gt;" in html
    assert "€89.00" in html and "€9.00" in html
    assert "€98.00" in html
    assert 'value="ada@example.com"' in html
    assert '<option value="IE" selected>Ireland</option>' in html
    assert '<option value="GB">United Kingdom</option>' in html
    assert html.count("<option") == 2
    for field in ("email", "name", "line1", "city", "postal_code", "country"):
        assert f'<label for="{field}">' in html
    for label in ("Pay", "Decline", "Cancel"):
        assert f">{label}</button>" in html
    assert "<script" not in html and "src=" not in html and "<link" not in html  # no external assets


def test_pay_completes_the_session_and_returns_to_the_success_url(browser, session, simulator):
    response = browser.post(page_path(session), data={**BUYER, "action": "pay"})

    assert response.status_code == 303
    assert response.headers["Location"] == f"https://shop.example/checkout/success?session_id={session['id']}"
    paid = simulator.sessions[session["id"]]
    assert (paid["status"], paid["payment_status"], paid["url"]) == ("complete", "paid", None)
    assert paid["customer_details"]["email"] == "ada@example.com"
    assert paid["customer_details"]["name"] == "Ada Lovelace"
    shipping = paid["collected_information"]["shipping_details"]
    assert shipping["name"] == "Ada Lovelace"
    assert shipping["address"] == {
        "line1": "12 Harbour Road",
        "line2": None,
        "city": "Cobh",
        "postal_code": "P24 A123",
        "state": None,
        "country": "IE",
    }
    intent = simulator.payment_intents[paid["payment_intent"]]
    assert (intent["status"], intent["amount"]) == ("succeeded", 9800)
    assert simulator.charges[intent["latest_charge"]]["paid"] is True
    assert [event["type"] for event in simulator.events.values()][-1] == "checkout.session.completed"


def test_cancel_returns_to_the_cancel_url_and_leaves_the_session_open(browser, session, simulator):
    response = browser.post(page_path(session), data={"action": "cancel"})

    assert response.status_code == 303
    assert response.headers["Location"] == "https://shop.example/checkout/cancel"
    assert simulator.sessions[session["id"]]["status"] == "open"
    assert simulator.events == {}


def test_decline_says_the_card_was_declined_and_changes_nothing(browser, session, simulator):
    response = browser.post(page_path(session), data={**BUYER, "action": "decline"})

    assert response.status_code == 402
    assert "Your card was declined." in response.text
    assert simulator.sessions[session["id"]]["status"] == "open"
    assert simulator.events == {}


def test_missing_details_are_shown_next_to_their_fields(browser, session, simulator):
    response = browser.post(page_path(session), data={**BUYER, "city": "", "country": "FR", "action": "pay"})

    assert response.status_code == 422
    assert "City is required." in response.text
    assert "We cannot ship to FR." in response.text
    assert (
        'id="city" name="city" type="text" value="" autocomplete="shipping address-level2" required aria-invalid="true"'
        in (response.text)
    )
    assert simulator.sessions[session["id"]]["status"] == "open"


@pytest.mark.parametrize("how", ["paid", "expired"])
def test_a_session_that_is_no_longer_open_cannot_be_paid(browser, session, simulator, how):
    if how == "paid":
        browser.post(page_path(session), data={**BUYER, "action": "pay"})
    else:
        simulator.expire_by_time(session["id"])

    shown = browser.get(page_path(session))
    paid_again = browser.post(page_path(session), data={**BUYER, "action": "pay"})

    assert shown.status_code == paid_again.status_code == 409
    assert "This page is no longer available" in shown.text
    assert len(simulator.payment_intents) == (1 if how == "paid" else 0)


def test_an_unknown_session_page_is_not_found(browser):
    assert browser.get("/pay/cs_test_unknown").status_code == 404


def test_the_receipt_page_shows_the_amount_paid(browser, session, simulator):
    browser.post(page_path(session), data={**BUYER, "action": "pay"})
    charge = next(iter(simulator.charges.values()))

    receipt = browser.get(charge["receipt_url"].removeprefix("https://pay.example"))

    assert receipt.status_code == 200
    assert "€98.00" in receipt.text
