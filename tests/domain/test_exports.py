"""The orders export's rows and the packing sheet's labels, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storefront.domain.exports import (
    address_lines,
    count_packing_labels,
    neutralise_formula,
    order_csv_header,
    order_csv_rows,
    packing_labels,
    plain_amount,
)
from storefront.domain.orders import OrderFilter
from storefront.models import FulfilmentStatus, OrderStatus, RefundStatus, UnitStatus
from storefront.unit_of_work import write_transaction
from tests.export_data import StatementCounter, place_order, refund_units
from tests.factories import make_release

DUBLIN = ZoneInfo("Europe/Dublin")
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
HEADER = order_csv_header("Europe/Dublin")


def at(hours: float) -> datetime:
    return ON_SALE + timedelta(hours=hours)


def export(session, wanted: OrderFilter | None = None) -> list[dict[str, str]]:
    """The export's rows as dicts by header, as a spreadsheet would read them back."""
    rows = order_csv_rows(session, wanted or OrderFilter(), DUBLIN)
    try:
        return [dict(zip(HEADER, row, strict=True)) for row in rows]
    finally:
        rows.close()


# --- Cells ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://evil.example","Click")', '\'=HYPERLINK("http://evil.example","Click")'),
        ("+353 1 234 5678", "'+353 1 234 5678"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Aoife Byrne", "Aoife Byrne"),
        ("1 Main Street", "1 Main Street"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_prefixed_with_a_quote(cell, shown):
    assert neutralise_formula(cell) == shown


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (8900, "EUR", "89.00"),
        (5, "EUR", "0.05"),
        (123456, "usd", "1234.56"),
        (8900, "JPY", "8900"),
        (None, "EUR", "0.00"),
    ],
)
def test_amounts_are_plain_decimals(amount, currency, text):
    assert plain_amount(amount, currency) == text


def test_address_lines_follow_the_destination():
    assert address_lines(
        "Aoife Byrne",
        {"line1": "1 Main St", "line2": None, "city": "Dublin", "postal_code": "D02 XY45", "country": "IE"},
    ) == ["Aoife Byrne", "1 Main St", "Dublin", "D02 XY45", "Ireland"]
    assert address_lines(
        "Ann Lee",
        {
            "line1": "5 Elm St",
            "line2": "Apt 2",
            "city": "Austin",
            "state": "TX",
            "postal_code": "78701",
            "country": "US",
        },
    ) == ["Ann Lee", "5 Elm St", "Apt 2", "Austin, TX 78701", "United States"]
    assert address_lines(
        "Jan Jansen", {"line1": "Dorpsstraat 1", "city": "Utrecht", "postal_code": "3511 AB", "country": "nl"}
    ) == ["Jan Jansen", "Dorpsstraat 1", "3511 AB Utrecht", "Netherlands"]
    assert address_lines("Nobody", {}) == ["Nobody"]
    # Every country is written out; a code nobody knows is printed as it is (tests/test_addresses.py has more).
    korea = {"line1": "1 Road", "city": "Seoul", "country": "KR"}
    assert address_lines("Kim", korea) == ["Kim", "1 Road", "Seoul", "South Korea"]
    assert address_lines("Kim", {**korea, "country": "QQ"}) == ["Kim", "1 Road", "Seoul", "QQ"]
    assert address_lines("", None) == []


# --- Rows ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_orders(session):
    with write_transaction(session):
        release = make_release(session, units=240, price=8900, on_sale_at=ON_SALE)
        first = place_order(
            session, release, [17, 18], placed_at=at(1), email="aoife@example.ie", name="Aoife Ní Bhriain"
        )
        second = place_order(
            session,
            release,
            [3],
            placed_at=at(2),
            email="ben@example.com",
            name="Ben",
            address={"line1": "5 Elm St", "city": "Austin", "state": "TX", "postal_code": "78701", "country": "US"},
            fulfilment=FulfilmentStatus.SHIPPED,
        )
    return release, first, second


