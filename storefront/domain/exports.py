"""Orders leaving the workspace: the rows of the orders CSV and the labels of the packing sheet, one query each.

The CSV has one row per unit an order was sold: the units it owns now (refunded ones included: a refund is not
a restock, a retired unit stays sold to its order), and the units it gave back to sale through a refund (a refund
line with `returned_at` set). A returned unit may since have been sold to somebody else: it then appears twice,
once under each order, each row saying what that unit is to that order. An order left with no unit at all (its
payment came after its hold ended and it was refunded) still gets one row, with the number columns empty, so the
export accounts for every order and its money.

The rows stream: the query runs with `yield_per`, so the database hands them over a thousand at a time (a
server-side cursor on PostgreSQL; SQLite steps through its result lazily) and 100,000 units never sit in memory.
Cells are made safe for spreadsheets here (see `neutralise_formula`), so no reader of these rows can forget to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from sqlalchemy import CompoundSelect, Select, and_, exists, func, null, select, text, union_all
from sqlalchemy.orm import Session, aliased

# The label's lines as the destination's post office writes them; shared with the buyer's mails and pages.
from storefront.addresses import address_field, address_lines
from storefront.domain.orders import OrderFilter, apply_filter, status_shown
from storefront.domain.shipping import carrier_name
from storefront.models import (
    Batch,
    FulfilmentStatus,
    Order,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Release,
    Unit,
)
from storefront.text import ZERO_DECIMAL_CURRENCIES

# Rows fetched from the database at a time while streaming the CSV.
EXPORT_BATCH_SIZE = 1000

# OWASP "CSV Injection": a spreadsheet reads a cell starting with one of these as a formula (or as the start of
# one: a tab or carriage return before "=" is skipped by some importers).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# What a unit is to its order when a refund line covers it; otherwise the order's own word (status_shown).
UNIT_RETURNED = "returned to sale"
UNIT_REFUNDED = "refunded"
UNIT_REFUNDING = "refunding"


def neutralise_formula(value: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with a single quote, so it is shown as the text it is."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def plain_amount(amount_minor: int | None, currency: str) -> str:
    """Minor units as a plain decimal a spreadsheet sums: 8900 EUR is "89.00", 8900 JPY is "8900"."""
    amount_minor = amount_minor or 0
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def utc_text(moment: datetime | None) -> str:
    """ISO 8601 in UTC to the second: "2026-07-01T09:00:00Z"; empty for None."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_text(moment: datetime | None, zone: tzinfo) -> str:
    """The moment on the shop's clock as a spreadsheet reads a date and time: "2026-07-01 10:00"; empty for None."""
    return "" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def number_of_run(number: int | None, total_units: int) -> str:
    return "" if number is None else f"No. {number} of {total_units}"


# --- The CSV ---------------------------------------------------------------------------------------------------------


def order_csv_header(zone_name: str) -> tuple[str, ...]:
    """The CSV's first row; local times are on the shop's clock, named in their headers."""
    return (
        "Order reference",
        "Placed at (UTC)",
        f"Placed at ({zone_name})",
        "Release",
        "Batch code",
        "Batch",
        "Number",
        "Number of run",
        "Buyer email",
        "Shipping name",
        "Address line 1",
        "Address line 2",
        "City",
        "State or region",
        "Postal code",
        "Country",
        "Order status",
        "Unit status",
        "Unit price",
        "Currency",
        "Shipping",
        "Order total",
        "Amount refunded",
        f"Packed at ({zone_name})",
        f"Shipped at ({zone_name})",
        "Carrier",
        "Tracking number",
    )


