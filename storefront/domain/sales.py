"""What the producer's dashboard shows of sales: revenue per release, units sold over time, and each release's
sales after refunds (sold, refunded, returned to sale, revenue net of refunds).

Every figure here comes from one aggregate query over all the releases asked about, so the dashboard issues the
same few statements whether a release has ten units or a hundred thousand. Units sold over time are bucketed in
SQL over the partial index ix_unit_release_sold_at (release_id, sold_at WHERE sold_at IS NOT NULL): the database
returns at most one row per bucket, never one row per unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Integer, Select, case, cast, extract, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storefront.domain.stock import ReleaseView, StockCount
from storefront.models import Order, OrderStatus, Refund, RefundLine, RefundStatus, ReleaseStatus, Unit, UnitStatus

# A chart is shown for a release that is selling, and for one that stopped selling (sold out, closed) at most this
# long after it went on sale; older releases have only their counts.
CHART_RECENT = timedelta(days=7)
# At most this many buckets (so at most one point more) per chart: enough for a smooth line, little to send.
MAX_BUCKETS = 120
# Bucket widths, in seconds, from a minute (the first two hours of a drop) to a day; longer spans use whole days.
BUCKET_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
DAY_SECONDS = 86400
# Bucket indexes the query gives sales outside a chart's window.
BEFORE_WINDOW = -1
AFTER_WINDOW = -2


# --- Revenue ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revenue:
    """What a release's orders brought in, by currency (minor units); refunds asked for or made, apart."""

    paid: dict[str, int] = field(default_factory=dict)
    paid_orders: int = 0
    refunded: dict[str, int] = field(default_factory=dict)
    refunded_orders: int = 0


def revenue_by_release(session: Session, release_ids: Iterable[int]) -> dict[int, Revenue]:
    """Sum each release's orders by status in one grouped query: paid is revenue, refunding/refunded is not."""
    release_ids = list(release_ids)
    if not release_ids:
        return {}
    rows = session.execute(
        select(Order.release_id, Order.status, Order.currency, func.count(), func.sum(Order.amount_total))
        .where(Order.release_id.in_(release_ids))
        .group_by(Order.release_id, Order.status, Order.currency)
    ).all()
    paid: dict[int, dict[str, int]] = {}
    paid_orders: dict[int, int] = {}
    refunded: dict[int, dict[str, int]] = {}
    refunded_orders: dict[int, int] = {}
    for release_id, status, currency, count, amount in rows:
        if status == OrderStatus.PAID:
            amounts, orders = paid, paid_orders
        else:  # refunding or refunded: the money is going, or has gone, back
            amounts, orders = refunded, refunded_orders
        by_currency = amounts.setdefault(release_id, {})
        by_currency[currency] = by_currency.get(currency, 0) + int(amount or 0)
        orders[release_id] = orders.get(release_id, 0) + count
    return {
        release_id: Revenue(
            paid=paid.get(release_id, {}),
            paid_orders=paid_orders.get(release_id, 0),
            refunded=refunded.get(release_id, {}),
            refunded_orders=refunded_orders.get(release_id, 0),
        )
        for release_id in release_ids
    }


# --- The sales summary: sold, refunded, returned to sale, revenue net of refunds ---------------------------------


@dataclass(frozen=True)
class SalesSummary:
    """A release's sales after refunds. Money by currency, in minor units."""

    sold: int = 0  # units sold now (a refunded unit kept by its buyer, retired, stays sold)
    refunded: int = 0  # units whose refund the gateway made, retired or returned to sale
    returned: int = 0  # of those, the units that went back on sale
    gross: dict[str, int] = field(default_factory=dict)  # what every order of it was paid
    refunds: dict[str, int] = field(default_factory=dict)  # what went back (refunds made, with or without units)

    @property
    def net(self) -> dict[str, int]:
        """What the release brought in once refunds went back."""
        currencies = set(self.gross) | set(self.refunds)
        return {code: self.gross.get(code, 0) - self.refunds.get(code, 0) for code in sorted(currencies)}


