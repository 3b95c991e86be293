"""The producer's view of orders: the status a person reads, and finding orders by release, status, date or text.

An order carries two statuses: the money (`Order.status`: paid, refunding, refunded) and the goods
(`Order.fulfilment_status`: unfulfilled, packed, shipped). The workspace shows one word, money first: an order
being refunded says "refunding" whether or not it was packed; a paid order says where its goods are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain.activity import Actor, record_activity
from storefront.domain.errors import DomainError
from storefront.models import FulfilmentStatus, Order, OrderEvent, OrderStatus, Unit
from storefront.text import consecutive_runs

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


def numbers_text(numbers: Iterable[int], total: int) -> str:
    """Write an order's numbers as a person reads them: "No. 17 of 240", "No. 17, 18 of 240", "No. 17–20, 31 of 240".

    Runs of three or more consecutive numbers become ranges; an order without units says so.
    """
    runs = consecutive_runs(numbers)
    if not runs:
        return "no numbers"
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{run[0]}–{run[-1]}")
        else:
            parts.extend(str(number) for number in run)
    return f"No. {', '.join(parts)} of {total}"


NOTE_MAX = 2000


class InvalidNote(DomainError):
    """A note that is empty or too long."""


def add_order_note(session: Session, order_id: int, text: str, now: datetime, actor: Actor) -> OrderEvent:
    """Write the producer's note on the order's timeline (and a line in the activity log)."""
    require_write_transaction(session)
    text = (text or "").strip()
    if not text:
        raise InvalidNote("Write something in the note first.")
    if len(text) > NOTE_MAX:
        raise InvalidNote(f"A note can be at most {NOTE_MAX} characters.")
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    event = record_order_event(session, order.id, "note", text, now, actor_email=actor.email)
    record_activity(session, actor, "order.note", "order", order.id, f"Noted on order {order.reference}: {text}", now)
    return event


class OrderNotFound(DomainError):
    """An order id that names no order (a stale page, a tampered form)."""

    def __init__(self, order_id: object) -> None:
        super().__init__(f"There is no order {order_id}.")
        self.order_id = order_id


# --- One page of the producer's orders list ----------------------------------------------------------------------

ORDERS_PAGE_SIZE = 50


@dataclass(frozen=True)
class OrdersPage:
    """Up to a page of orders, newest first; whether there are newer and older ones; how many match in all."""

    orders: list[Order]
    has_newer: bool
    has_older: bool
    total: int
    # The page asked for (`before`/`after`) names no order: the newest page is shown instead.
    cursor_lost: bool = False


def placed_before(order: Order):
    """SQL condition: placed earlier than `order` in the list's order (newest first, ties by id)."""
    return or_(Order.created_at < order.created_at, and_(Order.created_at == order.created_at, Order.id < order.id))


def placed_after(order: Order):
    return or_(Order.created_at > order.created_at, and_(Order.created_at == order.created_at, Order.id > order.id))


def page_of_orders(
    session: Session,
    wanted: OrderFilter,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = ORDERS_PAGE_SIZE,
) -> OrdersPage:
    """The newest `limit` matching orders, those just older than order `before_id`, or just newer than `after_id`.

    Keyset paging on (placed, id): a page costs the same however deep it is, and an order placed meanwhile does not
    shift the next page (no order is skipped or shown twice). `before_id`/`after_id` are orders of the list shown.
    """
    total = session.scalar(apply_filter(select(func.count(Order.id)), wanted))
    cursor_id = before_id if before_id is not None else after_id
    cursor = session.get(Order, cursor_id) if cursor_id is not None else None
    lost = cursor_id is not None and cursor is None
    matching = apply_filter(select(Order), wanted)
    newest_first = (Order.created_at.desc(), Order.id.desc())
    if cursor is not None and after_id is not None:
        rows = list(
            session.scalars(matching.where(placed_after(cursor)).order_by(Order.created_at, Order.id).limit(limit + 1))
        )
        if len(rows) > limit:
            orders = list(reversed(rows[:limit]))
            has_older = orders_exist(session, matching, or_(placed_before(cursor), Order.id == cursor.id))
            return OrdersPage(orders, has_newer=True, has_older=has_older, total=total)
        # Paging back reached the newest orders: show the first page, full, as a fresh visit would.
        return page_of_orders(session, wanted, limit=limit)
    page_query = matching if cursor is None else matching.where(placed_before(cursor))
    rows = list(session.scalars(page_query.order_by(*newest_first).limit(limit + 1)))
    orders = rows[:limit]
    has_newer = cursor is not None and orders_exist(session, matching, or_(placed_after(cursor), Order.id == cursor.id))
    return OrdersPage(orders, has_newer=has_newer, has_older=len(rows) > limit, total=total, cursor_lost=lost)


def orders_exist(session: Session, matching: Select, condition) -> bool:
    return session.scalar(matching.where(condition).with_only_columns(Order.id).limit(1)) is not None
