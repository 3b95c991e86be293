"""Shipping charged once per order: what a hold asks for, what binds a payment, what a refund returns, what the
auditor accepts. Shipping is part of the money path: a payment of the units alone is not the one the shop asked for.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from storefront.domain.audit import audit
from storefront.domain.exports import order_csv_header, order_csv_rows
from storefront.domain.fulfilment import (
    Fulfilment,
    Outcome,
    PaidCheckout,
    client_reference,
    fulfil_paid_checkout,
    record_checkout_request,
)
from storefront.domain.inventory import held_numbers
from storefront.domain.orders import OrderFilter
from storefront.domain.refunds import RefundRefused, refund_options, retry_failed_refund
from storefront.models import Hold, Order, Release
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import claim_committed, release_committed
from tests.refund_data import ask_refund, fresh, refuse, send

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE, SHIPPING = 8900, 600


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def shipped_release(session, shipping: int = SHIPPING, **options) -> Release:
    release = make_release(session, on_sale_at=ON_SALE, price=PRICE, **options)
    release.shipping_amount = shipping
    session.commit()
    return release


def hold_at_checkout(session, release: Release, email: str, now, quantity: int = 1) -> Hold:
    """A committed hold whose Checkout Session was opened at the release's price and shipping."""
    hold = claim_committed(session, release.id, quantity, email, now)
    with write_transaction(session):
        hold = session.get(Hold, hold.id)
        release = session.get(Release, release.id)
        record_checkout_request(
            session, hold, held_numbers(session, hold), release.price_amount, release.currency, release.shipping_amount
        )
        hold.payment_session_id = f"cs_test_{hold.id}"
        hold.payment_status = "unpaid"
    return session.get(Hold, hold.id)


def paid(session, hold: Hold, now, amount: int | None = None) -> Fulfilment:
    """The gateway reports the hold's session paid, by default at what the shop asked for."""
    payment = PaidCheckout(
        session_id=hold.payment_session_id,
        payment_intent_id=f"pi_test_{hold.id}",
        amount_total=hold.expected_amount if amount is None else amount,
        currency="EUR",
        email=hold.buyer_email,
        claimed_hold_id=hold.id,
        client_reference_id=client_reference(hold.id),
    )
    with write_transaction(session):
        return fulfil_paid_checkout(session, payment, now)


def test_a_hold_asks_for_its_units_and_the_shipping_once(session, clock):
    release = shipped_release(session)

    hold = hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2)

    assert (hold.unit_amount, hold.shipping_amount, hold.expected_amount) == (PRICE, SHIPPING, 2 * PRICE + SHIPPING)


def test_the_order_records_its_shipping_and_the_auditor_is_content(session, clock):
    release = shipped_release(session)
    hold = hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2)

    result = paid(session, hold, clock())

    assert result.outcome is Outcome.CONVERTED
    order = fresh(session, Order, result.order.id)
    assert (order.quantity, order.unit_amount, order.shipping_amount, order.amount_total) == (2, PRICE, 600, 18400)
    assert audit(session, clock()) == []


def test_paying_the_units_without_the_shipping_is_unmatched_refunded_and_no_order(session, clock):
    release = shipped_release(session)
    hold = hold_at_checkout(session, release, "ann@example.com", clock())

    result = paid(session, hold, clock(), amount=PRICE)

    assert result.outcome is Outcome.UNMATCHED
    assert "paid 8900 EUR where the shop asked for 9500 EUR" in result.unmatched.reason
    assert result.refund.amount == PRICE
    assert session.scalars(select(Order)).all() == []
    assert fresh(session, Hold, hold.id).status == "released"
    assert audit(session, clock()) == []


def test_a_shipping_change_applies_only_to_checkouts_opened_after_it(session, clock):
    release = shipped_release(session)
    before = hold_at_checkout(session, release, "ann@example.com", clock())
    with write_transaction(session):
        session.get(Release, release.id).shipping_amount = 900
    after = hold_at_checkout(session, release, "bob@example.com", clock())

    assert (before.expected_amount, after.expected_amount) == (9500, 9800)
    # Ann pays what her payment page asked: still her order, at the shipping she was shown.
    order = paid(session, before, clock()).order
    assert (order.shipping_amount, order.amount_total) == (600, 9500)
    assert audit(session, clock()) == []


def test_the_orders_csv_has_the_shipping_once_per_order(session, clock):
    release = shipped_release(session)
    paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock())
    session.commit()

    rows = order_csv_rows(session, OrderFilter(), ZoneInfo("Europe/Dublin"))
    try:
        header = order_csv_header("Europe/Dublin")
        table = [dict(zip(header, row, strict=True)) for row in rows]
    finally:
        rows.close()

    assert [(row["Number"], row["Unit price"], row["Shipping"], row["Order total"]) for row in table] == [
        ("1", "89.00", "6.00", "184.00"),
        ("2", "89.00", "6.00", "184.00"),
    ]


