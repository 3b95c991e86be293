"""A producer's refunds: whole or some units, each retired or returned to sale, guarded against refunding twice or
more than was paid; what the gateway's answer does to the order; refunds learnt from charge.refunded.

Orders are paid through the real fulfilment rules; the gateway's answers are recorded as the worker records them.
The auditor is asked after every step that leaves the books as they should be.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain.audit import audit
from storefront.domain.inventory import Buyer, claim
from storefront.domain.refunds import (
    ChargeRefunds,
    GatewayRefund,
    RefundRefused,
    lease_refund,
    queue_refund,
    record_refund_sent,
    reflect_charge_refunds,
    refund_options,
    request_refund,
    retry_failed_refund,
    return_unit_to_sale,
)
from storefront.models import Order, OrderEvent, Refund, RefundLine, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import run_concurrently, unexpected
from tests.refund_data import PRODUCER, ask_refund, fresh, paid_order, refuse, send, unit_ids

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


@pytest.fixture
def release(session):
    release = make_release(session, units=5, on_sale_at=ON_SALE, price=PRICE, limit=3)
    session.commit()
    return release


def problems(session, now) -> list[str]:
    session.commit()
    found = audit(session, now)
    session.rollback()
    return found


def unit_of(session, release, number: int) -> Unit:
    session.commit()
    session.expire_all()
    return session.scalar(select(Unit).where(Unit.release_id == release.id, Unit.number == number))


def events_of(session, order_id: int) -> list[tuple[str, str]]:
    session.commit()
    return [
        (event.kind, event.summary)
        for event in session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id))
    ]


def refused(session, order, numbers, now, **options) -> str:
    """Ask for a refund the domain must refuse; return its message, having checked nothing was written."""
    refunds_before = session.scalar(select(func.count()).select_from(Refund))
    status_before = fresh(session, Order, order.id).status
    with pytest.raises(RefundRefused) as refusal:
        ask_refund(session, order, numbers, now, **options)
    assert session.scalar(select(func.count()).select_from(Refund)) == refunds_before
    assert fresh(session, Order, order.id).status == status_before
    return refusal.value.message


# --- Partial refunds --------------------------------------------------------------------------------------------


def test_a_partial_refund_retires_its_unit_and_leaves_the_order_paid(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)

    refund = ask_refund(session, order, [1], clock(), note="cork broken")

    assert (refund.amount, refund.currency, refund.reason, refund.requested_by) == (PRICE, "EUR", "damaged", PRODUCER)
    assert [(line.number, line.return_to_sale, line.voided_at) for line in refund.lines] == [(1, False, None)]
    assert fresh(session, Order, order.id).status == "refunding"
    assert problems(session, clock()) == []  # a refund on its way is sound

    clock.advance(minutes=1)
    assert send(session, refund.id, "re_test_1", clock()) is not None

    order = fresh(session, Order, order.id)
    assert (order.status, order.refunded_at) == ("paid", None)  # partly refunded: its other unit still ships
    assert [(unit.number, unit.status) for unit in order.units] == [(1, "sold"), (2, "sold")]  # retired, not restocked
    assert events_of(session, order.id)[-2:] == [
        ("refund_requested", f"Refund of €89.00 asked for No. 1 of {release.total_units}: Damaged (cork broken)"),
        ("refunded", f"Refunded €89.00 for No. 1 of {release.total_units}"),
    ]
    assert problems(session, clock()) == []


def test_two_partial_refunds_make_the_order_refunded_and_a_third_is_refused(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)

    first = ask_refund(session, order, [1], clock())
    # A second refund may be asked for while the first is on its way, for another unit.
    second = ask_refund(session, order, [2], clock(), reason="lost_in_transit")
    assert fresh(session, Order, order.id).status == "refunding"
    send(session, first.id, "re_test_1", clock())
    assert fresh(session, Order, order.id).status == "refunding"  # the second is still on its way
    send(session, second.id, "re_test_2", clock())

    order = fresh(session, Order, order.id)
    assert (order.status, order.refunded_at) == ("refunded", clock())
    assert (
        refused(session, order, [1], clock()) == f"Order {order.reference} is refunded already: there is nothing "
        "left to refund."
    )
    assert problems(session, clock()) == []


def test_a_unit_cannot_be_refunded_twice(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1], clock())

    on_its_way = refused(session, order, [1, 2], clock())
    send(session, refund.id, "re_test_1", clock())
    made = refused(session, order, [1], clock())

    assert on_its_way == made == f"No. 1 of {release.total_units} is refunded already, or being refunded."
    assert problems(session, clock()) == []


def test_refunds_never_add_up_to_more_than_was_paid(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    # €50 went back from Stripe's dashboard: €128 is left, less than two units.
    with write_transaction(session):
        reflect_charge_refunds(
            session, ChargeRefunds(order.payment_intent_id, refunds=(GatewayRefund("re_dash", 5000),)), clock()
        )

    message = refused(session, order, [1, 2], clock())

    assert message == "That would refund €228.00 of the €178.00 paid: only €128.00 is left to refund."
    assert ask_refund(session, order, [1], clock()).amount == PRICE
    assert problems(session, clock()) == []


@pytest.mark.parametrize(
    ("numbers", "options", "message"),
    [
        pytest.param([], {}, "Tick “refund” for at least one unit.", id="no-unit-ticked"),
        pytest.param(
            [1],
            {"returning": [2]},
            "Tick “refund” for No. 2 of 5 too: only a refunded unit can go back on sale.",
            id="return-without-refund",
        ),
        pytest.param(
            [1],
            {"reason": "bored"},
            "Choose why you are refunding: damaged, lost in transit, buyer cancelled or other.",
            id="unknown-reason",
        ),
        pytest.param([1], {"reason": ""}, "Choose why you are refunding", id="no-reason"),
        pytest.param([1], {"reason": "other"}, "Say in a few words why you are refunding.", id="other-without-note"),
        pytest.param([1], {"note": "x" * 501}, "Keep the note to 500 characters.", id="note-too-long"),
    ],
)
def test_bad_requests_are_refused_with_a_reason_and_change_nothing(session, clock, release, numbers, options, message):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)

    assert refused(session, order, numbers, clock(), **options).startswith(message)
    assert problems(session, clock()) == []


def test_units_of_another_order_or_garbage_ids_are_refused(session, clock, release):
    mine = paid_order(session, release, "bob@example.com", clock(), quantity=1)
    other = paid_order(session, release, "cat@example.com", clock(), quantity=1)
    (their_unit,) = unit_ids(session, other, [2])
    expected = f"Only units still sold to order {mine.reference} can be refunded; reload the page to see them."

    for wanted, returning in [([their_unit], []), ([unit_ids(session, mine, [1])[0]], [their_unit]), ([10**9], [])]:
        with pytest.raises(RefundRefused, match="reload the page") as refusal, write_transaction(session):
            request_refund(session, mine.id, wanted, returning, "damaged", clock(), PRODUCER)
        assert refusal.value.message == expected
    with pytest.raises(RefundRefused, match="reload the page"), write_transaction(session):
        request_refund(session, mine.id, ["1"], [], "damaged", clock(), PRODUCER)
    with pytest.raises(RefundRefused, match="There is no order"), write_transaction(session):
        request_refund(session, 10**6, [], [], "damaged", clock(), PRODUCER)
    assert session.scalar(select(func.count()).select_from(Refund)) == 0
    assert problems(session, clock()) == []


# --- Return to sale ----------------------------------------------------------------------------------------------


def test_a_unit_returned_to_sale_can_be_claimed_again_and_the_auditor_stays_clean(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1, 2], clock(), returning=[2], reason="buyer_cancelled")
    assert unit_of(session, release, 2).status == "sold"  # nothing goes back before Stripe has refunded it

    send(session, refund.id, "re_test_1", clock())

    order = fresh(session, Order, order.id)
    assert (order.status, [unit.number for unit in order.units]) == ("refunded", [1])  # No. 1 retired
    returned = unit_of(session, release, 2)
    assert (returned.status, returned.order_id, returned.hold_id, returned.sold_at) == ("available", None, None, None)
    line = session.scalar(select(RefundLine).where(RefundLine.number == 2))
    assert (line.return_to_sale, line.returned_at, line.voided_at) == (True, clock(), None)
    assert events_of(session, order.id)[-1] == (
        "refunded",
        f"Refunded €178.00 for No. 1, 2 of {release.total_units}; No. 2 of {release.total_units} back on sale",
    )
    assert problems(session, clock()) == []

    # Anyone may now reserve No. 2 again, and buy it.
    with write_transaction(session):
        hold = claim(session, release.id, 1, Buyer("dan@example.com"), clock(), timedelta(minutes=10), number=2)
        assert [unit.number for unit in hold.units] == [2]
    assert problems(session, clock()) == []


def test_a_partly_returned_order_owns_the_rest_and_its_returned_unit_sells_again(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    send(session, ask_refund(session, order, [2], clock(), returning=[2]).id, "re_test_1", clock())

    order = fresh(session, Order, order.id)
    assert (order.status, order.quantity, [unit.number for unit in order.units]) == ("paid", 2, [1])
    assert problems(session, clock()) == []  # paid for 2, owns 1, returned 1

    # No. 2 is bought again by Dan, and refunded again: the new refund's line holds it from now on.
    dan = paid_order(session, release, "dan@example.com", clock(), quantity=1)
    assert [unit.number for unit in fresh(session, Order, dan.id).units] == [2]
    again = ask_refund(session, dan, [2], clock())
    send(session, again.id, "re_test_2", clock())
    assert fresh(session, Order, dan.id).status == "refunded"
    assert problems(session, clock()) == []


def test_a_unit_no_longer_sold_to_its_order_is_not_returned(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=1)
    other = paid_order(session, release, "cat@example.com", clock(), quantity=1)
    (mine,), (theirs,) = unit_ids(session, order, [1]), unit_ids(session, other, [2])

    with write_transaction(session):
        assert return_unit_to_sale(session, theirs, order.id, clock()) is False
        assert return_unit_to_sale(session, mine, order.id, clock()) is True
        assert return_unit_to_sale(session, mine, order.id, clock()) is False

    assert (unit_of(session, release, 1).status, unit_of(session, release, 2).status) == ("available", "sold")


# --- The gateway refuses ----------------------------------------------------------------------------------------


def test_a_refused_refund_voids_its_lines_and_restores_the_order(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1, 2], clock(), returning=[1])

    failed = refuse(session, refund.id, "Could not refund a payment: This charge is disputed.", clock())

    assert failed.status == "failed"
    order = fresh(session, Order, order.id)
    assert (order.status, [unit.number for unit in order.units]) == ("paid", [1, 2])
    assert all(
        line.voided_at == clock() and line.returned_at is None for line in fresh(session, Refund, refund.id).lines
    )
    assert events_of(session, order.id)[-1] == (
        "refund_failed",
        "Stripe refused the refund of €178.00: Could not refund a payment: This charge is disputed.",
    )
    # The producer saw the refusal on the page: nothing is left for a person to settle, and the units are free to
    # be refunded again.
    assert problems(session, clock()) == []
    assert ask_refund(session, order, [1], clock()).amount == PRICE


def test_a_refused_refund_leaves_another_in_flight_refunding(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    first = ask_refund(session, order, [1], clock())
    second = ask_refund(session, order, [2], clock())

    refuse(session, second.id, "No.", clock())
    assert fresh(session, Order, order.id).status == "refunding"
    send(session, first.id, "re_test_1", clock())
    assert fresh(session, Order, order.id).status == "paid"
    assert problems(session, clock()) == []


def test_a_retryable_failure_keeps_the_refund_on_its_way(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=1)
    refund = ask_refund(session, order, [1], clock())

    retried = refuse(session, refund.id, "Stripe is down", clock(), retryable=True)

    assert (retried.status, retried.next_attempt_at) == ("pending", clock() + timedelta(minutes=1))
    assert fresh(session, Order, order.id).status == "refunding"
    assert [line.voided_at for line in retried.lines] == [None]
    assert events_of(session, order.id)[-1][0] == "refund_delayed"
    assert problems(session, clock()) == []


def test_retrying_a_failed_refund_takes_its_units_back_unless_they_were_refunded_since(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1], clock())
    refuse(session, refund.id, "No.", clock())

    with write_transaction(session):
        retry_failed_refund(session, refund.id, clock())
    assert [line.voided_at for line in fresh(session, Refund, refund.id).lines] == [None]
    assert fresh(session, Order, order.id).status == "refunding"
    refuse(session, refund.id, "No again.", clock())

    ask_refund(session, order, [1], clock())  # No. 1 is asked for again by another refund
    with pytest.raises(ValueError, match="refund more|refunded since"), write_transaction(session):
        retry_failed_refund(session, refund.id, clock())
    assert problems(session, clock()) == []


# --- Orders without units (refunded because their units had gone) ------------------------------------------------


def unit_less_order(session, clock, release) -> Order:
    """An order left without units and refunded in full, as a payment after the last unit had gone leaves it (the
    real path is tests/domain/test_audit_payments.py's); its units are set apart by hand here."""
    order = paid_order(session, release, "ann@example.com", clock(), quantity=1)
    with write_transaction(session):
        order = session.get(Order, order.id)
        for unit in list(order.units):
            unit.order = None
            unit.status = "withheld"
        session.flush()
        queue_refund(
            session, order.payment_intent_id, order.amount_total, "EUR", "units_unavailable", clock(), order=order
        )
    return fresh(session, Order, order.id)


def test_an_order_without_units_is_refunded_whole_once_its_automatic_refund_failed(session, clock, release):
    order = unit_less_order(session, clock, release)
    (automatic,) = fresh(session, Order, order.id).refunds
    assert refused(session, order, [], clock()) == (
        "That would refund €89.00 of the €89.00 paid: only €0.00 is left to refund."
    )

    refuse(session, automatic.id, "charge_disputed", clock())
    assert fresh(session, Order, order.id).status == "refunding"  # money is still owed: not paid again

    refund = ask_refund(session, order, [], clock(), reason="other", note="refund by hand after the dispute")
    assert (refund.amount, refund.lines) == (PRICE, [])
    send(session, refund.id, "re_test_1", clock())
    assert fresh(session, Order, order.id).status == "refunded"


# --- Two producers at once --------------------------------------------------------------------------------------


def test_two_producers_refunding_the_same_unit_at_once_make_one_refund(app, session, clock, release, backend):
    if backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time; the race needs PostgreSQL's row locks")
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    wanted = unit_ids(session, order, [1])
    now = clock()

    def producer(returning: list[int]):
        from storefront.extensions import db

        with write_transaction(db.session):
            return request_refund(db.session, order.id, wanted, returning, "damaged", now, PRODUCER).id

    outcomes = run_concurrently(app, [lambda: producer([]), lambda: producer(wanted)] * 3)

    assert unexpected(outcomes, RefundRefused) == []
    assert len([outcome for outcome in outcomes if outcome.error is None]) == 1
    assert session.scalar(select(func.count()).select_from(Refund)) == 1
    assert session.scalar(select(func.count()).select_from(RefundLine)) == 1
    assert problems(session, clock()) == []


# --- charge.refunded: refunds made in Stripe's dashboard, and the shop's own ---------------------------------------


def reflect(session, order, now, *refunds: GatewayRefund, key: str | None = None):
    with write_transaction(session):
        return reflect_charge_refunds(
            session, ChargeRefunds(order.payment_intent_id, refunds=tuple(refunds), request_key=key), now
        )


def test_dashboard_refunds_are_recorded_once_each_and_settle_the_order(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)

    first = reflect(session, order, clock(), GatewayRefund("re_dash_1", 5000))
    again = reflect(session, order, clock(), GatewayRefund("re_dash_1", 5000))  # the same refund, another event

    assert [(refund.amount, refund.from_gateway, refund.gateway_refund_id) for refund in first.recorded] == [
        (5000, True, "re_dash_1")
    ]
    assert again.recorded == []
    order = fresh(session, Order, order.id)
    assert (order.status, [unit.status for unit in order.units]) == ("paid", ["sold", "sold"])
    assert events_of(session, order.id)[-1] == ("refunded", "Refunded €50.00 in Stripe's dashboard")

    # Stripe lists newest first: the rest, refunded later, is recorded and the order is refunded; units stay retired.
    rest = reflect(session, order, clock(), GatewayRefund("re_dash_2", 12800), GatewayRefund("re_dash_1", 5000))
    assert [refund.amount for refund in rest.recorded] == [12800]
    order = fresh(session, Order, order.id)
    assert (order.status, [unit.status for unit in order.units]) == ("refunded", ["sold", "sold"])
    assert problems(session, clock()) == []


def test_failed_and_impossible_gateway_refunds_are_not_counted(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=1)

    result = reflect(
        session,
        order,
        clock(),
        GatewayRefund("re_failed", 100, "failed"),
        GatewayRefund("re_canceled", 100, "canceled"),
        GatewayRefund("re_zero", 0),
        GatewayRefund("re_huge", 10**12),
    )

    assert result.recorded == []
    assert fresh(session, Order, order.id).status == "paid"


def test_the_shops_own_refund_seen_before_its_answer_is_confirmed_not_counted_twice(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [2], clock(), returning=[2])
    with write_transaction(session):
        lease_refund(session, refund.id, clock())
    # Stripe made the refund and sent charge.refunded, caused by the shop's request; its answer is still on its way.
    result = reflect(session, order, clock(), GatewayRefund("re_shop", PRICE), key=f"refund-{refund.id}")

    assert result.recorded == [] and [confirmed.id for confirmed in result.confirmed] == [refund.id]
    with write_transaction(session):
        assert record_refund_sent(session, refund.id, "re_shop", clock()) is None  # the late answer changes nothing
    refund = fresh(session, Refund, refund.id)
    assert (refund.status, refund.gateway_refund_id) == ("succeeded", "re_shop")
    assert unit_of(session, release, 2).status == "available"
    assert session.scalar(select(func.count()).select_from(Refund)) == 1
    assert problems(session, clock()) == []


def test_a_copy_recorded_from_the_dashboard_is_folded_into_the_shops_refund(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1], clock())
    # An event that did not say it was the shop's request (no idempotency key) arrived first.
    reflect(session, order, clock(), GatewayRefund("re_shop", PRICE))
    assert session.scalar(select(func.count()).select_from(Refund)) == 2

    send(session, refund.id, "re_shop", clock())

    refunds = fresh(session, Order, order.id).refunds
    assert [(r.id, r.status, r.gateway_refund_id, r.from_gateway) for r in refunds] == [
        (refund.id, "succeeded", "re_shop", False)
    ]
    assert fresh(session, Order, order.id).status == "paid"
    assert events_of(session, order.id)[-2][0] == "refund_matched"
    assert problems(session, clock()) == []


