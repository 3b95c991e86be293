"""The Stripe webhook: verified, recorded once, safe against duplicates, disorder and lateness.

Events are the simulator's own (created by paying or expiring real Checkout Sessions through the SDK), posted to
the shop with Stripe's signature scheme.
"""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.extensions import db
from storefront.models import Hold, Order, OutboxMessage, PaymentEvent, Refund, UnitStatus
from storefront.unit_of_work import write_transaction
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.payments import (
    event_for,
    events,
    hold_webhooks,
    hold_with_checkout,
    numbers_with_status,
    pay,
    post_event,
    sim_post,
    unit_statuses,
)

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def release_id(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release.id


def paid_event(app, sim, release_id, now, email="ann@example.com", quantity=1, number=None):
    hold = hold_with_checkout(app, release_id, email, now, quantity=quantity, number=number)
    pay(sim, hold.payment_session_id, name="Ann Byrne", address={"line1": "1 Quay St", "city": "Cork"})
    return hold, event_for(sim, "checkout.session.completed", hold.payment_session_id)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_completed_payment_becomes_an_order_with_its_numbers(app, session, client, clock, stripe_sim, release_id):
    hold, event = paid_event(app, stripe_sim, release_id, clock(), quantity=2)

    response = post_event(client, event)

    assert response.status_code == 200
    order = session.scalar(select(Order))
    assert [unit.number for unit in order.units] == [1, 2]
    assert (order.email, order.quantity, order.amount_total, order.currency) == ("ann@example.com", 2, 17800, "EUR")
    assert order.checkout_session_id == hold.payment_session_id
    assert order.payment_intent_id.startswith("pi_")
    assert order.shipping_name == "Ann Byrne"
    assert order.shipping_address["city"] == "Cork"
    assert session.get(Hold, hold.id).status == "converted"
    assert numbers_with_status(session, release_id, UnitStatus.SOLD) == [1, 2]
    assert count(session, OutboxMessage) == 1
    assert audit(session, clock()) == []


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param({"tamper": lambda payload: payload.replace('"paid"', '"unpaid"')}, id="tampered-body"),
        pytest.param({"secret": "whsec_someone_else"}, id="wrong-secret"),
        pytest.param({"timestamp": int(time.time()) - 3600}, id="stale-timestamp"),
        pytest.param({"timestamp": int(time.time()) + 3600}, id="future-timestamp"),
    ],
)
def test_a_badly_signed_event_is_refused_and_changes_nothing(
    app, session, client, clock, stripe_sim, release_id, spoil
):
    _hold, event = paid_event(app, stripe_sim, release_id, clock())

    response = post_event(client, event, **spoil)

    assert response.status_code == 400
    assert count(session, Order) == 0
    assert count(session, PaymentEvent) == 0
    assert unit_statuses(session, release_id) == {"held": 1, "available": 2}


def test_an_unsigned_event_is_refused(app, session, client, clock, stripe_sim, release_id):
    _hold, event = paid_event(app, stripe_sim, release_id, clock())

    response = client.post("/stripe/webhook", data=json.dumps(event), content_type="application/json")

    assert response.status_code == 400
    assert count(session, Order) == 0


def test_the_same_event_five_times_makes_one_order(app, session, client, clock, stripe_sim, release_id):
    _hold, event = paid_event(app, stripe_sim, release_id, clock())

    statuses = [post_event(client, event).status_code for _ in range(5)]

    assert statuses == [200] * 5
    assert count(session, Order) == 1
    assert count(session, PaymentEvent) == 1
    assert count(session, OutboxMessage) == 1
    assert audit(session, clock()) == []


def test_an_unknown_event_type_is_acknowledged_and_ignored(app, session, client, clock, stripe_sim, release_id):
    paid_event(app, stripe_sim, release_id, clock())
    other = {"id": "evt_test_unknown", "object": "event", "type": "customer.created", "data": {"object": {}}}

    response = post_event(client, other)

    assert response.status_code == 200
    assert response.get_json()["ignored"] == "customer.created"
    assert count(session, Order) == 0


