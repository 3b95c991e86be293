"""Shipping on the payment page, end to end through the simulator: the shop asks for the units and one flat shipping
rate, the buyer pays both, and only that payment becomes an order; the units alone are refunded, never an order."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from storefront.domain.audit import audit
from storefront.models import Hold, Order, Release, UnitStatus, UnmatchedPayment
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.payments import event_for, hold_webhooks, hold_with_checkout, numbers_with_status, pay, post_event

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def release_id(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=4, on_sale_at=ON_SALE, limit=2, price=8900)
    release.shipping_amount = 600
    session.commit()
    return release.id


def gateway_session(sim, session_id: str) -> dict:
    response = requests.get(f"{sim.url}/v1/checkout/sessions/{session_id}", auth=(STRIPE_TEST_KEY, ""), timeout=10)
    response.raise_for_status()
    return response.json()


def test_the_buyer_pays_the_units_and_the_shipping_once_and_gets_the_order(
    app, session, client, clock, stripe_sim, release_id
):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock(), quantity=2)

    asked = gateway_session(stripe_sim, hold.payment_session_id)
    assert (asked["amount_subtotal"], asked["amount_total"], asked["shipping_cost"]["amount_total"]) == (
        17800,
        18400,
        600,
    )
    assert hold.expected_amount == 18400
    pay(stripe_sim, hold.payment_session_id)
    response = post_event(client, event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id))

    assert response.status_code == 200
    order = session.scalar(select(Order))
    assert (order.amount_total, order.unit_amount, order.shipping_amount) == (18400, 8900, 600)
    assert [unit.number for unit in order.units] == [1, 2]
    assert audit(session, clock()) == []


def test_free_shipping_sends_no_shipping_rate(app, session, clock, stripe_sim, release_id):
    session.get(Release, release_id).shipping_amount = 0
    session.commit()

    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())

    asked = gateway_session(stripe_sim, hold.payment_session_id)
    assert (asked["amount_total"], asked["shipping_options"], asked["shipping_cost"]) == (8900, [], None)
    assert (hold.shipping_amount, hold.expected_amount) == (0, 8900)


def test_the_units_paid_without_the_shipping_are_refunded_and_never_an_order(
    app, session, client, clock, stripe_sim, release_id
):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    pay(stripe_sim, hold.payment_session_id)
    event = event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)
    event["id"] += "_altered"
    event["data"]["object"].update(amount_total=8900, shipping_cost=None)

    response = post_event(client, event)  # signed with the shop's own secret: authentic, but not what it asked for

    assert response.status_code == 200
    assert session.scalar(select(func.count()).select_from(Order)) == 0
    unmatched = session.scalar(select(UnmatchedPayment))
    assert "paid 8900 EUR where the shop asked for 9500 EUR" in unmatched.reason
    assert [(refund.reason, refund.amount) for refund in unmatched.refunds] == [("unmatched_payment", 8900)]
    assert session.get(Hold, hold.id).status == "released"
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 2, 3, 4]
    assert audit(session, clock()) == []