def test_a_charge_without_a_list_records_what_was_refunded_beyond_what_the_shop_knows(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    on_its_way = ask_refund(session, order, [1], clock())

    for _ in range(2):  # the same news twice records it once
        with write_transaction(session):
            reflect_charge_refunds(
                session, ChargeRefunds(order.payment_intent_id, amount_refunded=PRICE + 1000), clock()
            )

    dashboard = [refund for refund in fresh(session, Order, order.id).refunds if refund.from_gateway]
    assert [(refund.amount, refund.gateway_refund_id) for refund in dashboard] == [(1000, None)]
    send(session, on_its_way.id, "re_shop", clock())
    assert fresh(session, Order, order.id).status == "paid"
    assert problems(session, clock()) == []


def test_the_refund_page_knows_what_each_unit_is(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=3)
    send(session, ask_refund(session, order, [1], clock()).id, "re_1", clock())
    send(session, ask_refund(session, order, [2], clock(), returning=[2]).id, "re_2", clock())
    ask_refund(session, order, [3], clock())

    options = refund_options(session, fresh(session, Order, order.id))

    assert [(unit.number, unit.state) for unit in options.units] == [(1, "refunded"), (2, "returned"), (3, "refunding")]
    assert (options.totals.succeeded, options.totals.in_flight, options.remaining) == (2 * PRICE, PRICE, 0)
    assert options.can_refund is False
