"""Helpers for tests that pay: open a real Checkout Session on the simulator, pay it, fetch and post its events."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import requests
from sqlalchemy import func, select

from storefront.checkout import flows
from storefront.domain.inventory import Buyer, claim
from storefront.extensions import db
from storefront.models import Hold, Unit, UnitStatus
from storefront.payments import gateway
from storefront.shop.views import checkout_settings
from storefront.stripe_sim import sign_payload
from storefront.unit_of_work import write_transaction
from tests.conftest import WEBHOOK_SECRET


def hold_with_checkout(app, release_id: int, email: str, now, quantity: int = 1, number: int | None = None) -> Hold:
    """Claim units and open their Checkout Session, as the reserve button does."""
    with app.test_request_context(base_url="http://shop.test"):
        with write_transaction(db.session):
            hold = claim(db.session, release_id, quantity, Buyer(email), now, timedelta(minutes=10), number=number)
            settings = checkout_settings(hold)
        flows.start_checkout(db.session, gateway(), hold.id, now, settings)
        return db.session.get(Hold, hold.id)


def sim_post(sim, path: str, body: dict | None = None) -> dict:
    response = requests.post(f"{sim.url}{path}", json=body or {}, timeout=10)
    response.raise_for_status()
    return response.json()


def hold_webhooks(sim) -> None:
    """Keep every event in the simulator until a test posts it itself."""
    sim_post(sim, "/_sim/webhooks", {"hold": True})


def pay(sim, session_id: str, **buyer) -> dict:
    return sim_post(sim, f"/_sim/checkout/sessions/{session_id}/pay", buyer)


def events(sim, event_type: str) -> list[dict]:
    response = requests.get(f"{sim.url}/_sim/events", params={"type": event_type}, timeout=10)
    response.raise_for_status()
    return [entry["event"] for entry in response.json()["data"]]


def event_for(sim, event_type: str, session_id: str) -> dict:
    """The simulator's event of this type whose object is (or belongs to) this session."""
    for event in events(sim, event_type):
        data = event["data"]["object"]
        if session_id in (data.get("id"), data.get("metadata", {}).get("session")):
            return event
    raise AssertionError(f"no {event_type} event for {session_id}")


def post_event(client, event: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None, tamper=None):
    """Deliver an event to the shop's webhook, signed as Stripe signs it; `tamper` edits the body after signing."""
    payload = json.dumps(event)
    signature = sign_payload(payload, secret, timestamp if timestamp is not None else int(time.time()))
    body = tamper(payload) if tamper else payload
    return client.post(
        "/stripe/webhook", data=body, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


def unit_statuses(session, release_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Unit.status, func.count()).where(Unit.release_id == release_id).group_by(Unit.status)
    ).all()
    return {status: count for status, count in rows}


def numbers_with_status(session, release_id: int, status: UnitStatus) -> list[int]:
    return list(
        session.scalars(
            select(Unit.number).where(Unit.release_id == release_id, Unit.status == status).order_by(Unit.number)
        )
    )


class StalledStripe:
    """The simulator holds matching requests until the test lets them go: Stripe answering after the shop gave up.

    The shop's side waits its own timeout; the test never guesses how long Stripe takes. `stalled_requests` counts
    the requests held so far, `release()` lets Stripe carry on, and `wait_answered()` returns once Stripe has
    handled every held request in full (the session created, the refund made...), whatever the shop did meanwhile.
    """

    # A fault's delay that means "until released"; a stall nobody releases still ends, and fails the test.
    MARKER_SECONDS = 3600.0

    def __init__(self, sim, request, *, method: str, path: str, count: int | None = 1) -> None:
        """Stall the next `count` (None: every) `method path` request; `request` is the test's (ends with it)."""
        monkeypatch = request.getfixturevalue("monkeypatch")
        self.released = threading.Event()
        self.stalled_requests = 0
        self.answered_requests = 0
        self._changed = threading.Condition()
        self._here = threading.local()
        simulator = sim.simulator
        original_pause, original_app = simulator.pause, sim.app.wsgi_app

        def pause(seconds: float) -> None:
            if seconds != self.MARKER_SECONDS:
                return original_pause(seconds)
            self._here.stalled = True
            with self._changed:
                self.stalled_requests += 1
                self._changed.notify_all()
            if not self.released.wait(timeout=60):
                raise AssertionError("the stalled Stripe request was never released")

        def wsgi_app(environ, start_response):
            self._here.stalled = False
            try:
                return original_app(environ, start_response)
            finally:
                if self._here.stalled:
                    with self._changed:
                        self.answered_requests += 1
                        self._changed.notify_all()

        monkeypatch.setattr(simulator, "pause", pause)
        monkeypatch.setattr(sim.app, "wsgi_app", wsgi_app)
        request.addfinalizer(self.release)  # a failed test leaves no request of the shared simulator waiting
        fault = {"method": method, "path": path, "delay_seconds": self.MARKER_SECONDS, "count": count}
        sim_post(sim, "/_sim/faults", fault)

    def release(self) -> None:
        self.released.set()

    def wait_stalled(self, requests: int = 1, timeout: float = 10) -> None:
        """Return once `requests` requests are being held (the shop's call is on the wire, Stripe has not answered)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.stalled_requests >= requests, timeout), "nothing was stalled"

    def wait_answered(self, timeout: float = 10) -> None:
        """Let Stripe go on, and return once it has finished every request it held."""
        assert self.stalled_requests, "no request reached the stalled path"
        self.release()
        with self._changed:
            finished = self._changed.wait_for(lambda: self.answered_requests == self.stalled_requests, timeout)
        assert finished, "Stripe did not finish the requests it held"


def short_gateway_timeout(app, seconds: float) -> None:
    """Give up on Stripe after `seconds` from now on (the app's gateway is rebuilt): a timeout costs little waiting."""
    app.config["STRIPE_TIMEOUT_SECONDS"] = seconds
    app.extensions.pop("payments_gateway", None)