def order_csv_statement(wanted: OrderFilter) -> CompoundSelect:
    """One statement for the whole export: the units orders own, the units they returned to sale, and the orders
    left with neither, each with its order, release and batch; oldest order first, then by number.

    Three SELECTs joined by UNION ALL, each filtered on its own, so each can walk its indexes (order by release or
    date, then its units by order); one SELECT over a union of units was quadratic on SQLite once filtered.
    """
    # Succeeded refunds of the order, by the index on refund.order_id.
    refunded = (
        select(func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.order_id == Order.id, Refund.status == RefundStatus.SUCCEEDED)
        .correlate(Order)
        .scalar_subquery()
    )

    def rows(number, line_id, returned_at, refund_status) -> Select:
        return select(
            Order.reference,
            # Labelled: SQLite sorts a compound SELECT only by its result columns' own names.
            Order.created_at.label("placed_at"),
            Order.id.label("order_id"),
            Release.title.label("release_title"),
            Batch.code,
            Batch.title.label("batch_title"),
            number.label("number"),
            Release.total_units,
            Order.email,
            Order.shipping_name,
            Order.shipping_address,
            status_shown.label("order_status"),
            line_id.label("line_id"),
            returned_at.label("returned_at"),
            refund_status.label("refund_status"),
            Order.unit_amount,
            Order.currency,
            Order.shipping_amount,
            Order.amount_total,
            refunded.label("amount_refunded"),
            Order.packed_at,
            Order.shipped_at,
            Order.carrier,
            Order.tracking_number,
        )

    def of_wanted_orders(statement: Select) -> Select:
        statement = statement.join(Release, Release.id == Order.release_id).join(Batch, Batch.id == Release.batch_id)
        return apply_filter(statement, wanted)

    # Aliased: the search condition asks `exists(unit ...)` of each order, which must not correlate to this unit.
    unit = aliased(Unit, name="sold_unit")
    # The one live line a unit can have (a partial unique index), on this order: a unit returned to sale and sold
    # again has its first order's line, which must not colour its second order's row.
    line = aliased(RefundLine, name="live_line")
    owned = of_wanted_orders(
        rows(unit.number, line.id, line.returned_at, Refund.status)
        .select_from(unit)
        .join(Order, Order.id == unit.order_id)
        .outerjoin(line, and_(line.unit_id == unit.id, line.order_id == Order.id, line.voided_at.is_(None)))
        .outerjoin(Refund, Refund.id == line.refund_id)
    )
    returned_line = aliased(RefundLine, name="returned_line")
    returned = of_wanted_orders(
        rows(returned_line.number, returned_line.id, returned_line.returned_at, Refund.status)
        .select_from(returned_line)
        .join(Order, Order.id == returned_line.order_id)
        .join(Refund, Refund.id == returned_line.refund_id)
        .where(returned_line.returned_at.is_not(None), returned_line.voided_at.is_(None))
    )
    owns_a_unit = exists().where(Unit.order_id == Order.id)
    returned_a_unit = exists().where(RefundLine.order_id == Order.id, RefundLine.returned_at.is_not(None))
    unitless = of_wanted_orders(
        rows(null(), null(), null(), null()).select_from(Order).where(~owns_a_unit, ~returned_a_unit)
    )
    everything = union_all(owned, returned, unitless)
    columns = everything.selected_columns
    return everything.order_by(columns.placed_at, columns.order_id, columns.number)


def unit_status(order_status: str, line_id: int | None, returned_at: datetime | None, refund_status: str | None) -> str:
    """What a unit is to its order: returned to sale, refunded or being refunded when a live refund line covers
    it; else the order's word."""
    if line_id is None:
        return order_status
    if returned_at is not None:
        return UNIT_RETURNED
    if refund_status == RefundStatus.SUCCEEDED:
        return UNIT_REFUNDED
    if refund_status in (RefundStatus.PENDING, RefundStatus.SENDING):
        return UNIT_REFUNDING
    return order_status


def order_csv_rows(session: Session, wanted: OrderFilter, zone: tzinfo) -> Iterator[tuple[str, ...]]:
    """Yield the CSV's rows (without the header) for the orders `wanted` names, streamed from one query.

    Close the generator when done with it (a `finally` or contextlib.closing): that closes the database cursor,
    which matters when the reader stops half-way (a client that went away).
    """
    if session.get_bind().dialect.name == "postgresql":
        # A cursor is planned for its first 10% of rows by default (cursor_tuple_fraction): nested loops that,
        # for an earlier shape of this query, took 77 s instead of 1 s over 100,000 units. The export reads every
        # row, so plan for the whole result. SET LOCAL ends with this read transaction.
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    result = session.execute(order_csv_statement(wanted), execution_options={"yield_per": EXPORT_BATCH_SIZE})
    try:
        for row in result:
            yield tuple(neutralise_formula(cell) for cell in order_csv_cells(row, zone))
    finally:
        result.close()


