"""Sales written straight into the tables, as a paid checkout leaves them: orders, and units sold at a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storefront.models import Order, OrderStatus, Release, Unit, UnitStatus
from tests.factories import make_release


def sell_units(
    session: Session,
    release: Release,
    moments: Sequence[datetime],
    *,
    quantity: int = 1,
    status: str = OrderStatus.PAID,
) -> list[Order]:
    """At each moment, one order buys the `quantity` lowest available numbers of the release."""
    orders = []
    for moment in moments:
        numbers = session.scalars(
            sa.select(Unit.number)
            .where(Unit.release_id == release.id, Unit.status == UnitStatus.AVAILABLE)
            .order_by(Unit.number)
            .limit(quantity)
        ).all()
        assert len(numbers) == quantity, "not enough units left to sell"
        order = Order(
            release_id=release.id,
            email="buyer@example.com",
            buyer_key="buyer@example.com",
            quantity=quantity,
            unit_amount=release.price_amount,
            amount_total=quantity * release.price_amount,
            currency=release.currency,
            status=status,
            created_at=moment,
        )
        session.add(order)
        session.flush()
        session.execute(
            sa.update(Unit)
            .where(Unit.release_id == release.id, Unit.number.in_(numbers))
            .values(status=UnitStatus.SOLD, order_id=order.id, sold_at=moment)
        )
        orders.append(order)
    session.flush()
    return orders


def withhold_numbers(session: Session, release: Release, numbers: Sequence[int]) -> None:
    """Keep numbers back as the producer would (the withhold feature itself is tested elsewhere)."""
    session.execute(
        sa.update(Unit)
        .where(Unit.release_id == release.id, Unit.number.in_(list(numbers)))
        .values(status=UnitStatus.WITHHELD)
    )


def make_big_release(
    session: Session, *, units: int, sold_moments: Sequence[datetime], on_sale_at: datetime, per_order: int = 10
) -> Release:
    """A release of `units` units, bulk-inserted, whose first len(sold_moments) numbers sold at those moments.

    Orders of `per_order` units each; unit i was sold at sold_moments[i] (the moments need not be sorted).
    """
    sold = len(sold_moments)
    release = make_release(session, units=1, on_sale_at=on_sale_at)
    # Numbered here instead: the sold units first, then the available ones.
    session.execute(sa.delete(Unit).where(Unit.release_id == release.id))
    release.total_units = units
    order_count = -(-sold // per_order)
    orders = [
        {
            "release_id": release.id,
            "reference": f"SB-BULK{release.id}-{index}",
            "email": f"buyer{index}@example.com",
            "buyer_key": f"buyer{index}@example.com",
            "quantity": min(per_order, sold - index * per_order),
            "unit_amount": release.price_amount,
            "amount_total": min(per_order, sold - index * per_order) * release.price_amount,
            "currency": release.currency,
            "status": OrderStatus.PAID,
            "created_at": sold_moments[index * per_order],
        }
        for index in range(order_count)
    ]
    if orders:
        session.execute(sa.insert(Order), orders)
    order_ids = session.scalars(sa.select(Order.id).where(Order.release_id == release.id).order_by(Order.id)).all()
    session.execute(
        sa.insert(Unit),
        [
            {
                "release_id": release.id,
                "number": index + 1,
                "status": UnitStatus.SOLD,
                "order_id": order_ids[index // per_order],
                "sold_at": moment,
            }
            for index, moment in enumerate(sold_moments)
        ]
        + [
            {
                "release_id": release.id,
                "number": number,
                "status": UnitStatus.AVAILABLE,
                "order_id": None,
                "sold_at": None,
            }
            for number in range(sold + 1, units + 1)
        ],
    )
    session.flush()
    return release
