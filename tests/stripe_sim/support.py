"""Helpers for the simulator's tests: a webhook endpoint that records deliveries, /_sim controls, shop-like params."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import stripe
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API_KEY = "sk_test_simulator"
API_VERSION = "2026-10-28.endive"
WEBHOOK_SECRET = "whsec_simulator_tests"
EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "stripe" / "fixtures.json"


@dataclasses.dataclass
class ReceivedWebhook:
    payload: str
    signature: str | None
    content_type: str | None

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.payload)


class WebhookReceiver:
    """A tiny webhook endpoint: records every POST and answers `status` (or fails the first `fail_next`)."""

    def __init__(self) -> None:
        self.received: list[ReceivedWebhook] = []
        self.status = 200
        self.fail_next = 0
        self.condition = threading.Condition()
        self.server = make_server("127.0.0.1", 0, self.wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/stripe/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.condition:
            status = self.status
            if self.fail_next:
                self.fail_next -= 1
                status = 500
            self.received.append(
                ReceivedWebhook(
                    request.get_data(as_text=True), request.headers.get("Stripe-Signature"), request.content_type
                )
            )
            self.condition.notify_all()
        return Response("received", status=status)(environ, start_response)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self.condition:
            return [hit.event for hit in self.received if event_type in {None, hit.event["type"]}]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 10) -> list[ReceivedWebhook]:
        """Block until `count` deliveries of `event_type` arrived; fail the test if they do not."""
        with self.condition:
            arrived = self.condition.wait_for(
                lambda: len([hit for hit in self.received if hit.event["type"] == event_type]) >= count, timeout
            )
            hits = [hit for hit in self.received if hit.event["type"] == event_type]
        assert arrived, f"expected {count} {event_type} deliveries, got {len(hits)}"
        return hits

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Control:
    """The /_sim test-control endpoints over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        response = self.http.post(f"{self.base_url}/_sim{path}", json=body, timeout=10)
        assert response.status_code == expect, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = self.http.get(f"{self.base_url}/_sim{path}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def delete(self, path: str) -> Any:
        return self.http.delete(f"{self.base_url}/_sim{path}", timeout=10).json()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        entries = self.get("/events")["data"]
        return [entry for entry in entries if event_type in {None, entry["event"]["type"]}]


def session_params(**overrides: Any) -> dict[str, Any]:
    """A Checkout Session like the shop creates for one held unit."""
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "eur",
                    "unit_amount": 8900,
                    "product_data": {"name": "Batch B-2026-07 Rye — No. 17 of 240"},
                },
                "quantity": 1,
            }
        ],
        "metadata": {"hold_id": "12"},
        "client_reference_id": "hold-12",
        "customer_email": "ada@example.com",
        "payment_method_types": ["card"],
        "shipping_address_collection": {"allowed_countries": ["IE", "GB"]},
        "expires_at": int(time.time()) + 31 * 60,
        "success_url": "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/checkout/cancel",
    }
    params.update(overrides)
    return params


def verified(hit: ReceivedWebhook) -> stripe.Event:
    """Check a delivery exactly as the shop's webhook view will."""
    return stripe.Webhook.construct_event(hit.payload, hit.signature, WEBHOOK_SECRET, tolerance=300)


def create_paid_session(client: stripe.StripeClient, control: Control, **overrides: Any) -> stripe.checkout.Session:
    """A session the buyer has paid for, through the same path as the hosted page's Pay button."""
    session = client.v1.checkout.sessions.create(session_params(**overrides))
    control.post(f"/checkout/sessions/{session.id}/pay", {"name": "Ada Lovelace"})
    return client.v1.checkout.sessions.retrieve(session.id)


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Poll something another thread will change; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)
