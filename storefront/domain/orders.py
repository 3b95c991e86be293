"""The producer's view of orders: the status a person reads, and finding orders by release, status, date or text.

An order carries two statuses: the money (`Order.status`: paid, refunding, refunded) and the goods
(`Order.fulfilment_status`: unfulfilled, packed, shipped). The workspace shows one word, money first: an order
being refunded says "refunding" whether or not it was packed; a paid order says where its goods are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case, exists, func, or_, select
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.models import FulfilmentStatus, Order, OrderEvent, OrderStatus, Unit

# The statuses a producer filters by, in the order a drop moves through them.
ORDER_STATUSES = ("paid", "packed", "shipped", "refunding", "refunded")

# SQL for the one word the workspace shows (see the module docstring).
status_shown = case(
    (Order.status == OrderStatus.REFUNDED, "refunded"),
    (Order.status == OrderStatus.REFUNDING, "refunding"),
    (Order.fulfilment_status == FulfilmentStatus.SHIPPED, "shipped"),
    (Order.fulfilment_status == FulfilmentStatus.PACKED, "packed"),
    else_="paid",
)

NUMBER_QUERY = re.compile(r"^(?:no\.?\s*)?#?(\d{1,6})$", re.IGNORECASE)


def display_status(order: Order) -> str:
    """The one word for an order, as status_shown computes it in SQL."""
    if order.status in (OrderStatus.REFUNDED, OrderStatus.REFUNDING):
        return str(order.status)
    if order.fulfilment_status in (FulfilmentStatus.SHIPPED, FulfilmentStatus.PACKED):
        return str(order.fulfilment_status)
    return "paid"


@dataclass(frozen=True)
class OrderFilter:
    """What the producer asked to see; every field optional. Times are UTC bounds: placed_from <= t < placed_before."""

    release_id: int | None = None
    status: str | None = None
    placed_from: datetime | None = None
    placed_before: datetime | None = None
    search: str = ""

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in ORDER_STATUSES:
            raise ValueError(f"Unknown order status {self.status!r}")


def apply_filter(statement: Select, wanted: OrderFilter) -> Select:
    """Narrow a SELECT that involves Order to the orders `wanted` describes."""
    if wanted.release_id is not None:
        statement = statement.where(Order.release_id == wanted.release_id)
    if wanted.status is not None:
        statement = statement.where(status_shown == wanted.status)
    if wanted.placed_from is not None:
        statement = statement.where(Order.created_at >= wanted.placed_from)
    if wanted.placed_before is not None:
        statement = statement.where(Order.created_at < wanted.placed_before)
    text = wanted.search.strip()
    if text:
        statement = statement.where(search_condition(text))
    return statement


def search_condition(text: str):
    """Match an order by its number ("17", "No. 17"), its reference (SB-…), the buyer's email or name."""
    number = NUMBER_QUERY.match(text)
    if number:
        owns_number = exists().where(Unit.order_id == Order.id, Unit.number == int(number.group(1)))
        return or_(owns_number, Order.reference == text.upper())
    pattern = f"%{escape_like(text.lower())}%"
    return or_(
        func.lower(Order.email).like(pattern, escape="\\"),
        func.lower(Order.shipping_name).like(pattern, escape="\\"),
        func.lower(Order.reference).like(pattern, escape="\\"),
    )


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def orders_query(wanted: OrderFilter) -> Select:
    """Orders matching `wanted`, newest first (ties broken by id, so pages never skip or repeat an order)."""
    return apply_filter(select(Order), wanted).order_by(Order.created_at.desc(), Order.id.desc())


def record_order_event(
    session: Session, order_id: int, kind: str, summary: str, now: datetime, actor_email: str = ""
) -> OrderEvent:
    """Add a line to an order's timeline, in the transaction that made it happen."""
    require_write_transaction(session)
    event = OrderEvent(order_id=order_id, occurred_at=now, kind=kind, summary=summary, actor_email=actor_email)
    session.add(event)
    session.flush()
    return event
