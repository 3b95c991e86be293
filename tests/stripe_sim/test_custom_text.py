"""Checkout's `custom_text` (a message beside the Pay button and elsewhere) and the page's business name and way back,
as Stripe validates, returns and shows them."""

from collections.abc import Iterator

import pytest
import stripe
from flask import Flask

from storefront.stripe_sim import create_sim_app

from .support import API_KEY, WEBHOOK_SECRET, session_params

DEADLINE = "No. 17 of 240 is held for you until 10:42 IST. Pay before then to make it yours."


def test_custom_text_is_returned_as_stripe_returns_it(client):
    session = client.v1.checkout.sessions.create(session_params(custom_text={"submit": {"message": DEADLINE}}))

    assert session.custom_text.to_dict() == {
        "after_submit": None,
        "shipping_address": None,
        "submit": {"message": DEADLINE},
        "terms_of_service_acceptance": None,
    }
    assert client.v1.checkout.sessions.retrieve(session.id).custom_text.submit.message == DEADLINE


def test_an_empty_string_leaves_a_place_empty(client):
    texts = {"submit": "", "after_submit": {"message": "Thank you."}}
    session = client.v1.checkout.sessions.create(session_params(custom_text=texts))

    assert session.custom_text.submit is None
    assert session.custom_text.after_submit.message == "Thank you."


@pytest.mark.parametrize(
    ("custom_text", "param", "message"),
    [
        ({"footer": {"message": "x"}}, "custom_text[footer]", "Received unknown parameter: custom_text[footer]"),
        ({"submit": {"message": ""}}, "custom_text[submit][message]", "You passed an empty string"),
        ({"submit": {"message": "x" * 1201}}, "custom_text[submit][message]", "must be at most 1200 characters"),
        ({"submit": {"message": "x", "font": "big"}}, "custom_text[submit][font]", "unknown parameter"),
        ({"submit": "Pay now"}, "custom_text[submit]", "Invalid object"),
        ("Pay now", "custom_text", "Invalid object"),
    ],
)
def test_a_badly_shaped_custom_text_is_refused_like_stripe(client, sim, custom_text, param, message):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(session_params(custom_text=custom_text))

    assert raised.value.http_status == 400
    assert raised.value.param == param
    assert message in raised.value.user_message
    assert sim.simulator.sessions == {}


@pytest.fixture
def sim_app() -> Iterator[Flask]:
    app = create_sim_app(None, WEBHOOK_SECRET, public_url="https://pay.example", business_name="Small Batch")
    yield app
    app.extensions["stripe_sim"].close()


def test_the_page_shows_the_shops_name_the_way_back_and_the_message_by_the_pay_button(sim_app):
    browser = sim_app.test_client()
    form = {
        "mode": "payment",
        "line_items[0][price_data][currency]": "eur",
        "line_items[0][price_data][unit_amount]": "8900",
        "line_items[0][price_data][product_data][name]": "Rye — No. 17 of 240",
        "line_items[0][quantity]": "1",
        "custom_text[submit][message]": DEADLINE + " <b>",
        "success_url": "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/holds/tok",
    }
    created = browser.post("/v1/checkout/sessions", data=form, headers={"Authorization": f"Bearer {API_KEY}"})

    page = browser.get(created.json["url"].removeprefix("https://pay.example")).text

    assert '<p class="merchant__name">Small Batch</p>' in page
    assert '<a class="merchant__back" href="https://shop.example/holds/tok">' in page
    assert "Back to Small Batch</a>" in page
    assert f'<p class="submit-message" id="submit-message">{DEADLINE} &lt;b&gt;</p>' in page
    assert page.index("submit-message") < page.index('value="pay"')
    assert 'aria-describedby="submit-message">Pay</button>' in page
