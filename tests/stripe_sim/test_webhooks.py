"""Webhooks signed as Stripe signs them, delivered in the background, with latency, failures, duplicates and holds."""

import threading
import time
from typing import Any

import pytest
import stripe

from storefront.stripe_sim import SimulatorServer, sign_payload

from .support import WEBHOOK_SECRET, create_paid_session, session_params, verified


def test_paying_sends_a_signed_checkout_session_completed(client, control, receiver):
    session = client.v1.checkout.sessions.create(session_params())

    control.post(f"/checkout/sessions/{session.id}/pay", {"name": "Ada Lovelace", "address": {"country": "GB"}})

    hit = receiver.wait_for("checkout.session.completed")[0]
    assert hit.content_type == "application/json; charset=utf-8"
    event = verified(hit)
    completed = event.data.object
    assert (completed.id, completed.status, completed.payment_status) == (session.id, "complete", "paid")
    assert completed.metadata.hold_id == "12"
    assert completed.customer_details.email == "ada@example.com"
    assert completed.collected_information.shipping_details.name == "Ada Lovelace"
    assert completed.collected_information.shipping_details.address.country == "GB"
    assert completed.payment_intent.startswith("pi_")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(hit.payload, hit.signature, "whsec_someone_else", tolerance=300)


def test_a_payment_sends_stripes_events_in_stripes_order(client, control, receiver):
    create_paid_session(client, control)

    receiver.wait_for("checkout.session.completed")

    assert [event["type"] for event in receiver.events()] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]


def test_sign_payload_is_the_header_stripe_computes():
    payload = '{"id": "evt_1", "object": "event"}'
    now = int(time.time())

    header = sign_payload(payload, WEBHOOK_SECRET, now)

    assert header == stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET, now)
    assert stripe.Webhook.construct_event(payload, header, WEBHOOK_SECRET, tolerance=300).id == "evt_1"
    stale = sign_payload(payload, WEBHOOK_SECRET, now - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="outside the tolerance zone"):
        stripe.Webhook.construct_event(payload, stale, WEBHOOK_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace("evt_1", "evt_2"), header, WEBHOOK_SECRET, tolerance=300)


def test_duplicates_deliver_the_same_event_several_times(client, control, receiver, sim):
    control.post("/webhooks", {"duplicates": 5, "enabled_events": ["checkout.session.completed"]})

    create_paid_session(client, control)

    hits = receiver.wait_for("checkout.session.completed", count=5)
    assert len({verified(hit).id for hit in hits}) == 1
    assert sim.wait_for_deliveries()
    assert len(receiver.events()) == 5
    entry = control.events("checkout.session.completed")[0]
    assert (entry["status"], entry["copies"], entry["delivered"]) == ("delivered", 5, 5)
    assert control.events("charge.succeeded")[0]["status"] == "not_sent"


def test_fail_first_makes_the_first_attempts_fail_and_retries(client, control, receiver, sim):
    control.post("/webhooks", {"fail_first": 2, "retry_delays": [0.01] * 7, "enabled_events": ["*"]})
    session = client.v1.checkout.sessions.create(session_params())

    client.v1.checkout.sessions.expire(session.id)

    assert verified(receiver.wait_for("checkout.session.expired")[0]).data.object.id == session.id
    assert sim.wait_for_deliveries()
    attempts = control.events("checkout.session.expired")[0]["attempts"]
    assert [(attempt["attempt"], attempt["status"], attempt["ok"]) for attempt in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]


def test_an_endpoint_answering_errors_is_retried_with_backoff_then_given_up(client, control, receiver, sim):
    control.post("/webhooks", {"retry_delays": [0.01, 0.01, 0.01]})
    receiver.status = 500
    session = client.v1.checkout.sessions.create(session_params())

    client.v1.checkout.sessions.expire(session.id)

    receiver.wait_for("checkout.session.expired", count=4)
    assert sim.wait_for_deliveries()
    entry = control.events("checkout.session.expired")[0]
    assert entry["status"] == "failed"
    assert [attempt["status"] for attempt in entry["attempts"]] == [500, 500, 500, 500]


def test_a_down_endpoint_is_retried_until_it_answers(client, control, receiver, sim):
    control.post("/webhooks", {"retry_delays": [0.01] * 7})
    receiver.fail_next = 3
    session = client.v1.checkout.sessions.create(session_params())

    client.v1.checkout.sessions.expire(session.id)

    receiver.wait_for("checkout.session.expired", count=4)
    assert sim.wait_for_deliveries()
    entry = control.events("checkout.session.expired")[0]
    assert entry["status"] == "delivered"
    assert [attempt["status"] for attempt in entry["attempts"]] == [500, 500, 500, 200]


def test_a_slow_endpoint_never_holds_up_api_responses(client, control, receiver, sim):
    released = threading.Event()
    answer = receiver.wsgi_app

    def slow_endpoint(environ, start_response):
        released.wait(10)
        return answer(environ, start_response)

    receiver.server.app = slow_endpoint
    try:
        session = client.v1.checkout.sessions.create(session_params())
        started = time.monotonic()
        client.v1.checkout.sessions.expire(session.id)
        client.v1.checkout.sessions.retrieve(session.id)
        assert time.monotonic() - started < 2
        assert control.events("checkout.session.expired")[0]["status"] == "pending"
    finally:
        released.set()
    receiver.wait_for("checkout.session.expired")


