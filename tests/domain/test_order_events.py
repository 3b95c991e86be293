"""An order's timeline starts where the payment is turned into it: paid, reassigned, or paid to be refunded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from storefront.domain.fulfilment import Outcome
from storefront.models import Hold, OrderEvent
from tests.domain.test_audit_payments import ON_SALE, hold_at_checkout, new_release, paid, refund_needed
from tests.integration.helpers import claim_committed, release_committed


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def timeline(session, order_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(OrderEvent.kind, OrderEvent.summary).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    )
    return [tuple(row) for row in rows]


def test_a_payment_starts_the_timeline_with_what_was_paid_for_which_numbers(session, clock):
    release = new_release(session, units=240, limit=3)

    result = paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock())

    assert result.outcome is Outcome.CONVERTED
    assert timeline(session, result.order.id) == [("paid", "Paid €178.00 for No. 1, 2 of 240")]
    event = session.scalar(select(OrderEvent).where(OrderEvent.order_id == result.order.id))
    assert (event.occurred_at, event.actor_email) == (clock(), "")


def test_a_late_payment_given_other_numbers_says_so(session, clock):
    release = new_release(session, units=7, limit=3)
    cat = hold_at_checkout(session, release, "cat@example.com", clock())  # No. 1
    release_committed(session, cat, clock(), reason="expired")
    claim_committed(session, release.id, 1, "dan@example.com", clock())  # Dan takes No. 1

    result = paid(session, session.get(Hold, cat.id), clock())

    assert result.outcome is Outcome.REASSIGNED
    assert timeline(session, result.order.id) == [
        ("paid", "Paid €89.00 for No. 2 of 7"),
        (
            "reassigned",
            "Paid after its hold had ended: given No. 2 of 7 instead of No. 1 of 7, which had gone to other buyers",
        ),
    ]


def test_a_late_payment_that_gets_its_own_numbers_back_is_simply_paid(session, clock):
    release = new_release(session, units=7, limit=3)
    eve = hold_at_checkout(session, release, "eve@example.com", clock())
    release_committed(session, eve, clock(), reason="expired")

    result = paid(session, session.get(Hold, eve.id), clock())

    assert result.outcome is Outcome.CONVERTED
    assert timeline(session, result.order.id) == [("paid", "Paid €89.00 for No. 1 of 7")]


def test_a_payment_with_no_numbers_left_says_it_is_refunded(session, clock):
    release = new_release(session, units=1)

    result = refund_needed(session, release, clock())

    ((kind, summary),) = [event for event in timeline(session, result.order.id) if event[0] == "paid"]
    assert summary.startswith("Paid €89.00 after its hold had ended; no numbers could be given")
    assert summary.endswith("so a full refund is queued")
