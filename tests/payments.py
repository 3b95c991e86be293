"""Helpers for tests that pay: open a real Checkout Session on the simulator, pay it, fetch and post its events."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import requests
from sqlalchemy import func, select

from storefront import payment_flows
from storefront.domain.inventory import Buyer, claim
from storefront.extensions import db
from storefront.models import Hold, Unit, UnitStatus
from storefront.stripe_sim import sign_payload
from tests.conftest import WEBHOOK_SECRET


def hold_with_checkout(app, release_id: int, email: str, now, quantity: int = 1, number: int | None = None) -> Hold:
    """Claim units and open their Checkout Session, as the reserve button does."""
    with app.test_request_context(base_url="http://shop.test"):
        db.session.commit()  # the claim begins its own (write) transaction
        hold = claim(db.session, release_id, quantity, Buyer(email), now, timedelta(minutes=10), number=number)
        db.session.commit()
        payment_flows.start_checkout(db.session, hold.id, now)
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