def test_expired_session_releases_the_hold(app, session, client, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    sim_post(stripe_sim, f"/_sim/checkout/sessions/{hold.payment_session_id}/expire-by-time")

    response = post_event(client, event_for(stripe_sim, "checkout.session.expired", hold.payment_session_id))

    assert response.status_code == 200
    released = session.get(Hold, hold.id)
    assert (released.status, released.end_reason) == ("released", "expired")
    assert unit_statuses(session, release_id) == {"available": 3}


def test_completed_then_expired_keeps_the_order(app, session, client, clock, stripe_sim, release_id):
    hold, completed = paid_event(app, stripe_sim, release_id, clock())
    post_event(client, completed)
    expired = {
        "id": "evt_test_late_expiry",
        "object": "event",
        "type": "checkout.session.expired",
        "data": {"object": {**completed["data"]["object"], "status": "expired"}},
    }

    assert post_event(client, expired).status_code == 200

    assert session.get(Hold, hold.id).status == "converted"
    assert numbers_with_status(session, release_id, UnitStatus.SOLD) == [1]
    assert audit(session, clock()) == []


def test_expired_then_completed_gives_the_buyer_their_own_number_if_still_free(
    app, session, client, clock, stripe_sim, release_id
):
    hold, completed = paid_event(app, stripe_sim, release_id, clock(), number=2)
    expired = {
        "id": "evt_test_early_expiry",
        "object": "event",
        "type": "checkout.session.expired",
        "data": {"object": {**completed["data"]["object"], "status": "expired", "payment_status": "unpaid"}},
    }
    post_event(client, expired)
    assert session.get(Hold, hold.id).status == "released"
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 2, 3]

    assert post_event(client, completed).status_code == 200

    order = session.scalar(select(Order))
    assert order.status == "paid"
    assert [unit.number for unit in order.units] == [2]  # nobody took No. 2 meanwhile: it is hers again
    assert "still free" in order.note
    assert "instead" not in order.note
    mail = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "ann@example.com"))
    assert mail.subject.startswith("No. 2 of 3 is yours")
    assert "instead" not in mail.body  # her numbers did not change, so the mail does not say they did
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 3]
    assert audit(session, clock()) == []


def end_before_the_payment_is_known(hold, clock) -> None:
    """The shop ends the hold as a lost race would: its time ran out and its units went back on sale just before
    the news of the payment arrived (the gateway had said the session was gone)."""
    clock.advance(minutes=11)
    with write_transaction(db.session):
        flows.finish_ending(db.session, hold.id, "gone", clock())


def test_late_payment_after_resale_gets_other_free_numbers(app, session, client, clock, stripe_sim, release_id):
    late, completed = paid_event(app, stripe_sim, release_id, clock(), email="late@example.com", number=1)
    end_before_the_payment_is_known(late, clock)
    hold_with_checkout(app, release_id, "quick@example.com", clock(), number=1)  # No. 1 goes to someone else

    assert post_event(client, completed).status_code == 200

    order = session.scalar(select(Order).where(Order.email == "late@example.com"))
    assert order.status == "paid"
    assert [unit.number for unit in order.units] == [2]
    assert "assigned instead" in order.note
    assert audit(session, clock()) == []
    mail = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "late@example.com"))
    assert "gave you the numbers above instead" in mail.body.replace("\n", " ")


def test_late_payment_with_nothing_left_is_refunded_and_mailed(app, session, client, clock, stripe_sim, release_id):
    late, completed = paid_event(app, stripe_sim, release_id, clock(), email="late@example.com")
    end_before_the_payment_is_known(late, clock)
    hold_with_checkout(app, release_id, "first@example.com", clock(), quantity=3)  # every unit taken

    assert post_event(client, completed).status_code == 200

    order = session.scalar(select(Order).where(Order.email == "late@example.com"))
    refund = session.scalar(select(Refund).where(Refund.order_id == order.id))
    assert order.units == []
    assert (refund.status, refund.amount, refund.reason) == ("succeeded", 8900, "units_unavailable")
    assert refund.gateway_refund_id.startswith("re_")
    assert order.status == "refunded"
    subjects = set(session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == "late@example.com")))
    assert any("being refunded" in subject for subject in subjects)
    assert any("Refund sent" in subject for subject in subjects)
    assert audit(session, clock()) == []


def test_charge_refunded_marks_the_order_refunded_and_keeps_units_retired(
    app, session, client, clock, stripe_sim, release_id
):
    hold, completed = paid_event(app, stripe_sim, release_id, clock())
    post_event(client, completed)
    order = session.scalar(select(Order))
    # The producer refunds from Stripe's dashboard: the shop hears of it only through the webhook.
    requests.post(
        f"{stripe_sim.url}/v1/refunds",
        data={"payment_intent": order.payment_intent_id},
        headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
        timeout=5,
    ).raise_for_status()
    refunded = events(stripe_sim, "charge.refunded")[-1]

    assert post_event(client, refunded).status_code == 200

    session.expire_all()
    order = session.scalar(select(Order))
    assert order.status == "refunded"
    assert numbers_with_status(session, release_id, UnitStatus.SOLD) == [1]
    assert audit(session, clock()) == []