def sales_summaries(
    session: Session,
    release_ids: Iterable[int],
    *,
    sold: Mapping[int, int] | None = None,
    revenues: Mapping[int, Revenue] | None = None,
) -> dict[int, SalesSummary]:
    """Each release's sales summary, from four grouped queries over all the releases asked about.

    A page that has counted units sold (its stock counts) or read `revenue_by_release` already passes them in,
    and the summary reuses them instead of asking again.
    """
    release_ids = list(release_ids)
    if not release_ids:
        return {}
    if sold is None:
        sold = dict(
            session.execute(
                select(Unit.release_id, func.count())
                .where(Unit.release_id.in_(release_ids), Unit.status == UnitStatus.SOLD)
                .group_by(Unit.release_id)
            ).all()
        )
    # A refunded unit's line stays live; one whose unit was returned, sold again and refunded again on the new order
    # was set aside for the new line, and still counts once for its own refund.
    counted = or_(RefundLine.voided_at.is_(None), RefundLine.returned_at.is_not(None))
    lines = {
        release_id: (int(refunded), int(returned))
        for release_id, refunded, returned in session.execute(
            select(RefundLine.release_id, func.count(), func.count(RefundLine.returned_at))
            .join(Refund, Refund.id == RefundLine.refund_id)
            .where(RefundLine.release_id.in_(release_ids), Refund.status == RefundStatus.SUCCEEDED, counted)
            .group_by(RefundLine.release_id)
        ).all()
    }
    gross: dict[int, dict[str, int]] = {}
    if revenues is not None:
        # Paid, refunding and refunded orders: every order the release ever had, whatever came back since.
        for release_id in release_ids:
            revenue = revenues.get(release_id, Revenue())
            for currency, amount in [*revenue.paid.items(), *revenue.refunded.items()]:
                by_currency = gross.setdefault(release_id, {})
                by_currency[currency] = by_currency.get(currency, 0) + amount
    else:
        for release_id, currency, amount in session.execute(
            select(Order.release_id, Order.currency, func.sum(Order.amount_total))
            .where(
                Order.release_id.in_(release_ids),
                Order.status.in_([OrderStatus.PAID, OrderStatus.REFUNDING, OrderStatus.REFUNDED]),
            )
            .group_by(Order.release_id, Order.currency)
        ).all():
            gross.setdefault(release_id, {})[currency] = int(amount or 0)
    refunds: dict[int, dict[str, int]] = {}
    for release_id, currency, amount in session.execute(
        select(Order.release_id, Refund.currency, func.sum(Refund.amount))
        .join(Order, Order.id == Refund.order_id)
        .where(Order.release_id.in_(release_ids), Refund.status == RefundStatus.SUCCEEDED)
        .group_by(Order.release_id, Refund.currency)
    ).all():
        refunds.setdefault(release_id, {})[currency] = int(amount or 0)
    return {
        release_id: SalesSummary(
            sold=int(sold.get(release_id, 0)),
            refunded=lines.get(release_id, (0, 0))[0],
            returned=lines.get(release_id, (0, 0))[1],
            gross=gross.get(release_id, {}),
            refunds=refunds.get(release_id, {}),
        )
        for release_id in release_ids
    }


# --- Which releases get a chart, over which window --------------------------------------------------------------------


def shows_sales_chart(view: ReleaseView, now: datetime) -> bool:
    """True for a release that is selling, or that stopped selling within CHART_RECENT of going on sale."""
    if view.status == ReleaseStatus.UPCOMING:
        return False
    if view.status in (ReleaseStatus.ON_SALE, ReleaseStatus.PAUSED):
        return True
    return now - view.release.on_sale_at <= CHART_RECENT