def test_one_row_per_unit_oldest_order_first(session, two_orders):
    release, first, second = two_orders
    rows = export(session)
    assert [(row["Order reference"], row["Number"]) for row in rows] == [
        (first.reference, "17"),
        (first.reference, "18"),
        (second.reference, "3"),
    ]
    row = rows[0]
    assert row["Placed at (UTC)"] == "2026-07-01T11:00:00Z"
    assert row["Placed at (Europe/Dublin)"] == "2026-07-01 12:00"
    assert row["Release"] == release.title
    assert row["Batch code"] == release.batch.code and row["Batch"] == release.batch.title
    assert row["Number of run"] == "No. 17 of 240"
    assert row["Buyer email"] == "aoife@example.ie" and row["Shipping name"] == "Aoife Ní Bhriain"
    assert (row["Address line 1"], row["City"], row["Postal code"], row["Country"]) == (
        "1 Main Street",
        "Dublin",
        "D02 XY45",
        "IE",
    )
    assert (row["Order status"], row["Unit status"]) == ("paid", "paid")
    assert (row["Unit price"], row["Currency"], row["Order total"], row["Amount refunded"]) == (
        "89.00",
        "EUR",
        "178.00",
        "0.00",
    )
    assert row["Packed at (Europe/Dublin)"] == row["Shipped at (Europe/Dublin)"] == row["Carrier"] == ""
    shipped = rows[2]
    assert (shipped["Order status"], shipped["Unit status"]) == ("shipped", "shipped")
    assert shipped["State or region"] == "TX"
    assert shipped["Packed at (Europe/Dublin)"] == "2026-07-02 13:00"
    assert shipped["Shipped at (Europe/Dublin)"] == "2026-07-03 13:00"
    assert (shipped["Carrier"], shipped["Tracking number"]) == ("An Post", "CX123456789IE")


def test_refunded_and_returned_units_say_so(session, clock):
    with write_transaction(session):
        release = make_release(session, units=20, price=5000, on_sale_at=ON_SALE)
        partly = place_order(session, release, [1, 2, 3], placed_at=at(1), email="partly@example.com")
        # No. 1 refunded and kept by the buyer (retired), No. 2 refunded and put back on sale, No. 3 still paid.
        refund_units(session, partly, [1, 2], at=at(5), return_to_sale=[2])
        # No. 2 sold again, to somebody else.
        again = place_order(session, release, [2], placed_at=at(6), email="second@example.com")
        pending = place_order(
            session, release, [4, 5], placed_at=at(2), email="pending@example.com", status=OrderStatus.REFUNDING
        )
        refund_units(session, pending, [4], at=at(5), status=RefundStatus.PENDING)
        refused = place_order(session, release, [6], placed_at=at(3), email="refused@example.com")
        refund_units(session, refused, [6], at=at(5), status=RefundStatus.FAILED)
        whole = place_order(
            session, release, [7], placed_at=at(4), email="whole@example.com", status=OrderStatus.REFUNDED
        )
        refund_units(session, whole, [7], at=at(5), return_to_sale=[7])
        # Paid after its hold had ended: no units, refunded in full.
        unitless = place_order(
            session, release, [], placed_at=at(4.5), email="late@example.com", status=OrderStatus.REFUNDED
        )

    rows = export(session)
    by_unit = {(row["Buyer email"], row["Number"]): row for row in rows}
    assert [(row["Buyer email"], row["Number"], row["Unit status"]) for row in rows] == [
        ("partly@example.com", "1", "refunded"),
        ("partly@example.com", "2", "returned to sale"),
        ("partly@example.com", "3", "paid"),
        ("pending@example.com", "4", "refunding"),
        ("pending@example.com", "5", "refunding"),
        ("refused@example.com", "6", "paid"),
        ("whole@example.com", "7", "returned to sale"),
        ("late@example.com", "", "refunded"),
        ("second@example.com", "2", "paid"),
    ]
    assert by_unit["partly@example.com", "1"]["Order status"] == "paid"
    assert by_unit["partly@example.com", "1"]["Amount refunded"] == "100.00"
    assert by_unit["partly@example.com", "3"]["Order total"] == "150.00"
    assert by_unit["pending@example.com", "4"]["Amount refunded"] == "0.00"  # not sent yet
    assert by_unit["whole@example.com", "7"]["Order status"] == "refunded"
    late = by_unit["late@example.com", ""]
    assert late["Order reference"] == unitless.reference and late["Number of run"] == ""
    assert by_unit["second@example.com", "2"]["Order reference"] == again.reference
    assert session.get(type(again), again.id).units[0].status == UnitStatus.SOLD


