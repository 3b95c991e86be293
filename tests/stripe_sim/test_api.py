"""The REST API through the real stripe SDK over HTTP: shapes, errors, idempotency, faults, expiry and refunds."""

import time

import pytest
import requests
import stripe

from .support import API_KEY, create_paid_session, session_params, verified, wait_until


def top_level_fields(example: dict) -> set[str]:
    return set(example)


# --- Checkout Sessions -----------------------------------------------------------------------------------------


def test_created_session_has_the_fields_of_stripes_example(client, sim, stripe_examples):
    params = session_params()
    session = client.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12-attempt-1"})

    assert set(session.to_dict()) == top_level_fields(stripe_examples["checkout.session"])
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_subtotal, session.amount_total, session.currency) == (8900, 8900, "eur")
    assert session.url == f"{sim.url}/pay/{session.id}"
    assert session.payment_intent is None
    assert session.metadata.to_dict() == {"hold_id": "12"}
    assert session.client_reference_id == "hold-12"
    assert session.customer_email == "ada@example.com"
    assert session.expires_at == params["expires_at"]
    assert session.shipping_address_collection.allowed_countries == ["IE", "GB"]
    assert session.payment_method_types == ["card"]
    assert session.success_url == params["success_url"]


def test_a_session_can_be_retrieved_with_its_line_items(client):
    created = client.v1.checkout.sessions.create(
        session_params(
            line_items=[
                {
                    "price_data": {"currency": "eur", "unit_amount": 8900, "product_data": {"name": "No. 17"}},
                    "quantity": 1,
                },
                {
                    "price_data": {"currency": "eur", "unit_amount": 1200, "product_data": {"name": "Tote"}},
                    "quantity": 2,
                },
            ]
        )
    )

    retrieved = client.v1.checkout.sessions.retrieve(created.id)
    items = client.v1.checkout.sessions.line_items.list(created.id)

    assert retrieved.to_dict() == created.to_dict()
    assert retrieved.amount_total == 8900 + 2 * 1200
    assert items.object == "list"
    assert [(item.description, item.quantity, item.amount_total) for item in items.data] == [
        ("No. 17", 1, 8900),
        ("Tote", 2, 2400),
    ]
    assert all(item.object == "item" and item.price.unit_amount for item in items.data)


def test_the_same_idempotency_key_and_params_replay_the_first_response(client, sim):
    params = session_params()

    first = client.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})
    again = client.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert len(sim.simulator.sessions) == 1


def test_the_same_idempotency_key_with_other_params_is_an_idempotency_error(client, sim):
    client.v1.checkout.sessions.create(session_params(), {"idempotency_key": "hold-12"})

    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.checkout.sessions.create(
            session_params(client_reference_id="hold-13"), {"idempotency_key": "hold-12"}
        )

    assert raised.value.http_status == 400
    assert raised.value.json_body["error"]["type"] == "idempotency_error"
    assert "same parameters" in raised.value.user_message
    assert len(sim.simulator.sessions) == 1


@pytest.mark.parametrize("api_key", ["sk_live_not_for_a_simulator", "pk_test_publishable", "sk_test_with space"])
def test_a_bad_api_key_is_an_authentication_error(make_client, api_key):
    with pytest.raises(stripe.AuthenticationError) as raised:
        make_client(api_key=api_key).v1.checkout.sessions.create(session_params())

    assert raised.value.http_status == 401
    assert raised.value.json_body["error"]["type"] == "invalid_request_error"


def test_only_the_configured_keys_are_accepted_when_given(receiver):
    from storefront.stripe_sim import SimulatorServer

    with SimulatorServer(webhook_url=None, webhook_secret="whsec_x", api_keys={"sk_test_shop"}) as server:
        denied = requests.post(f"{server.url}/v1/checkout/sessions", auth=("sk_test_other", ""), timeout=5)
        allowed = requests.get(f"{server.url}/v1/checkout/sessions", headers={"Authorization": "Bearer sk_test_shop"})

    assert denied.status_code == 401
    assert denied.json()["error"]["message"].startswith("Invalid API Key provided: sk_test_")
    assert allowed.status_code == 200


def test_a_request_without_a_key_gets_stripes_error_json_and_a_request_id(sim):
    response = requests.post(f"{sim.url}/v1/checkout/sessions", data={"mode": "payment"}, timeout=5)

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Request-Id"].startswith("req_")
    assert response.json()["error"]["message"].startswith("You did not provide an API key.")


def test_every_response_carries_a_request_id(sim, client):
    session = client.v1.checkout.sessions.create(session_params())
    with requests.Session() as http:
        responses = [
            http.get(session.url, timeout=5),
            http.get(f"{sim.url}/_sim/events", timeout=5),
            http.get(f"{sim.url}/v1/nowhere", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5),
        ]
    assert session.last_response.request_id.startswith("req_")
    assert all(response.headers["Request-Id"].startswith("req_") for response in responses)
    assert responses[2].status_code == 404
    assert responses[2].json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nowhere)")


