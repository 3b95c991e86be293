"""The auditor's payment invariants: paid orders match their payment, every paid session has an order, every
order being refunded (and every unmatched payment) has its refund on the way. Each catches the problem planted for
it and stays quiet on books made by the real fulfilment rules (paid, paid late, reassigned, unmatched, refunded,
refund pending, refund failed but settled by hand).
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from storefront.domain.audit import (
    audit,
    every_paid_session_has_an_order,
    paid_orders_match_their_payment,
    refunds_are_on_their_way,
    unmatched_payments_are_refunded,
)
from storefront.domain.fulfilment import (
    Fulfilment,
    Outcome,
    PaidCheckout,
    client_reference,
    fulfil_paid_checkout,
    record_checkout_request,
)
from storefront.domain.inventory import held_numbers
from storefront.domain.refunds import (
    lease_refund,
    record_charge_refunded,
    record_refund_failure,
    record_refund_sent,
)
from storefront.models import Hold, Order, Refund, Release, UnmatchedPayment
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import claim_committed, release_committed

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900
PAYMENT_CHECKS = [
    paid_orders_match_their_payment,
    every_paid_session_has_an_order,
    refunds_are_on_their_way,
    unmatched_payments_are_refunded,
]


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
    with write_transaction(session):
        hold = session.get(Hold, hold.id)
        record_checkout_request(session, hold, held_numbers(session, hold), release.price_amount, release.currency)
        hold.payment_session_id = f"cs_test_{hold.id}"
        hold.payment_status = "unpaid"
    return session.get(Hold, hold.id)


def paid(session, hold: Hold, now, *, amount: int | None = None, currency: str = "EUR") -> Fulfilment:
    """The gateway reports the hold's session paid (for `amount`, by default the right one); commit the result."""
    payment = PaidCheckout(
        session_id=hold.payment_session_id,
        payment_intent_id=f"pi_test_{hold.id}",
        amount_total=PRICE * hold.quantity if amount is None else amount,
        currency=currency,
        email=hold.buyer_email,
        claimed_hold_id=hold.id,
        client_reference_id=client_reference(hold.id),
    )
    with write_transaction(session):
        return fulfil_paid_checkout(session, payment, now)


def fail_refund(session, refund_id: int, error: str, now, *, retryable: bool) -> Refund:
    """One attempt at the refund, which the gateway refuses (`retryable`: for now; otherwise for good)."""
    with write_transaction(session):
        attempt = lease_refund(session, refund_id, now)
        assert attempt is not None, "the refund was not due"
        return record_refund_failure(session, refund_id, attempt, error, now, retryable=retryable)


def send_refund(session, refund_id: int, gateway_refund_id: str, now) -> Refund:
    with write_transaction(session):
        assert lease_refund(session, refund_id, now) is not None, "the refund was not due"
        return record_refund_sent(session, refund_id, gateway_refund_id, now)


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
    release = new_release(session, units=7, limit=3)
    last = new_release(session, units=1)
    now = clock()

    converted = paid(session, hold_at_checkout(session, release, "ann@example.com", now, quantity=2), now)
    assert converted.outcome is Outcome.CONVERTED
    assert [unit.number for unit in converted.order.units] == [1, 2]
    hold_at_checkout(session, release, "bob@example.com", now)  # No. 3, still paying

    # Cat's hold (No. 4) ends before she pays, and Dan takes No. 4: her late payment gets the next free number.
    cat = hold_at_checkout(session, release, "cat@example.com", now)
    release_committed(session, cat, now, reason="expired")
    claim_committed(session, release.id, 1, "dan@example.com", now)
    reassigned = paid(session, session.get(Hold, cat.id), now)
    assert reassigned.outcome is Outcome.REASSIGNED
    assert [unit.number for unit in reassigned.order.units] == [5]
    assert "assigned instead" in reassigned.order.note

    # Eve's hold (No. 6) ends too, but nobody took No. 6: her late payment gets her own number back.
    eve = hold_at_checkout(session, release, "eve@example.com", now)
    release_committed(session, eve, now, reason="expired")
    late = paid(session, session.get(Hold, eve.id), now)
    assert late.outcome is Outcome.CONVERTED
    assert [unit.number for unit in late.order.units] == [6]
    assert "still free" in late.order.note

    # Fay's session is paid for the wrong amount: recorded apart, refunded, her hold ends, nobody's units touched.
    fay = hold_at_checkout(session, release, "fay@example.com", now)
    unmatched = paid(session, fay, now, amount=1)
    assert unmatched.outcome is Outcome.UNMATCHED
    assert (unmatched.order, unmatched.refund.amount, unmatched.refund.reason) == (None, 1, "unmatched_payment")
    assert (session.get(Hold, fay.id).status, session.get(Hold, fay.id).end_reason) == ("released", "payment_mismatch")

    pending = refund_needed(session, last, now)  # a refund on its way is sound
    assert pending.order.status == "refunding"
    assert problems_now(session, clock) == []

    refund = fail_refund(session, pending.refund.id, "Stripe is down", now, retryable=True)  # retried later
    assert (refund.status, refund.next_attempt_at) == ("pending", now + timedelta(minutes=1))
    assert problems_now(session, clock) == []

    clock.advance(minutes=1)
    assert send_refund(session, pending.refund.id, "re_test_1", clock()) is not None
    assert session.get(Order, pending.order.id).status == "refunded"
    assert problems_now(session, clock) == []