def test_the_filter_narrows_the_rows(session):
    with write_transaction(session):
        release = make_release(session, units=50, on_sale_at=ON_SALE)
        other = make_release(session, units=50, on_sale_at=ON_SALE)
        first = place_order(session, release, [17, 18], placed_at=at(1), email="aoife@example.ie")
        packed = place_order(
            session, release, [3], placed_at=at(30), email="ben@example.com", fulfilment=FulfilmentStatus.PACKED
        )
        elsewhere = place_order(session, other, [17], placed_at=at(2), email="cara@example.com")

    def references(**wanted) -> list[str]:
        return [row["Order reference"] for row in export(session, OrderFilter(**wanted))]

    assert references(release_id=other.id) == [elsewhere.reference]
    assert references(status="packed") == [packed.reference]
    assert references(search="ben@") == [packed.reference]
    # A number matches the orders that own it, and every unit of those orders is exported.
    assert references(search="No. 17") == [first.reference, first.reference, elsewhere.reference]
    assert references(release_id=release.id, search="18") == [first.reference, first.reference]
    assert references(placed_from=at(24), placed_before=at(48)) == [packed.reference]
    assert references(status="refunded") == []


def test_the_export_is_one_statement(session, two_orders, app):
    with StatementCounter(session.get_bind()) as counter:
        assert len(export(session)) == 3
    assert len([statement for statement in counter.statements if statement.startswith("SELECT")]) == 1


def test_rows_parse_back_through_the_csv_module(session, two_orders):
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow(HEADER)
    rows = order_csv_rows(session, OrderFilter(), DUBLIN)
    writer.writerows(rows)
    parsed = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [row["Number"] for row in parsed] == ["17", "18", "3"]
    assert parsed[0]["Shipping name"] == "Aoife Ní Bhriain"


# --- Packing labels -------------------------------------------------------------------------------------------------


def test_labels_leave_out_refunds_and_shipped_orders(session):
    with write_transaction(session):
        release = make_release(session, units=240, on_sale_at=ON_SALE)
        partly = place_order(session, release, [17, 18, 19], placed_at=at(1), name="Aoife Byrne")
        refund_units(session, partly, [18], at=at(2))
        place_order(session, release, [20], placed_at=at(2), status=OrderStatus.REFUNDING)
        place_order(session, release, [21], placed_at=at(2), status=OrderStatus.REFUNDED)
        shipped = place_order(session, release, [22], placed_at=at(3), fulfilment=FulfilmentStatus.SHIPPED)
        packed = place_order(session, release, [1], placed_at=at(4), fulfilment=FulfilmentStatus.PACKED)

    labels = packing_labels(session, OrderFilter(), include_shipped=False, limit=100)
    assert [(label.reference, label.number) for label in labels] == [
        (partly.reference, 17),
        (partly.reference, 19),
        (packed.reference, 1),
    ]
    assert count_packing_labels(session, OrderFilter(), include_shipped=False) == 3
    label = labels[0]
    assert label.number_of_run == "No. 17 of 240"
    assert (label.batch_code, label.batch_title, label.release_title) == (
        release.batch.code,
        release.batch.title,
        release.title,
    )
    assert label.address == ("Aoife Byrne", "1 Main Street", "Dublin", "D02 XY45", "Ireland")

    with_shipped = packing_labels(session, OrderFilter(), include_shipped=True, limit=100)
    assert shipped.reference in {label.reference for label in with_shipped}
    assert count_packing_labels(session, OrderFilter(), include_shipped=True) == 4
    page = packing_labels(session, OrderFilter(), include_shipped=True, limit=2, offset=2)
    assert [label.number for label in page] == [22, 1]
    # The search by number must not narrow the order to that one unit.
    assert [
        label.number for label in packing_labels(session, OrderFilter(search="17"), include_shipped=False, limit=10)
    ] == [17, 19]
