"""Refunding an order that paid for shipping: each unit refunds its price, and the refund of the last units also
returns the shipping, so refunding everything refunds everything paid, through Stripe (the simulator)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.models import Order, Unit
from storefront.payments import gateway
from tests.factories import make_release
from tests.payments import hold_with_checkout, pay
from tests.refund_data import fresh
from tests.web.producer.conftest import csrf_from

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def order_of_two(app, session, clock, stripe_sim) -> Order:
    """Bob's order of Nos. 1 and 2 at €89.00, with €6.00 shipping, paid on the simulator."""
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3, price=8900)
    release.shipping_amount = 600
    session.commit()
    hold = hold_with_checkout(app, release.id, "bob@example.com", clock(), quantity=2)
    pay(stripe_sim, hold.payment_session_id)
    result = flows.complete_checkout(session, gateway(), gateway().retrieve_session(hold.payment_session_id), clock())
    return session.get(Order, result.order.id)


def test_the_refund_page_says_the_last_units_return_the_shipping(producer_client, order_of_two):
    text = producer_client.get(f"/producer/orders/{order_of_two.id}/refund").get_data(as_text=True)

    amounts = re.search(r"data-amounts='([^']*)'", text).group(1)
    assert json.loads(html.unescape(amounts)) == ["€0.00", "€89.00", "€184.00"]
    assert "<dd data-remaining>€184.00</dd>" in text
    assert "refunding the last of them also returns the €6.00 shipping" in " ".join(text.split())
    order_page = producer_client.get(f"/producer/orders/{order_of_two.id}").get_data(as_text=True)
    assert "<dd data-shipping>€6.00</dd>" in order_page


def test_refunding_the_whole_order_returns_everything_paid(producer_client, session, clock, order_of_two):
    page = producer_client.get(f"/producer/orders/{order_of_two.id}/refund").get_data(as_text=True)
    units = session.scalars(select(Unit.id).where(Unit.order_id == order_of_two.id).order_by(Unit.number)).all()

    response = producer_client.post(
        f"/producer/orders/{order_of_two.id}/refund",
        data={"csrf_token": csrf_from(page), "reason": "lost_in_transit", "refund": [str(unit) for unit in units]},
    )

    assert response.status_code == 303
    order = fresh(session, Order, order_of_two.id)
    (refund,) = order.refunds
    assert (refund.status, refund.amount, order.status) == ("succeeded", 18400, "refunded")
    charge = gateway().client.v1.payment_intents.retrieve(order.payment_intent_id, {"expand": ["latest_charge"]})
    assert charge.latest_charge.amount_refunded == 18400
    assert audit(session, clock()) == []
