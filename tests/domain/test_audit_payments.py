"""The auditor's payment invariants: paid orders match their payment, every paid session has an order, every
order being refunded has its refund on the way. Each catches the problem planted for it and stays quiet on books
made by the real fulfilment rules (paid, reassigned, refunded, refund pending, refund failed but settled by hand).
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from storefront.domain.audit import (
    audit,
    every_paid_session_has_an_order,
    paid_orders_match_their_payment,
    refunds_are_on_their_way,
)
from storefront.domain.fulfilment import (
    Fulfilment,
    Outcome,
    PaidCheckout,
    fulfil_paid_checkout,
    record_charge_refunded,
    record_refund_failure,
    record_refund_sent,
)
from storefront.models import Hold, Order, Refund
from tests.factories import make_release
from tests.integration.helpers import claim_committed, release_committed

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900
PAYMENT_CHECKS = [paid_orders_match_their_payment, every_paid_session_has_an_order, refunds_are_on_their_way]


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def new_release(session, **options):
    release = make_release(session, on_sale_at=ON_SALE, price=PRICE, **options)
    session.commit()
    return release


def hold_at_checkout(session, release, email: str, now, quantity: int = 1) -> Hold:
    """A committed hold with its Checkout Session opened, as the reserve button leaves it."""
    hold = claim_committed(session, release.id, quantity, email, now)
    session.execute(
        update(Hold).where(Hold.id == hold.id).values(payment_session_id=f"cs_test_{hold.id}", payment_status="unpaid")
    )
    session.commit()
    return session.get(Hold, hold.id)


def paid(session, hold: Hold, now, *, amount: int | None = None, currency: str = "EUR") -> Fulfilment:
    """The gateway reports the hold's session paid (for `amount`, by default the right one); commit the result."""
    payment = PaidCheckout(
        session_id=hold.payment_session_id,
        hold_id=hold.id,
        payment_intent_id=f"pi_test_{hold.id}",
        amount_total=PRICE * hold.quantity if amount is None else amount,
        currency=currency,
        email=hold.buyer_email,
    )
    session.commit()
    result = fulfil_paid_checkout(session, payment, now)
    session.commit()
    return result


def refund_needed(session, release, now) -> Fulfilment:
    """Ann's hold ended before she paid and Bob bought the last number: her payment is recorded to be refunded."""
    ann = hold_at_checkout(session, release, "ann@example.com", now)
    release_committed(session, ann, now, reason="expired")
    paid(session, hold_at_checkout(session, release, "bob@example.com", now), now)
    result = paid(session, session.get(Hold, ann.id), now)
    assert result.outcome is Outcome.REFUND_NEEDED
    return result


def problems_now(session, clock) -> list[str]:
    session.commit()
    problems = audit(session, clock())
    session.rollback()
    return sorted(problems)


def payment_problems(session, clock) -> list[str]:
    session.commit()
    problems = [line for check in PAYMENT_CHECKS for line in check(session, clock())]
    session.rollback()
    return sorted(problems)


# --- Sound books ---------------------------------------------------------------------------------------------


def test_books_made_by_the_fulfilment_rules_audit_clean(session, clock):
    release = new_release(session, units=5, limit=3)
    last = new_release(session, units=1)
    now = clock()

    assert (
        paid(session, hold_at_checkout(session, release, "ann@example.com", now, quantity=2), now).outcome
        == "converted"
    )
    hold_at_checkout(session, release, "bob@example.com", now)  # still paying
    reassigned = hold_at_checkout(session, release, "cat@example.com", now)
    release_committed(session, reassigned, now, reason="expired")
    assert paid(session, session.get(Hold, reassigned.id), now).outcome is Outcome.REASSIGNED

    pending = refund_needed(session, last, now)  # a refund on its way is sound
    assert pending.order.status == "refunding"
    assert problems_now(session, clock) == []

    record_refund_failure(session, pending.refund, "Stripe is down", now, final=False)  # retried later
    session.commit()
    assert problems_now(session, clock) == []

    record_refund_sent(session, pending.refund, "re_test_1", now)
    session.commit()
    assert session.get(Order, pending.order.id).status == "refunded"
    assert problems_now(session, clock) == []