def is_selling(view: ReleaseView) -> bool:
    """True while the release's sales can still change: on sale, paused, or sold out with holds still paying."""
    if view.status in (ReleaseStatus.ON_SALE, ReleaseStatus.PAUSED):
        return True
    return view.status == ReleaseStatus.SOLD_OUT and view.stock.held > 0


def sold_out_for_good(stock: StockCount) -> bool:
    """True when every sellable unit is sold: nothing available, nothing held that could come back."""
    return stock.sold > 0 and stock.available <= 0 and stock.held <= 0


def bucket_seconds_for(span: timedelta) -> int:
    """The narrowest bucket that covers `span` in at most MAX_BUCKETS buckets: a minute for the first two hours."""
    seconds = max(span.total_seconds(), 0.0)
    for step in BUCKET_STEPS:
        if math.ceil(seconds / step) <= MAX_BUCKETS:
            return step
    return math.ceil(seconds / MAX_BUCKETS / DAY_SECONDS) * DAY_SECONDS


@dataclass(frozen=True)
class SalesWindow:
    """The stretch of time a release's chart covers, cut into buckets of `bucket_seconds` from `start`."""

    release_id: int
    start: datetime
    end: datetime
    bucket_seconds: int

    @property
    def start_epoch(self) -> int:
        return math.floor(self.start.timestamp())

    @property
    def end_epoch(self) -> int:
        return math.floor(self.end.timestamp())

    @property
    def bucket_count(self) -> int:
        return max(1, math.ceil((self.end_epoch - self.start_epoch) / self.bucket_seconds))


def plan_window(view: ReleaseView, now: datetime, last_sale_at: datetime | None = None) -> SalesWindow:
    """Cover on-sale to now, or to the close (off_sale_at) or the last sale of a sold-out release if earlier."""
    release = view.release
    start = release.on_sale_at
    end = now
    if release.off_sale_at is not None:
        end = min(end, release.off_sale_at)
    if last_sale_at is not None and sold_out_for_good(view.stock):
        end = min(end, last_sale_at)
    end = max(end, start)
    return SalesWindow(release.id, start, end, bucket_seconds_for(end - start))


# --- Units sold over time ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SalesPoint:
    """How many units had been sold by `at`."""

    at: datetime
    sold: int


@dataclass(frozen=True)
class SalesSeries:
    """A release's cumulative units sold over its window: one point at the start, then one per bucket's end."""

    window: SalesWindow
    sellable: int  # the chart's height: every unit except those the producer keeps back
    points: tuple[SalesPoint, ...]
    per_bucket: tuple[int, ...]  # units sold in each bucket
    sold_before: int = 0  # sold before the window began (only a clock or data oddity makes any)
    sold_after: int = 0  # sold after its end (a late payment after the close)

    @property
    def sold(self) -> int:
        """Units sold by the end of the window."""
        return self.points[-1].sold

    @property
    def busiest_bucket(self) -> tuple[datetime, int] | None:
        """The start of the bucket that sold the most (the earliest of equals) and how many; None without sales."""
        if not any(self.per_bucket):
            return None
        best = max(range(len(self.per_bucket)), key=lambda index: (self.per_bucket[index], -index))
        return self.window.start + timedelta(seconds=best * self.window.bucket_seconds), self.per_bucket[best]


def epoch_seconds(column: ColumnElement, dialect_name: str) -> ColumnElement:
    """Whole seconds since 1970 of a UTC time column, computed by the database."""
    if dialect_name == "sqlite":
        # The shop stores SQLite times as naive UTC text, which strftime('%s') reads as UTC.
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(extract("epoch", column)), BigInteger)


def per_release(windows: Sequence[SalesWindow], value_of) -> ColumnElement:
    """A value that depends on the unit's release: a plain literal for one window, a CASE for several."""
    if len(windows) == 1:
        return literal(value_of(windows[0]), BigInteger)
    return case({window.release_id: value_of(window) for window in windows}, value=Unit.release_id)


