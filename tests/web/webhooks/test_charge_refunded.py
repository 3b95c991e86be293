"""charge.refunded through the webhook: refunds made in Stripe's dashboard (whole or partial) are reflected on the
order once each, whatever order and however often the events come; the shop's own refund is never counted twice.

Payments and refunds are real ones on the simulator; a dashboard refund is a refund created on the simulator's API
without the shop (no idempotency key of the shop's), and its events are posted to the shop signed as Stripe signs them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.domain.refunds import lease_refund
from storefront.models import Order, OrderEvent, OutboxMessage, Refund, UnitStatus
from storefront.payments import gateway
from storefront.unit_of_work import write_transaction
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.payments import events, hold_webhooks, numbers_with_status, post_event
from tests.refund_data import PRODUCER, fresh, unit_ids
from tests.web.webhooks.test_stripe_webhook import paid_event

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900


@pytest.fixture
def release_id(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release.id


@pytest.fixture
def order(app, session, client, clock, stripe_sim, release_id) -> Order:
    """Ann's order of two units, paid on the simulator and fulfilled through the webhook."""
    _hold, completed = paid_event(app, stripe_sim, release_id, clock(), quantity=2)
    assert post_event(client, completed).status_code == 200
    return session.scalar(select(Order))


def refund_in_dashboard(sim, payment_intent_id: str, amount: int | None = None) -> dict:
    """A refund made in Stripe's dashboard: the shop did not ask for it."""
    data = {"payment_intent": payment_intent_id}
    if amount is not None:
        data["amount"] = amount
    response = requests.post(
        f"{sim.url}/v1/refunds", data=data, headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"}, timeout=5
    )
    response.raise_for_status()
    return response.json()


def refunds_of(session, order_id: int) -> list[tuple[int, str, str | None, bool]]:
    order = fresh(session, Order, order_id)
    return [(r.amount, r.status, r.gateway_refund_id, r.from_gateway) for r in order.refunds]


def timeline(session, order_id: int) -> list[str]:
    session.commit()
    return [
        event.summary
        for event in session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id))
    ]


def refund_mails(session) -> list[str]:
    session.commit()
    return list(session.scalars(select(OutboxMessage.body).where(OutboxMessage.subject.startswith("Refund sent"))))


def test_a_partial_dashboard_refund_is_reflected_once_and_the_order_stays_paid(
    session, client, clock, stripe_sim, order
):
    made = refund_in_dashboard(stripe_sim, order.payment_intent_id, 5000)
    (refunded,) = events(stripe_sim, "charge.refunded")
    assert refunded["data"]["object"]["refunds"]["data"][0]["id"] == made["id"]

    assert post_event(client, refunded).status_code == 200
    assert post_event(client, refunded).get_json() == {"received": True, "duplicate": True}

    assert refunds_of(session, order.id) == [(5000, "succeeded", made["id"], True)]
    order = fresh(session, Order, order.id)
    assert order.status == "paid"  # partly refunded: it still ships its units
    assert numbers_with_status(session, order.release_id, UnitStatus.SOLD) == [1, 2]
    assert timeline(session, order.id)[-1] == "Refunded €50.00 in Stripe's dashboard"
    assert refund_mails(session) == []
    assert audit(session, clock()) == []


def test_dashboard_refunds_arriving_in_reverse_make_the_order_refunded_once(session, client, clock, stripe_sim, order):
    first = refund_in_dashboard(stripe_sim, order.payment_intent_id, 5000)
    rest = refund_in_dashboard(stripe_sim, order.payment_intent_id)  # the rest: €128.00
    earlier, later = events(stripe_sim, "charge.refunded")

    # The later event, listing both refunds, comes first; then the earlier one, listing one.
    assert post_event(client, later).status_code == 200
    assert post_event(client, earlier).status_code == 200

    assert sorted(refunds_of(session, order.id)) == [
        (5000, "succeeded", first["id"], True),
        (2 * PRICE - 5000, "succeeded", rest["id"], True),
    ]
    order = fresh(session, Order, order.id)
    assert order.status == "refunded"
    assert numbers_with_status(session, order.release_id, UnitStatus.SOLD) == [1, 2]  # units stay retired
    assert audit(session, clock()) == []