def test_a_failed_refund_settled_by_hand_audits_clean(session, clock):
    pending = refund_needed(session, new_release(session, units=1), clock())
    record_refund_failure(session, pending.refund, "charge_disputed", clock(), final=True)
    session.commit()
    assert len(payment_problems(session, clock)) == 1

    # The producer refunds from Stripe's dashboard; its charge.refunded webhook settles the order.
    record_charge_refunded(session, pending.order.payment_intent_id, fully=True, now=clock())
    session.commit()

    assert problems_now(session, clock) == []


# --- Planted problems -----------------------------------------------------------------------------------------


def test_finds_a_paid_session_without_an_order(session, clock):
    release = new_release(session, units=3)
    hold = hold_at_checkout(session, release, "ann@example.com", clock())
    # The gateway said paid, and the order was never written (a crash between the two, a hand edit).
    session.execute(update(Hold).where(Hold.id == hold.id).values(payment_status="paid"))
    session.commit()

    assert problems_now(session, clock) == [f"hold {hold.id}: session cs_test_{hold.id} was paid but has no order"]


def test_finds_a_paid_session_whose_order_names_another_session(session, clock):
    release = new_release(session, units=3)
    hold = hold_at_checkout(session, release, "ann@example.com", clock())
    order = paid(session, hold, clock()).order
    session.execute(update(Order).where(Order.id == order.id).values(checkout_session_id="cs_test_another"))
    session.commit()

    assert payment_problems(session, clock) == [f"hold {hold.id}: session cs_test_{hold.id} was paid but has no order"]


def test_finds_paid_orders_that_do_not_match_their_payment(session, clock):
    release = new_release(session, units=10)
    plants = [  # quantity, what the gateway reported, what the auditor says
        (1, 100, "EUR", "paid 100 EUR for 1 units at 8900 EUR"),  # underpaid
        (2, 8900, "EUR", "paid 8900 EUR for 2 units at 8900 EUR"),  # paid for one of two
        (1, 8901, "EUR", "paid 8901 EUR for 1 units at 8900 EUR"),  # overpaid
        (1, 8900, "GBP", "paid 8900 GBP for 1 units at 8900 EUR"),  # another currency
    ]
    expected = []
    for n, (quantity, amount, currency, problem) in enumerate(plants):
        hold = hold_at_checkout(session, release, f"buyer{n}@example.com", clock(), quantity=quantity)
        order = paid(session, hold, clock(), amount=amount, currency=currency).order
        expected.append(f"order {order.reference}: {problem}")
    paid(session, hold_at_checkout(session, release, "fine@example.com", clock(), quantity=2), clock())

    assert problems_now(session, clock) == sorted(expected)


def test_finds_an_order_marked_refunding_without_a_refund(session, clock):
    pending = refund_needed(session, new_release(session, units=1), clock())
    session.execute(delete(Refund).where(Refund.id == pending.refund.id))
    session.commit()

    assert problems_now(session, clock) == [
        f"order {pending.order.reference}: marked refunding but no refund is recorded"
    ]


def test_finds_a_paid_order_marked_refunding_by_hand(session, clock):
    release = new_release(session, units=3)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock()), clock()).order
    session.execute(update(Order).where(Order.id == order.id).values(status="refunding"))
    session.commit()

    assert payment_problems(session, clock) == [f"order {order.reference}: marked refunding but no refund is recorded"]


def test_finds_a_refund_that_failed_for_good(session, clock):
    pending = refund_needed(session, new_release(session, units=1), clock())
    for attempt in range(3):
        record_refund_failure(session, pending.refund, f"attempt {attempt}: no", clock(), final=attempt == 2)
        session.commit()

    refund = session.scalar(select(Refund))
    assert (refund.status, refund.attempts) == ("failed", 3)
    assert problems_now(session, clock) == [
        f"order {pending.order.reference}: refund failed for good (attempt 2: no); refund it by hand"
    ]