def test_latency_delays_each_delivery(client, control, receiver):
    control.post("/webhooks", {"latency_seconds": 0.5})
    session = client.v1.checkout.sessions.create(session_params())
    started = time.monotonic()

    client.v1.checkout.sessions.expire(session.id)

    receiver.wait_for("checkout.session.expired")
    assert time.monotonic() - started >= 0.5


def test_held_events_can_be_flushed_in_reverse_order(client, control, receiver, sim):
    control.post(
        "/webhooks", {"hold": True, "enabled_events": ["checkout.session.completed", "checkout.session.expired"]}
    )
    first = client.v1.checkout.sessions.create(session_params())
    second = client.v1.checkout.sessions.create(session_params())
    client.v1.checkout.sessions.expire(first.id)
    control.post(f"/checkout/sessions/{second.id}/pay")
    assert sim.wait_for_deliveries()
    assert receiver.events() == []
    assert [entry["status"] for entry in control.events() if entry["status"] != "not_sent"] == ["held", "held"]

    control.post("/webhooks/flush", {"order": "reverse"})

    receiver.wait_for("checkout.session.expired")
    assert [event["type"] for event in receiver.events()] == ["checkout.session.completed", "checkout.session.expired"]


def test_chosen_held_events_can_be_released_one_by_one(client, control, receiver, sim):
    control.post("/webhooks", {"hold": True, "enabled_events": ["checkout.session.expired"]})
    sessions = [client.v1.checkout.sessions.create(session_params()) for _ in range(2)]
    for session in sessions:
        client.v1.checkout.sessions.expire(session.id)
    held = [entry["event"]["id"] for entry in control.events("checkout.session.expired")]

    control.post("/webhooks/flush", {"event_ids": [held[1]]})
    receiver.wait_for("checkout.session.expired")
    control.post("/webhooks", {"hold": False})

    receiver.wait_for("checkout.session.expired", count=2)
    assert [event["id"] for event in receiver.events()] == [held[1], held[0]]


def test_an_event_can_be_resent(client, control, receiver):
    session = client.v1.checkout.sessions.create(session_params())
    client.v1.checkout.sessions.expire(session.id)
    event_id = verified(receiver.wait_for("checkout.session.expired")[0]).id

    control.post(f"/events/{event_id}/resend")

    hits = receiver.wait_for("checkout.session.expired", count=2)
    assert {verified(hit).id for hit in hits} == {event_id}


def test_sessions_expire_when_their_time_passes(client, control, receiver):
    session = client.v1.checkout.sessions.create(session_params())
    later = client.v1.checkout.sessions.create(session_params(expires_at=int(time.time()) + 3 * 3600))

    control.post("/clock", {"advance_seconds": 32 * 60})

    event = verified(receiver.wait_for("checkout.session.expired")[0])
    assert event.data.object.id == session.id
    assert event.request.to_dict() == {"id": None, "idempotency_key": None}
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert client.v1.checkout.sessions.retrieve(later.id).status == "open"


def test_the_sweeper_expires_sessions_without_any_request(receiver):
    clock_offset = [0.0]
    with SimulatorServer(
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        clock=lambda: time.time() + clock_offset[0],
        expiry_interval=0.05,
    ) as server:
        session = server.simulator.create_session(as_form_values(session_params()), server.url)
        clock_offset[0] = 31 * 60 + 1

        event = verified(receiver.wait_for("checkout.session.expired")[0])

    assert event.data.object.id == session["id"]


def test_expire_by_time_control_expires_one_session(client, control, receiver):
    session = client.v1.checkout.sessions.create(session_params())

    expired = control.post(f"/checkout/sessions/{session.id}/expire-by-time")
    refused = control.post(f"/checkout/sessions/{session.id}/expire-by-time", expect=409)

    assert expired["status"] == "expired"
    assert refused["error"]["type"] == "invalid_request_error"
    assert verified(receiver.wait_for("checkout.session.expired")[0]).data.object.id == session.id


def test_paying_through_the_controls_can_decline_and_refuses_closed_sessions(client, control):
    session = client.v1.checkout.sessions.create(session_params())

    declined = control.post(f"/checkout/sessions/{session.id}/pay", {"decline": True}, expect=402)
    control.post(f"/checkout/sessions/{session.id}/pay")
    again = control.post(f"/checkout/sessions/{session.id}/pay", expect=409)

    assert (declined["error"]["type"], declined["error"]["code"]) == ("card_error", "card_declined")
    assert again["error"]["message"].startswith("This Checkout Session is no longer available")


def test_reset_forgets_everything(client, control, sim):
    create_paid_session(client, control)
    control.post("/faults", {"path": "/v1/refunds", "status": 500})

    control.post("/reset")

    assert control.get("/events")["data"] == []
    assert control.get("/faults")["faults"] == []
    assert sim.simulator.sessions == {}


def as_form_values(value: Any) -> Any:
    """Params as the simulator sees them once form-decoded: every scalar a string."""
    if isinstance(value, dict):
        return {key: as_form_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_form_values(item) for item in value]
    return str(value)