def test_a_price_change_after_the_sale_leaves_paid_orders_sound(session, clock):
    release = new_release(session, units=3)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock()), clock()).order
    assert (order.unit_amount, order.amount_total) == (PRICE, PRICE)

    # The producer raises the price for the rest of the run: Ann paid the price of the day she bought.
    with write_transaction(session):
        session.execute(update(Release).where(Release.id == release.id).values(price_amount=PRICE + 1000))
    assert problems_now(session, clock) == []


def test_a_failed_refund_settled_by_hand_audits_clean(session, clock):
    pending = refund_needed(session, new_release(session, units=1), clock())
    fail_refund(session, pending.refund.id, "charge_disputed", clock(), retryable=False)
    assert len(payment_problems(session, clock)) == 1

    # The producer refunds from Stripe's dashboard; its charge.refunded webhook settles the order.
    with write_transaction(session):
        record_charge_refunded(session, pending.order.payment_intent_id, fully=True, now=clock())

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


def test_a_payment_of_the_wrong_amount_or_currency_never_becomes_an_order(session, clock):
    release = new_release(session, units=10)
    wrong = [(1, 100, "EUR"), (2, 8900, "EUR"), (1, 8901, "EUR"), (1, 8900, "GBP")]  # quantity, amount, currency
    for n, (quantity, amount, currency) in enumerate(wrong):
        hold = hold_at_checkout(session, release, f"buyer{n}@example.com", clock(), quantity=quantity)
        result = paid(session, hold, clock(), amount=amount, currency=currency)
        assert result.outcome is Outcome.UNMATCHED
        assert (result.unmatched.amount, result.unmatched.currency) == (amount, currency)
        assert session.get(Hold, hold.id).status == "released"
    paid(session, hold_at_checkout(session, release, "fine@example.com", clock(), quantity=2), clock())

    assert session.scalars(select(Order.email)).all() == ["fine@example.com"]
    assert len(session.scalars(select(UnmatchedPayment)).all()) == len(wrong)
    assert problems_now(session, clock) == []


def test_finds_paid_orders_that_do_not_match_their_payment(session, clock):
    release = new_release(session, units=10)
    plants = [  # quantity, then what a hand edit (or a bug) left on the order, and what the auditor says
        (1, {"amount_total": 100}, "paid 100 EUR for 1 units at 8900 EUR"),  # underpaid
        (2, {"amount_total": 8900}, "paid 8900 EUR for 2 units at 8900 EUR"),  # paid for one of two
        (1, {"amount_total": 8901}, "paid 8901 EUR for 1 units at 8900 EUR"),  # overpaid
        (1, {"currency": "GBP"}, "paid 8900 GBP for 1 units at 8900 EUR"),  # another currency
        (1, {"unit_amount": 100}, "paid 8900 EUR for 1 units at 100 EUR"),  # sold at another price
    ]
    expected = []
    for n, (quantity, edit, problem) in enumerate(plants):
        hold = hold_at_checkout(session, release, f"buyer{n}@example.com", clock(), quantity=quantity)
        order = paid(session, hold, clock()).order
        session.execute(update(Order).where(Order.id == order.id).values(**edit))
        session.commit()
        expected.append(f"order {order.reference}: {problem}")
    paid(session, hold_at_checkout(session, release, "fine@example.com", clock(), quantity=2), clock())

    assert problems_now(session, clock) == sorted(expected)


def test_finds_an_unmatched_payment_without_its_refund(session, clock):
    release = new_release(session, units=3)
    hold = hold_at_checkout(session, release, "ann@example.com", clock())
    unmatched = paid(session, hold, clock(), amount=1).unmatched
    assert payment_problems(session, clock) == []
    session.execute(delete(Refund).where(Refund.unmatched_payment_id == unmatched.id))
    session.commit()

    assert problems_now(session, clock) == [f"unmatched payment cs_test_{hold.id}: no refund is recorded"]


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
        fail_refund(session, pending.refund.id, f"attempt {attempt}: no", clock(), retryable=attempt < 2)
        clock.advance(minutes=2**attempt)  # the next attempt is due after 1, then 2 minutes

    refund = session.scalar(select(Refund))
    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("failed", 3, None)
    assert problems_now(session, clock) == [
        f"order {pending.order.reference}: refund failed for good (attempt 2: no); refund it by hand"
    ]


def test_finds_a_refund_still_retrying_long_after_its_window(session, clock):
    pending = refund_needed(session, new_release(session, units=1), clock())
    refund = session.get(Refund, pending.refund.id)
    clock.set(refund.retry_until + timedelta(hours=1))
    assert payment_problems(session, clock) == []  # the worker may be about to give up on it

    clock.advance(seconds=1)  # ...but not this long after the window closed: the worker is not running
    assert payment_problems(session, clock) == [
        f"refund {refund.id}: still pending after its retries ended at {refund.retry_until}"
    ]