def test_a_late_payment_whose_numbers_are_gone_is_refunded_with_its_shipping(session, clock):
    release = shipped_release(session, units=1)
    ann = hold_at_checkout(session, release, "ann@example.com", clock())
    release_committed(session, ann, clock(), reason="expired")
    paid(session, hold_at_checkout(session, release, "bob@example.com", clock()), clock())

    result = paid(session, fresh(session, Hold, ann.id), clock())

    assert result.outcome is Outcome.REFUND_NEEDED
    assert (result.order.shipping_amount, result.refund.amount) == (SHIPPING, PRICE + SHIPPING)
    assert audit(session, clock()) == []


def test_refunding_every_unit_returns_the_shipping_too(session, clock):
    release = shipped_release(session)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock()).order

    refund = ask_refund(session, order, [1, 2], clock())

    assert refund.amount == 2 * PRICE + SHIPPING
    send(session, refund.id, "re_1", clock())
    assert fresh(session, Order, order.id).status == "refunded"
    assert audit(session, clock()) == []


def test_the_refund_of_the_last_unit_carries_the_shipping(session, clock):
    release = shipped_release(session)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock()).order

    first = ask_refund(session, order, [1], clock())
    send(session, first.id, "re_1", clock())
    options = refund_options(session, fresh(session, Order, order.id))
    assert options.remaining == PRICE + SHIPPING
    last = ask_refund(session, order, [2], clock(), returning=[2])
    send(session, last.id, "re_2", clock())

    assert (first.amount, last.amount) == (PRICE, PRICE + SHIPPING)
    assert fresh(session, Order, order.id).status == "refunded"
    assert audit(session, clock()) == []
    with pytest.raises(RefundRefused):
        ask_refund(session, order, [1], clock())


def test_a_failed_refund_retried_after_the_other_units_were_refunded_still_returns_the_shipping(session, clock):
    # No. 1's refund fails, so No. 2's is not the last; retrying No. 1's makes it the last, and its amount cannot
    # change (its idempotency key went out with it): the shipping goes back as a refund of its own.
    release = shipped_release(session)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock()).order
    first = ask_refund(session, order, [1], clock())
    refuse(session, first.id, "card expired", clock())
    second = ask_refund(session, order, [2], clock())
    send(session, second.id, "re_second", clock())
    assert second.amount == PRICE

    with write_transaction(session):
        retry_failed_refund(session, first.id, clock())
    send(session, first.id, "re_first", clock())
    (rest,) = [refund for refund in fresh(session, Order, order.id).refunds if refund.id not in (first.id, second.id)]
    assert (rest.amount, rest.lines) == (SHIPPING, [])
    send(session, rest.id, "re_rest", clock())

    order = fresh(session, Order, order.id)
    assert order.status == "refunded"
    assert sum(refund.amount for refund in order.refunds) == order.amount_total == 2 * PRICE + SHIPPING
    assert audit(session, clock()) == []


def test_retrying_a_refund_that_is_not_the_last_adds_nothing(session, clock):
    release = shipped_release(session)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock(), quantity=2), clock()).order
    first = ask_refund(session, order, [1], clock())
    refuse(session, first.id, "card expired", clock())
    with write_transaction(session):
        retry_failed_refund(session, first.id, clock())
    assert [refund.id for refund in fresh(session, Order, order.id).refunds] == [first.id]


def test_the_auditor_finds_an_order_whose_total_leaves_out_its_shipping(session, clock):
    release = shipped_release(session)
    order = paid(session, hold_at_checkout(session, release, "ann@example.com", clock()), clock()).order
    session.execute(update(Order).where(Order.id == order.id).values(shipping_amount=0))
    session.commit()

    assert audit(session, clock()) == [f"order {order.reference}: paid 9500 EUR for 1 units at 8900 EUR"]
    session.execute(update(Order).where(Order.id == order.id).values(shipping_amount=700))
    session.commit()
    assert audit(session, clock()) == [
        f"order {order.reference}: paid 9500 EUR for 1 units at 8900 EUR plus 700 shipping"
    ]


def test_negative_shipping_is_never_asked_for(session, clock):
    release = shipped_release(session)
    hold = claim_committed(session, release.id, 1, "ann@example.com", clock())

    with pytest.raises(ValueError, match="negative"), write_transaction(session):
        held = session.get(Hold, hold.id)
        record_checkout_request(session, held, held_numbers(session, held), PRICE, "EUR", -1)
    assert fresh(session, Hold, hold.id).expected_amount is None
