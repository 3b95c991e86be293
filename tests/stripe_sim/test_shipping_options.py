"""Shipping options on a Checkout Session: validated as Stripe does, charged on top of the items, shown to the buyer."""

import pytest
import stripe
from flask import Flask

from storefront.stripe_sim import create_sim_app

from .support import API_KEY, WEBHOOK_SECRET, create_paid_session, session_params


def flat_rate(amount: object = 600, currency: str = "eur", **rate: object) -> dict:
    return {
        "shipping_rate_data": {
            "type": "fixed_amount",
            "fixed_amount": {"amount": amount, "currency": currency},
            "display_name": "Shipping",
            **rate,
        }
    }


def test_the_first_rate_is_charged_on_top_of_the_items_and_shown_like_stripe(client, control):
    estimate = {"minimum": {"unit": "business_day", "value": 1}, "maximum": {"unit": "business_day", "value": 3}}
    session = client.v1.checkout.sessions.create(
        session_params(shipping_options=[flat_rate(delivery_estimate=estimate)])
    )

    assert (session.amount_subtotal, session.amount_total) == (8900, 9500)
    assert session.total_details.amount_shipping == 600
    cost = session.shipping_cost
    assert (cost.amount_subtotal, cost.amount_tax, cost.amount_total) == (600, 0, 600)
    assert cost.shipping_rate.startswith("shr_")
    assert [option.to_dict() for option in session.shipping_options] == [
        {"shipping_amount": 600, "shipping_rate": cost.shipping_rate}
    ]

    paid = create_paid_session(client, control, shipping_options=[flat_rate()])
    assert client.v1.payment_intents.retrieve(paid.payment_intent).amount == 9500


def test_a_session_without_shipping_options_charges_the_items_alone(client):
    session = client.v1.checkout.sessions.create(session_params())

    assert session.amount_total == 8900
    assert (session.shipping_cost, session.shipping_options) == (None, [])


@pytest.mark.parametrize(
    ("overrides", "param", "message"),
    [
        ({"shipping_options": [flat_rate(currency="gbp")]},
         "shipping_options[0][shipping_rate_data][fixed_amount][currency]", "must match the currency"),
        ({"shipping_options": [flat_rate(amount=-1)]},
         "shipping_options[0][shipping_rate_data][fixed_amount][amount]", "greater than or equal to 0"),
        ({"shipping_options": [flat_rate(amount="6.00")]},
         "shipping_options[0][shipping_rate_data][fixed_amount][amount]", "Invalid integer"),
        ({"shipping_options": [{"shipping_rate_data": {"type": "fixed_amount",
                                                       "fixed_amount": {"amount": 600, "currency": "eur"}}}]},
         "shipping_options[0][shipping_rate_data][display_name]", "Missing required param"),
        ({"shipping_options": [flat_rate(type="calculated")]},
         "shipping_options[0][shipping_rate_data][type]", "must be one of fixed_amount"),
        ({"shipping_options": [flat_rate()] * 6}, "shipping_options", "up to 5 shipping options"),
        ({"shipping_options": [flat_rate()], "shipping_address_collection": None},
         "shipping_options", "shipping_address_collection"),
        ({"shipping_options": [{"shipping_rate": "shr_123"}]},
         "shipping_options[0][shipping_rate]", "No such shipping rate"),
    ],
)  # fmt: skip
def test_bad_shipping_options_are_refused_and_nothing_is_created(client, sim, overrides, param, message):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(session_params(**overrides))

    assert raised.value.http_status == 400
    assert raised.value.param == param
    assert message in raised.value.user_message
    assert sim.simulator.sessions == {}


def test_the_payment_page_shows_the_shipping_line_and_the_total():
    app: Flask = create_sim_app(None, WEBHOOK_SECRET, public_url="https://pay.example")
    try:
        browser = app.test_client()
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": "eur",
            "line_items[0][price_data][unit_amount]": "8900",
            "line_items[0][price_data][product_data][name]": "Batch B-2026-07 Rye — No. 17 of 240",
            "line_items[0][quantity]": "2",
            "shipping_address_collection[allowed_countries][0]": "IE",
            "shipping_options[0][shipping_rate_data][type]": "fixed_amount",
            "shipping_options[0][shipping_rate_data][fixed_amount][amount]": "600",
            "shipping_options[0][shipping_rate_data][fixed_amount][currency]": "eur",
            "shipping_options[0][shipping_rate_data][display_name]": "Shipping",
            "success_url": "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        }
        created = browser.post("/v1/checkout/sessions", data=form, headers={"Authorization": f"Bearer {API_KEY}"})
        assert created.status_code == 200, created.text

        html = browser.get(created.json["url"].removeprefix("https://pay.example")).text

        assert "Pay €184.00" in html
        assert 'Subtotal</th><td class="amount">€178.00' in html
        assert 'Shipping</th><td class="amount">€6.00' in html
    finally:
        app.extensions["stripe_sim"].close()