def units_sold_query(windows: Sequence[SalesWindow], dialect_name: str) -> Select:
    """Units sold per (release, bucket) for these windows; bucket -1 is before the window, -2 after it.

    The WHERE clause matches the partial index ix_unit_release_sold_at, which holds exactly the columns used, so
    PostgreSQL can answer from the index alone.
    """
    sold_at = epoch_seconds(Unit.sold_at, dialect_name)
    start = per_release(windows, lambda window: window.start_epoch)
    end = per_release(windows, lambda window: window.end_epoch)
    width = per_release(windows, lambda window: window.bucket_seconds)
    bucket = case(
        (sold_at < start, BEFORE_WINDOW),
        (sold_at > end, AFTER_WINDOW),
        else_=(sold_at - start) // width,
    )
    # Bucket in a subquery and group outside it: grouping by the expression itself would repeat its parameters,
    # which PostgreSQL does not recognise as the same expression.
    bucketed = (
        select(Unit.release_id.label("release_id"), bucket.label("bucket"))
        .where(Unit.release_id.in_([window.release_id for window in windows]), Unit.sold_at.is_not(None))
        .subquery()
    )
    return select(bucketed.c.release_id, bucketed.c.bucket, func.count()).group_by(
        bucketed.c.release_id, bucketed.c.bucket
    )


def last_sale_times(session: Session, release_ids: Iterable[int]) -> dict[int, datetime]:
    """When each release last sold a unit, read from the end of ix_unit_release_sold_at."""
    release_ids = list(release_ids)
    if not release_ids:
        return {}
    return dict(
        session.execute(
            select(Unit.release_id, func.max(Unit.sold_at))
            .where(Unit.release_id.in_(release_ids), Unit.sold_at.is_not(None))
            .group_by(Unit.release_id)
        ).all()
    )


def build_series(window: SalesWindow, sellable: int, counts: dict[int, int]) -> SalesSeries:
    """Turn per-bucket counts into the cumulative points of a chart."""
    per_bucket = [0] * window.bucket_count
    for bucket, count in counts.items():
        if bucket >= 0:
            # A sale in the window's very last second can land one bucket past a span that divides evenly.
            per_bucket[min(bucket, window.bucket_count - 1)] += count
    sold_before = counts.get(BEFORE_WINDOW, 0)
    points = [SalesPoint(window.start, sold_before)]
    running = sold_before
    step = timedelta(seconds=window.bucket_seconds)
    for index, count in enumerate(per_bucket):
        running += count
        points.append(SalesPoint(min(window.start + step * (index + 1), window.end), running))
    return SalesSeries(
        window=window,
        sellable=sellable,
        points=tuple(points),
        per_bucket=tuple(per_bucket),
        sold_before=sold_before,
        sold_after=counts.get(AFTER_WINDOW, 0),
    )


def sales_series(session: Session, views: Iterable[ReleaseView], now: datetime) -> dict[int, SalesSeries]:
    """The units-sold-over-time series of every release here that shows a chart (at most two queries in all)."""
    charted = [view for view in views if shows_sales_chart(view, now)]
    if not charted:
        return {}
    last_sales = last_sale_times(session, [view.release.id for view in charted if sold_out_for_good(view.stock)])
    windows = [plan_window(view, now, last_sales.get(view.release.id)) for view in charted]
    counts: dict[int, dict[int, int]] = {}
    dialect_name = session.get_bind().dialect.name
    for release_id, bucket, count in session.execute(units_sold_query(windows, dialect_name)).all():
        counts.setdefault(release_id, {})[int(bucket)] = count
    return {
        view.release.id: build_series(window, sellable_units(view.stock), counts.get(view.release.id, {}))
        for view, window in zip(charted, windows, strict=True)
    }


def sellable_units(stock: StockCount) -> int:
    """Units that can ever be sold: all of them except those the producer keeps back."""
    return max(stock.total - stock.withheld, 0)
