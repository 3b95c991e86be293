"""The auditor's refund invariants: a paid order owns what it paid for less what its refunds returned to sale, a
returned unit left its order, a live refund line names its order's unit, and refunds never exceed the payment.
Each stays quiet on books made by the real refund rules and catches the problem planted for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from storefront.domain.audit import audit, orders_own_their_quantity, refund_lines_match_their_units
from storefront.models import Order, Refund, RefundLine, Release, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.refund_data import ask_refund, paid_order, refuse, send

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


def problems_now(session, clock) -> list[str]:
    session.commit()
    problems = audit(session, clock())
    session.rollback()
    return sorted(problems)


def plant(session, statement) -> None:
    with write_transaction(session):
        session.execute(statement, execution_options={"synchronize_session": False})


def test_books_made_by_refunds_audit_clean(session, clock, release):
    """Partial, whole, returned, retired, refused, in flight, and a price change after the sale: all sound."""
    two = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    send(session, ask_refund(session, two, [1], clock(), returning=[1]).id, "re_1", clock())
    assert problems_now(session, clock) == []  # a paid order of 2 with one unit returned owns 1

    one = paid_order(session, release, "cat@example.com", clock(), quantity=1)
    assert [unit.number for unit in one.units] == [1]  # the returned unit, sold again
    refused = ask_refund(session, one, [1], clock())
    refuse(session, refused.id, "This charge is disputed.", clock())
    ask_refund(session, one, [1], clock(), returning=[1])  # in flight
    assert problems_now(session, clock) == []

    # The producer raises the price after these sales: each order's own unit price is what counts.
    plant(session, update(Release).where(Release.id == release.id).values(price_amount=PRICE + 1000))
    send(session, ask_refund(session, two, [2], clock()).id, "re_2", clock())
    assert problems_now(session, clock) == []


def test_finds_a_returned_unit_still_sold_to_its_order(session, clock, release, backend):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    send(session, ask_refund(session, order, [2], clock(), returning=[2]).id, "re_1", clock())
    # A bug (or a hand edit) sells the returned unit back to the order that was refunded for it.
    plant(
        session,
        update(Unit)
        .where(Unit.release_id == release.id, Unit.number == 2)
        .values(status="sold", order_id=order.id, sold_at=clock()),
    )

    assert problems_now(session, clock) == [
        f"order {order.reference}: paid for 2 units but owns 2 (1 returned to sale)",
        f"release {release.id}: No. 2 was returned to sale by order {order.reference}'s refund but is still sold to it",
    ]


def test_finds_a_refunded_unit_that_left_its_order_without_being_returned(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=1)
    ask_refund(session, order, [1], clock())  # retired: it must stay sold to the order
    plant(
        session,
        update(Unit)
        .where(Unit.release_id == release.id, Unit.number == 1)
        .values(status="available", order_id=None, hold_id=None, sold_at=None),
    )

    assert (
        f"release {release.id}: No. 1 is refunded on order {order.reference} but is no longer sold to it "
        "(available)" in problems_now(session, clock)
    )


def test_finds_a_refund_line_that_names_another_number(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=1)
    refund = ask_refund(session, order, [1], clock())
    plant(session, update(RefundLine).where(RefundLine.refund_id == refund.id).values(number=4))

    assert refund_lines_match_their_units(session, clock()) == [
        f"refund {refund.id}: its line for No. 4 of release {release.id} names unit No. 1 of release {release.id}, "
        "or another order"
    ]


def test_finds_refunds_beyond_the_payment(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    refund = ask_refund(session, order, [1, 2], clock())
    plant(session, update(Refund).where(Refund.id == refund.id).values(amount=2 * PRICE + 1))

    assert f"order {order.reference}: refunds of 17801 EUR exceed the 17800 paid" in problems_now(session, clock)


def test_a_paid_order_missing_a_unit_it_did_not_return_is_still_found(session, clock, release):
    order = paid_order(session, release, "bob@example.com", clock(), quantity=2)
    send(session, ask_refund(session, order, [1], clock(), returning=[1]).id, "re_1", clock())
    plant(session, update(Order).where(Order.id == order.id).values(quantity=3, amount_total=3 * PRICE))

    assert orders_own_their_quantity(session, clock()) == [
        f"order {order.reference}: paid for 3 units but owns 1 (1 returned to sale)"
    ]
