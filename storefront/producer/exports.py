"""Orders leaving the workspace: the CSV download and the printable packing sheet, for the orders list's filter.

Both read the filter with `read_order_filter`, as the orders list does, so a link built from the list's
`read_filter.args` gives the same orders; a filter with a problem is answered 400 naming it, never a file.

The CSV streams. The request's own read transaction ends before the response goes out, and the rows are read on a
session of the export's own, opened when the first chunk is asked for and closed when the last one is sent, or as
soon as the client goes away (the WSGI server closes the response: GeneratorExit at the pending `yield`). On SQLite
(WAL) the long read does not block writers; on PostgreSQL it is a server-side cursor in a read transaction, which
blocks nobody either (only DDL would wait for it).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, stream_with_context, url_for
from sqlalchemy.orm import Session

from storefront import clock
from storefront.domain.exports import (
    count_packing_labels,
    order_csv_header,
    order_csv_rows,
    packing_labels,
)
from storefront.domain.orders import OrderFilter
from storefront.extensions import db
from storefront.producer import bp
from storefront.producer.order_filters import ReadFilter, read_order_filter
from storefront.producer.orders import release_choices
from storefront.shop_time import shop_zone
from storefront.unit_of_work import end_read

# Excel reads a CSV as UTF-8 (accents in names and addresses) only when it starts with a byte order mark.
UTF8_BOM = "\ufeff"
# Characters written before a chunk is sent: big enough to keep the network busy, small enough to stay flat.
CSV_CHUNK_CHARACTERS = 64 * 1024


@dataclass(frozen=True)
class Paper:
    """A label stock: the paper size and its grid (which the print stylesheet draws for `key`)."""

    key: str
    labels_per_sheet: int
    description: str


PAPERS = {
    "a4": Paper("a4", 14, "A4 sheets of 2 × 7 labels, 99.1 × 38.1 mm (such as Avery L7163)"),
    "letter": Paper("letter", 10, "Letter sheets of 2 × 5 labels, 4 × 2 in (such as Avery 5163)"),
}
DEFAULT_PAPER = PAPERS["a4"]
# Labels on one page of the sheet: 70 full A4 sheets or 98 full Letter ones, so a part never ends half-way through
# a sheet and the parts print one after the other on the same stock. Thousands of labels in one page would make a
# browser crawl to lay out and preview them.
LABELS_PER_PART = 980


def read_filter_or_400(choices: list[tuple[str, str]]) -> ReadFilter:
    """The filter in the query string; a problem in it is answered 400 with the problem named."""
    read = read_order_filter(request.args, choices)
    if read.problems:
        abort(400, description="The orders filter has a problem. " + " ".join(read.problems))
    return read


def filter_summary(read: ReadFilter, choices: list[tuple[str, str]]) -> list[str]:
    """The filter in words, one phrase per field set: "release Rye batch 2: Cask strength", "status paid"..."""
    args = read.args
    phrases = []
    if "release" in args:
        phrases.append(f"release {dict(choices).get(args['release'], '#' + args['release'])}")
    if "status" in args:
        phrases.append(f"status {args['status']}")
    if "placed_from" in args:
        phrases.append(f"placed from {args['placed_from']}")
    if "placed_to" in args:
        phrases.append(f"placed up to {args['placed_to']}")
    if "q" in args:
        phrases.append(f"matching “{args['q']}”")
    return phrases


# --- The CSV ---------------------------------------------------------------------------------------------------------


@bp.get("/orders.csv")
def export_orders_csv():
    """Download the filtered orders as CSV, one row per unit, streamed."""
    read = read_filter_or_400(release_choices())
    zone = shop_zone()
    filename = f"orders-{clock.now().astimezone(zone):%Y-%m-%d}.csv"
    # Nothing of the request's read is needed any more: end it, so its connection goes back to the pool now
    # instead of staying checked out for as long as the download takes.
    end_read(db.session)
    response = Response(stream_with_context(csv_chunks(read.wanted, zone)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Names and addresses: not for shared caches, nor for the browser's.
    response.headers["Cache-Control"] = "no-store"
    return response


def csv_chunks(wanted: OrderFilter, zone: ZoneInfo) -> Iterator[bytes]:
    """The CSV file in UTF-8 chunks, read on a session of its own that is closed however the stream ends."""
    session = Session(db.engine)
    rows = order_csv_rows(session, wanted, zone)
    buffer = io.StringIO()
    # Every cell quoted, as OWASP advises with the formula prefix (order_csv_rows adds that).
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    try:
        buffer.write(UTF8_BOM)
        writer.writerow(order_csv_header(zone.key))
        for row in rows:
            writer.writerow(row)
            if buffer.tell() >= CSV_CHUNK_CHARACTERS:
                yield take_chunk(buffer)
        yield take_chunk(buffer)
    finally:
        # First the cursor (a PostgreSQL server-side cursor must close before its transaction ends), then the
        # session, which rolls back the read and returns the connection to the pool.
        rows.close()
        session.close()


def take_chunk(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return chunk


# --- The packing sheet -----------------------------------------------------------------------------------------------


@bp.get("/orders/packing-sheet")
def show_packing_sheet():
    """A printable page of labels, one per unit still to ship, on A4 or Letter label sheets."""
    choices = release_choices()
    read = read_filter_or_400(choices)
    # An unknown paper is not worth refusing the page for: the sheet shows which paper it is laid out for.
    paper = PAPERS.get(request.args.get("paper", ""), DEFAULT_PAPER)
    # Asking for shipped orders by status means wanting their labels (a reprint), without ticking the box too.
    include_shipped = request.args.get("include_shipped") == "1" or read.wanted.status == "shipped"
    total = count_packing_labels(db.session, read.wanted, include_shipped=include_shipped)
    parts = max(1, math.ceil(total / LABELS_PER_PART))
    part = min(max(request.args.get("part", 1, type=int), 1), parts)
    labels = packing_labels(
        db.session,
        read.wanted,
        include_shipped=include_shipped,
        limit=LABELS_PER_PART,
        offset=(part - 1) * LABELS_PER_PART,
    )
    sheets = [labels[start : start + paper.labels_per_sheet] for start in range(0, len(labels), paper.labels_per_sheet)]
    sheet_args = {**read.args, "paper": paper.key, **({"include_shipped": "1"} if include_shipped else {})}
    return render_template(
        "producer/packing_sheet.html",
        read_filter=read,
        filter_summary=filter_summary(read, choices),
        orders_url=url_for("producer.list_orders", **read.args),
        csv_url=url_for("producer.export_orders_csv", **read.args),
        paper=paper,
        papers=PAPERS.values(),
        include_shipped=include_shipped,
        total=total,
        labels_per_part=LABELS_PER_PART,
        part=part,
        part_urls=[url_for("producer.show_packing_sheet", **sheet_args, part=number) for number in range(1, parts + 1)],
        first_label=(part - 1) * LABELS_PER_PART + 1,
        labels=labels,
        sheets=sheets,
    )