@pytest.mark.parametrize(
    ("overrides", "param", "message"),
    [
        ({"success_url": None}, "success_url", "Missing required param: success_url."),
        ({"success_url": "not a url"}, "success_url", "Not a valid URL"),
        ({"expires_at": int(time.time()) + 10 * 60}, "expires_at", "must be at least 30 minutes"),
        ({"expires_at": int(time.time()) + 25 * 3600}, "expires_at", "must be less than 24 hours"),
        ({"mode": "subscription"}, "mode", "only implements mode=payment"),
        ({"customer_email": "not-an-email"}, "customer_email", "Invalid email address"),
        ({"line_items": []}, "line_items", "line item"),
        ({"payment_method_types": ["sepa_debit"]}, "payment_method_types[0]", "sepa_debit is invalid"),
        ({"shipping_address_collection": {"allowed_countries": ["Ireland"]}}, None, "not a supported country"),
        ({"promo_codes": "yes"}, "promo_codes", "Received unknown parameter: promo_codes"),
        ({"client_reference_id": ""}, "client_reference_id", "You passed an empty string"),
    ],
)
def test_invalid_params_are_invalid_request_errors(client, sim, overrides, param, message):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(session_params(**overrides))

    assert raised.value.http_status == 400
    assert message in raised.value.user_message
    if param:
        assert raised.value.param == param
    assert sim.simulator.sessions == {}


@pytest.mark.parametrize(
    ("line_item", "param", "code"),
    [
        ({"price_data": {"currency": "eur", "unit_amount": "89.00", "product_data": {"name": "x"}}, "quantity": 1},
         "line_items[0][price_data][unit_amount]", "parameter_invalid_integer"),
        ({"price_data": {"currency": "eur", "unit_amount": 8900, "product_data": {"name": "x"}}, "quantity": 0},
         "line_items[0][quantity]", None),
        ({"price_data": {"currency": "eur", "unit_amount": 8900}, "quantity": 1},
         "line_items[0][price_data][product_data]", "parameter_missing"),
        ({"price_data": {"currency": "eur", "unit_amount": 8900, "product_data": {}}, "quantity": 1},
         "line_items[0][price_data][product_data]", None),
        ({"price_data": {"unit_amount": 8900, "product_data": {"name": "x"}}, "quantity": 1},
         "line_items[0][price_data][currency]", "parameter_missing"),
        ({"price": "price_123", "quantity": 1}, "line_items[0][price]", "resource_missing"),
    ],
)  # fmt: skip
def test_invalid_line_items_name_the_offending_param(client, line_item, param, code):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(session_params(line_items=[line_item]))

    assert raised.value.param == param
    if code:
        assert raised.value.code == code


def test_an_unknown_session_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.retrieve("cs_test_nope")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
    assert raised.value.user_message == "No such checkout.session: 'cs_test_nope'"


# --- injected faults -------------------------------------------------------------------------------------------


def test_an_injected_500_surfaces_as_an_api_error_once(client, control, sim):
    control.post("/faults", {"method": "POST", "path": "/v1/checkout/sessions", "status": 500, "count": 1})
    params = session_params()

    with pytest.raises(stripe.APIError) as raised:
        client.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})
    retried = client.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})

    assert raised.value.http_status == 500
    assert raised.value.json_body["error"]["type"] == "api_error"
    assert retried.status == "open"
    assert len(sim.simulator.sessions) == 1


def test_faults_match_a_path_prefix_until_cleared(client, control):
    control.post("/faults", {"path_prefix": "/v1/checkout/", "status": 429, "count": None})

    with pytest.raises(stripe.RateLimitError):
        client.v1.checkout.sessions.create(session_params())
    with pytest.raises(stripe.RateLimitError):
        client.v1.checkout.sessions.retrieve("cs_test_whatever")
    control.delete("/faults")

    assert client.v1.checkout.sessions.create(session_params()).status == "open"


def test_a_delay_fault_makes_the_sdk_time_out_and_the_retry_finds_the_session(make_client, control, sim):
    impatient = make_client(timeout=1)
    control.post("/faults", {"method": "POST", "path": "/v1/checkout/sessions", "delay_seconds": 2})
    params = session_params()

    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})
    # The slow request still completes on the server, as it may on Stripe; the retry with the same key replays it.
    wait_until(lambda: len(sim.simulator.sessions) == 1)
    wait_until(lambda: all(stored.status for stored in sim.simulator.idempotency.values()))
    retried = make_client().v1.checkout.sessions.create(params, {"idempotency_key": "hold-12"})

    assert retried.id in sim.simulator.sessions
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"


# --- expiring --------------------------------------------------------------------------------------------------


def test_expiring_an_open_session_sends_checkout_session_expired(client, receiver):
    session = client.v1.checkout.sessions.create(session_params())

    expired = client.v1.checkout.sessions.expire(session.id, options={"idempotency_key": "sweep-12"})

    assert (expired.status, expired.url) == ("expired", None)
    event = verified(receiver.wait_for("checkout.session.expired")[0])
    assert event.data.object.id == session.id
    assert event.data.object.status == "expired"
    assert event.request.idempotency_key == "sweep-12"
    assert event.request.id == expired.last_response.request_id