def order_csv_cells(row, zone: tzinfo) -> Sequence[str]:
    address = row.shipping_address
    return (
        row.reference,
        utc_text(row.placed_at),
        local_text(row.placed_at, zone),
        row.release_title,
        row.code,
        row.batch_title,
        "" if row.number is None else str(row.number),
        number_of_run(row.number, row.total_units),
        row.email,
        row.shipping_name or "",
        address_field(address, "line1"),
        address_field(address, "line2"),
        address_field(address, "city"),
        address_field(address, "state"),
        address_field(address, "postal_code"),
        address_field(address, "country"),
        row.order_status,
        unit_status(row.order_status, row.line_id, row.returned_at, row.refund_status),
        plain_amount(row.unit_amount, row.currency),
        row.currency,
        # Once per order, repeated on each of its units' rows as the order total is.
        plain_amount(row.shipping_amount, row.currency),
        plain_amount(row.amount_total, row.currency),
        plain_amount(row.amount_refunded, row.currency),
        local_text(row.packed_at, zone),
        local_text(row.shipped_at, zone),
        carrier_name(row.carrier) if row.carrier else "",
        row.tracking_number or "",
    )


# --- The packing sheet -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackingLabel:
    """One unit to pack: what its label says."""

    reference: str
    number: int
    total_units: int
    batch_code: str
    batch_title: str
    release_title: str
    address: tuple[str, ...]  # name first, then the address lines

    @property
    def number_of_run(self) -> str:
        return number_of_run(self.number, self.total_units)


def packing_statement(wanted: OrderFilter, *, include_shipped: bool) -> Select:
    """Units still to pack (or, with `include_shipped`, also shipped ones) of the orders `wanted` names.

    Only paid orders: a refunding or refunded order is not packed. A unit covered by a live refund line is left
    out too (a partly refunded order ships its other units).
    """
    # Aliased: the search condition asks `exists(unit ...)` of each order, which must not correlate to this unit.
    unit = aliased(Unit, name="packed_unit")
    line = aliased(RefundLine, name="live_line")
    statement = (
        select(
            unit.number,
            Order.reference,
            Order.shipping_name,
            Order.shipping_address,
            Release.total_units,
            Release.title.label("release_title"),
            Batch.code,
            Batch.title.label("batch_title"),
        )
        .select_from(unit)
        .join(Order, Order.id == unit.order_id)
        .join(Release, Release.id == Order.release_id)
        .join(Batch, Batch.id == Release.batch_id)
        .outerjoin(line, and_(line.unit_id == unit.id, line.order_id == Order.id, line.voided_at.is_(None)))
        .where(Order.status == OrderStatus.PAID, line.id.is_(None))
    )
    if not include_shipped:
        statement = statement.where(Order.fulfilment_status != FulfilmentStatus.SHIPPED)
    # Oldest order first (first come, first packed), then by number.
    return apply_filter(statement, wanted).order_by(Order.created_at, Order.id, unit.number)


def count_packing_labels(session: Session, wanted: OrderFilter, *, include_shipped: bool) -> int:
    """How many labels the packing sheet has for this filter."""
    labels = packing_statement(wanted, include_shipped=include_shipped).order_by(None).subquery()
    return session.scalar(select(func.count()).select_from(labels)) or 0


def packing_labels(
    session: Session, wanted: OrderFilter, *, include_shipped: bool, limit: int, offset: int = 0
) -> list[PackingLabel]:
    """The labels from `offset`, at most `limit`, in packing order."""
    statement = packing_statement(wanted, include_shipped=include_shipped).limit(limit).offset(offset)
    return [
        PackingLabel(
            reference=row.reference,
            number=row.number,
            total_units=row.total_units,
            batch_code=row.code,
            batch_title=row.batch_title,
            release_title=row.release_title,
            address=tuple(address_lines(row.shipping_name or "", row.shipping_address)),
        )
        for row in session.execute(statement)
    ]