def test_the_shops_own_refund_seen_in_charge_refunded_is_not_counted_twice(session, client, clock, stripe_sim, order):
    from storefront.domain.refunds import request_refund

    with write_transaction(session):
        refund = request_refund(
            session,
            order.id,
            unit_ids(session, order, [2]),
            unit_ids(session, order, [2]),
            "damaged",
            clock(),
            PRODUCER,
        )
    sent = flows.process_refund(session, gateway(), refund.id, clock())
    assert sent.status == "succeeded"
    (refunded,) = events(stripe_sim, "charge.refunded")
    assert refunded["request"]["idempotency_key"] == f"refund-{refund.id}"

    assert post_event(client, refunded).status_code == 200

    assert refunds_of(session, order.id) == [(PRICE, "succeeded", sent.gateway_refund_id, False)]
    assert fresh(session, Order, order.id).status == "paid"
    assert len(refund_mails(session)) == 1
    assert audit(session, clock()) == []


def test_the_event_of_the_shops_refund_may_come_before_its_answer(session, client, clock, stripe_sim, order):
    from storefront.domain.refunds import request_refund

    with write_transaction(session):
        refund = request_refund(
            session,
            order.id,
            unit_ids(session, order, [2]),
            unit_ids(session, order, [2]),
            "damaged",
            clock(),
            PRODUCER,
        )
        refund_id = refund.id
    with write_transaction(session):
        assert lease_refund(session, refund_id, clock()) == 1
    # The worker's request reaches Stripe, which makes the refund and sends charge.refunded; the worker dies before
    # recording the answer. The event arrives first, naming the shop's request by its idempotency key.
    made = gateway().refund(
        payment_intent_id=order.payment_intent_id, amount=PRICE, idempotency_key=f"refund-{refund_id}", reason="damaged"
    )
    (refunded,) = events(stripe_sim, "charge.refunded")

    assert post_event(client, refunded).status_code == 200

    assert refunds_of(session, order.id) == [(PRICE, "succeeded", made.id, False)]
    assert numbers_with_status(session, order.release_id, UnitStatus.AVAILABLE) == [2, 3]  # No. 2 back on sale
    mails = refund_mails(session)
    assert len(mails) == 1 and "for No. 2 of 3" in mails[0] and "€89.00" in mails[0]
    # Another worker takes the refund over once the lease runs out: Stripe replays the same refund, nothing changes.
    clock.advance(minutes=3)
    flows.process_refund(session, gateway(), refund_id, clock())
    assert refunds_of(session, order.id) == [(PRICE, "succeeded", made.id, False)]
    assert len(refund_mails(session)) == 1
    assert audit(session, clock()) == []


def test_a_charge_refunded_for_a_payment_the_shop_does_not_know_is_ignored(session, client, clock, stripe_sim, order):
    refund_in_dashboard(stripe_sim, order.payment_intent_id, 5000)
    (refunded,) = events(stripe_sim, "charge.refunded")
    refunded["data"]["object"]["payment_intent"] = "pi_someone_else"
    refunded["id"] = "evt_someone_else"

    assert post_event(client, refunded).status_code == 200
    assert refunds_of(session, order.id) == []


def test_garbage_in_a_signed_charge_refunded_is_skipped(session, client, clock, stripe_sim, order):
    refund_in_dashboard(stripe_sim, order.payment_intent_id, 5000)
    (refunded,) = events(stripe_sim, "charge.refunded")
    charge = refunded["data"]["object"]
    charge["refunds"]["data"] = [
        "re_not_an_object",
        {"id": 42, "amount": 100},
        {"id": "re_no_amount"},
        {"id": "re_true", "amount": True},
        {"id": "re_negative", "amount": -5},
        {"id": "re_fine", "amount": 100, "status": "succeeded"},
    ]
    charge["amount_refunded"] = "lots"

    assert post_event(client, refunded).status_code == 200
    assert refunds_of(session, order.id) == [(100, "succeeded", "re_fine", True)]
    assert audit(session, clock()) == []


def test_a_charge_without_its_refunds_listed_records_the_amount_beyond_what_the_shop_knows(
    session, client, clock, stripe_sim, order
):
    refund_in_dashboard(stripe_sim, order.payment_intent_id, 5000)
    (refunded,) = events(stripe_sim, "charge.refunded")
    del refunded["data"]["object"]["refunds"]  # as Stripe sends a charge whose refunds are not expanded

    assert post_event(client, refunded).status_code == 200
    refunded["id"] += "_again"
    assert post_event(client, refunded).status_code == 200

    assert refunds_of(session, order.id) == [(5000, "succeeded", None, True)]
    assert fresh(session, Order, order.id).status == "paid"
    assert audit(session, clock()) == []


def test_stored_refunds_never_exceed_the_payment(session, client, clock, stripe_sim, order):
    refund_in_dashboard(stripe_sim, order.payment_intent_id)
    (refunded,) = events(stripe_sim, "charge.refunded")
    post_event(client, refunded)

    total = sum(refund.amount for refund in fresh(session, Order, order.id).refunds)
    assert total == 2 * PRICE
    assert session.scalar(select(Refund.from_gateway)) is True
