"""Orders written straight into the tables for the export tests: buyers with addresses, refunds with their lines,
and bulk sales of tens of thousands of units."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storefront.models import (
    FulfilmentStatus,
    Order,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Release,
    Unit,
    UnitStatus,
)

DUBLIN = {"line1": "1 Main Street", "line2": "", "city": "Dublin", "postal_code": "D02 XY45", "country": "IE"}


def place_order(
    session: Session,
    release: Release,
    numbers: Sequence[int],
    *,
    placed_at: datetime,
    email: str = "buyer@example.com",
    name: str = "Aoife Byrne",
    address: dict | None = None,
    status: str = OrderStatus.PAID,
    fulfilment: str = FulfilmentStatus.UNFULFILLED,
) -> Order:
    """An order for these numbers of the release, paid at `placed_at`, with a shipping name and address."""
    order = Order(
        release_id=release.id,
        email=email,
        buyer_key=email.lower(),
        quantity=max(1, len(numbers)),
        unit_amount=release.price_amount,
        amount_total=max(1, len(numbers)) * release.price_amount,
        currency=release.currency,
        status=status,
        created_at=placed_at,
        shipping_name=name,
        shipping_address=dict(DUBLIN if address is None else address),
        fulfilment_status=fulfilment,
    )
    if fulfilment in (FulfilmentStatus.PACKED, FulfilmentStatus.SHIPPED):
        order.packed_at = placed_at + timedelta(days=1)
    if fulfilment == FulfilmentStatus.SHIPPED:
        order.shipped_at = placed_at + timedelta(days=2)
        order.carrier = "An Post"
        order.tracking_number = "CX123456789IE"
    session.add(order)
    session.flush()
    if numbers:
        session.execute(
            sa.update(Unit)
            .where(Unit.release_id == release.id, Unit.number.in_(list(numbers)))
            .values(status=UnitStatus.SOLD, order_id=order.id, sold_at=placed_at, hold_id=None, held_until=None)
        )
    session.flush()
    return order


def refund_units(
    session: Session,
    order: Order,
    numbers: Sequence[int],
    *,
    at: datetime,
    status: str = RefundStatus.SUCCEEDED,
    return_to_sale: Sequence[int] = (),
) -> Refund:
    """A refund of some of the order's units, as the refunds design leaves it.

    Succeeded: units in `return_to_sale` are back on sale with `returned_at` set. Failed: the lines are voided.
    """
    refund = Refund(
        order_id=order.id,
        payment_intent_id=f"pi_{order.reference}",
        amount=len(numbers) * order.unit_amount,
        currency=order.currency,
        reason="requested_by_customer",
        status=status,
        retry_until=at + timedelta(days=3),
        created_at=at,
        updated_at=at,
        requested_by="ann@distillery.ie",
        lease_until=at + timedelta(minutes=2) if status == RefundStatus.SENDING else None,
    )
    session.add(refund)
    session.flush()
    units = session.scalars(
        sa.select(Unit).where(Unit.release_id == order.release_id, Unit.number.in_(list(numbers)))
    ).all()
    for unit in units:
        returned = status == RefundStatus.SUCCEEDED and unit.number in return_to_sale
        session.add(
            RefundLine(
                refund_id=refund.id,
                order_id=order.id,
                unit_id=unit.id,
                release_id=unit.release_id,
                number=unit.number,
                return_to_sale=unit.number in return_to_sale,
                returned_at=at if returned else None,
                voided_at=at if status == RefundStatus.FAILED else None,
            )
        )
        if returned:
            unit.status, unit.order_id, unit.sold_at = UnitStatus.AVAILABLE, None, None
    session.flush()
    return refund


def sell_in_bulk(
    session: Session, release: Release, *, orders: int, units_per_order: int, first_placed_at: datetime
) -> None:
    """Sell the release's first orders x units_per_order numbers to `orders` orders, in a few statements."""
    rows = [
        {
            "release_id": release.id,
            "reference": f"SB-{release.id}-{index}",
            "email": f"buyer{index}@example.com",
            "buyer_key": f"buyer{index}@example.com",
            "quantity": units_per_order,
            "unit_amount": release.price_amount,
            "amount_total": units_per_order * release.price_amount,
            "currency": release.currency,
            "status": OrderStatus.PAID,
            "fulfilment_status": FulfilmentStatus.UNFULFILLED,
            "created_at": first_placed_at + timedelta(seconds=index),
            "shipping_name": f"Buyer Number {index}",
            "shipping_address": {**DUBLIN, "line1": f"{index} Main Street"},
        }
        for index in range(orders)
    ]
    session.execute(sa.insert(Order), rows)
    first, last = session.execute(
        sa.select(sa.func.min(Order.id), sa.func.max(Order.id)).where(Order.release_id == release.id)
    ).one()
    assert last - first == orders - 1, "the bulk orders' ids are not consecutive"
    session.execute(
        sa.update(Unit)
        .where(Unit.release_id == release.id, Unit.number <= orders * units_per_order)
        .values(
            status=UnitStatus.SOLD,
            order_id=first + (Unit.number - 1) // units_per_order,
            sold_at=first_placed_at,
        )
    )
    session.flush()


class StatementCounter:
    """Count the SQL statements an engine runs while the block runs."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self.record)

    def record(self, _conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        self.statements.append(statement)
