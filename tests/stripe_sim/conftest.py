"""The simulator on a free port, the real stripe SDK pointed at it, and a webhook endpoint that records deliveries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe

from storefront.stripe_sim import SimulatorServer

from .support import API_KEY, API_VERSION, EXAMPLES, WEBHOOK_SECRET, Control, WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def sim(receiver: WebhookReceiver) -> Iterator[SimulatorServer]:
    server = SimulatorServer(webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def control(sim: SimulatorServer) -> Iterator[Control]:
    controls = Control(sim.url)
    yield controls
    controls.http.close()


@pytest.fixture
def make_client(sim: SimulatorServer) -> Iterator[Callable[..., stripe.StripeClient]]:
    """Build StripeClients the way the shop does; their HTTP sessions are closed after the test."""
    http_clients: list[stripe.RequestsClient] = []

    def build(api_key: str = API_KEY, timeout: float = 5) -> stripe.StripeClient:
        http_client = stripe.RequestsClient(timeout=timeout)
        http_clients.append(http_client)
        return stripe.StripeClient(
            api_key,
            stripe_version=API_VERSION,
            base_addresses={"api": sim.url},
            http_client=http_client,
            max_network_retries=0,
        )

    yield build
    for http_client in http_clients:
        http_client.close()


@pytest.fixture
def client(make_client: Callable[..., stripe.StripeClient]) -> stripe.StripeClient:
    return make_client()


@pytest.fixture(scope="session")
def stripe_examples() -> dict[str, Any]:
    """Stripe's published example objects, from the shared folder beside the project."""
    if not EXAMPLES.exists():
        pytest.skip(f"Stripe's example objects are not available ({EXAMPLES.resolve()} is absent)")
    return json.loads(EXAMPLES.read_text())["resources"]