@pytest.mark.parametrize("status", ["complete", "expired"])
def test_expiring_a_session_that_is_not_open_is_an_invalid_request(client, control, status):
    if status == "complete":
        session = create_paid_session(client, control)
    else:
        session = client.v1.checkout.sessions.expire(client.v1.checkout.sessions.create(session_params()).id)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.expire(session.id)

    assert raised.value.http_status == 400
    assert raised.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. '
        f"This Checkout Session has a status of `{status}`."
    )


# --- payments and refunds --------------------------------------------------------------------------------------


def test_a_paid_session_links_a_payment_intent_and_charge_shaped_like_stripes(client, control, stripe_examples):
    session = create_paid_session(client, control)

    intent = client.v1.payment_intents.retrieve(session.payment_intent)
    charge = client.v1.charges.retrieve(intent.latest_charge)

    assert set(intent.to_dict()) == top_level_fields(stripe_examples["payment_intent"])
    assert set(charge.to_dict()) == top_level_fields(stripe_examples["charge"])
    assert (intent.status, intent.amount, intent.amount_received, intent.currency) == ("succeeded", 8900, 8900, "eur")
    assert (charge.paid, charge.captured, charge.status, charge.amount) == (True, True, "succeeded", 8900)
    assert charge.payment_intent == intent.id
    assert charge.billing_details.email == "ada@example.com"


def test_a_session_can_expand_its_payment_intent_and_charge(client, control):
    session = create_paid_session(client, control)

    expanded = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent.latest_charge"]})

    assert expanded.payment_intent.id == session.payment_intent
    assert expanded.payment_intent.latest_charge.object == "charge"
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.checkout.sessions.retrieve(session.id, {"expand": ["customer_email"]})


def test_a_refund_updates_the_charge_and_sends_charge_refunded(client, control, receiver, stripe_examples):
    session = create_paid_session(client, control)

    refund = client.v1.refunds.create(
        {"payment_intent": session.payment_intent, "reason": "requested_by_customer", "metadata": {"order": "7"}},
        {"idempotency_key": "refund-order-7"},
    )

    assert set(refund.to_dict()) == top_level_fields(stripe_examples["refund"])
    assert (refund.object, refund.status, refund.amount, refund.currency) == ("refund", "succeeded", 8900, "eur")
    assert refund.payment_intent == session.payment_intent
    assert refund.reason == "requested_by_customer"
    assert refund.metadata.to_dict() == {"order": "7"}
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (8900, True)
    refunded = verified(receiver.wait_for("charge.refunded")[0])
    assert refunded.data.object.id == charge.id
    assert refunded.data.object.amount_refunded == 8900
    assert refunded.request.idempotency_key == "refund-order-7"
    assert verified(receiver.wait_for("refund.created")[0]).data.object.id == refund.id


def test_partial_refunds_stop_at_the_amount_paid(client, control):
    session = create_paid_session(client, control)
    intent = client.v1.payment_intents.retrieve(session.payment_intent)

    partial = client.v1.refunds.create({"charge": intent.latest_charge, "amount": 900})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create({"payment_intent": intent.id, "amount": 8001})
    rest = client.v1.refunds.create({"payment_intent": intent.id})
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create({"payment_intent": intent.id})

    assert (partial.amount, rest.amount) == (900, 8000)
    assert too_much.value.code == "amount_too_large"
    assert too_much.value.param == "amount"
    assert "(€80.01) is greater than unrefunded amount on charge (€80.00)" in too_much.value.user_message
    assert again.value.code == "charge_already_refunded"
    assert client.v1.charges.retrieve(intent.latest_charge).refunded is True


def test_refunding_an_unknown_payment_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create({"payment_intent": "pi_missing"})

    assert (raised.value.code, raised.value.param) == ("resource_missing", "payment_intent")


def test_events_are_shaped_like_stripes_and_retrievable(client, control, stripe_examples):
    session = create_paid_session(client, control)
    completed = control.events("checkout.session.completed")[0]["event"]

    event = client.v1.events.retrieve(completed["id"])

    assert set(event.to_dict()) == top_level_fields(stripe_examples["event"])
    assert (event.object, event.type, event.livemode, event.api_version) == (
        "event",
        "checkout.session.completed",
        False,
        "2026-10-28.endive",
    )
    assert event.data.object.id == session.id
    assert event.pending_webhooks == 1
    assert event.request.to_dict() == {"id": None, "idempotency_key": None}


def test_sessions_can_be_listed_newest_first_filtered_and_paged(client, control):
    created = [client.v1.checkout.sessions.create(session_params()) for _ in range(3)]
    paid = create_paid_session(client, control)

    by_payment = client.v1.checkout.sessions.list({"payment_intent": paid.payment_intent})
    first_page = client.v1.checkout.sessions.list({"limit": 2, "status": "open"})
    every_open = [session.id for session in first_page.auto_paging_iter()]

    assert [session.id for session in by_payment.data] == [paid.id]
    assert first_page.has_more is True
    assert every_open == [session.id for session in reversed(created)]
