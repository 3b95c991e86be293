"""Charts drawn on the server as inline SVG: no script, no library, no CDN, and no inline styles (the CSP has none).

Colours and line widths are SVG presentation attributes (so a chart reads even without the stylesheet), and
classes that static/css/shop.css refines. Every chart has a <title> and a <desc>, and a text summary to show
beside it, for people who cannot see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from markupsafe import Markup, escape

from storefront.domain.sales import SalesSeries
from storefront.text import local_datetime_text

WIDTH = 640
HEIGHT = 240
# The plot area's margins: room for the y labels on the left and the time labels below.
LEFT = 52
RIGHT = 20
TOP = 14
BOTTOM = 34
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class SalesChart:
    """A release's "units sold over time" chart, and the same story in words."""

    release_id: int
    svg: Markup
    summary: str
    series: SalesSeries


def axis_time_text(moment: datetime, zone: tzinfo, span: timedelta) -> str:
    """A short time for an axis label: the hour for a drop within a day, the day too for a longer one."""
    local = moment.astimezone(zone)
    if span <= timedelta(days=1):
        return f"{local:%H:%M}"
    return f"{local.day} {local:%b %H:%M}"


def bucket_text(seconds: int) -> str:
    """Say a bucket's width: "minute", "5 minutes", "hour", "2 days"."""
    for unit_seconds, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % unit_seconds == 0:
            count = seconds // unit_seconds
            return name if count == 1 else f"{count} {name}s"
    return f"{seconds} seconds"


def units_text(count: int) -> str:
    return "1 unit" if count == 1 else f"{count} units"


def later_time_text(moment: datetime, since: datetime, zone: tzinfo) -> str:
    """Say a moment after `since`: only its hour ("11:20") when it falls on the same day in the shop's zone."""
    if moment.astimezone(zone).date() == since.astimezone(zone).date():
        return f"{moment.astimezone(zone):%H:%M}"
    return local_datetime_text(moment, zone)


def describe_sales(series: SalesSeries, zone: tzinfo) -> str:
    """The chart in one or two sentences: what a screen reader says and what the page prints below it."""
    window = series.window
    text = (
        f"{series.sold} of {series.sellable} units sold between {local_datetime_text(window.start, zone)}"
        f" and {later_time_text(window.end, window.start, zone)}."
    )
    busiest = series.busiest_bucket
    if busiest is not None:
        moment, count = busiest
        text += (
            f" The busiest {bucket_text(window.bucket_seconds)} sold {units_text(count)},"
            f" from {later_time_text(moment, window.start, zone)}."
        )
    if series.sold_before:
        text += f" {units_text(series.sold_before)} sold before it went on sale."
    if series.sold_after:
        text += f" {units_text(series.sold_after)} sold after that."
    return text


def number(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing ".0"."""
    return f"{value:.1f}".removesuffix(".0")


def render_sales_chart(series: SalesSeries, *, title: str, zone: tzinfo) -> SalesChart:
    """Draw cumulative units sold against time, from on-sale to the window's end, 0 to every sellable unit."""
    window = series.window
    span = window.end - window.start
    span_seconds = max(span.total_seconds(), 1.0)
    top_value = max(series.sellable, series.sold, 1)

    def x_of(moment: datetime) -> float:
        return LEFT + PLOT_WIDTH * (moment - window.start).total_seconds() / span_seconds

    def y_of(value: int) -> float:
        return TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / top_value

    chart_id = f"sales-chart-{window.release_id}"
    summary = describe_sales(series, zone)
    coordinates = [(x_of(point.at), y_of(point.sold)) for point in series.points]
    line = " ".join(f"{number(x)},{number(y)}" for x, y in coordinates)
    baseline = number(y_of(0))
    # The area under the line: down to the baseline at both ends.
    outline = " L".join(f"{number(x)},{number(y)}" for x, y in coordinates)
    area = f"M{number(coordinates[0][0])},{baseline} L{outline} L{number(coordinates[-1][0])},{baseline} Z"
    last_x, last_y = coordinates[-1]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sales-chart" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{chart_id}-title"'
        f' aria-describedby="{chart_id}-desc" focusable="false">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
        '<g class="sales-chart__grid" stroke="#d3c2a5" stroke-width="1">',
    ]
    y_ticks = sorted({0, top_value // 2, top_value})
    for value in y_ticks:
        y = number(y_of(value))
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_WIDTH}" y2="{y}"/>')
    parts.append("</g>")
    parts.append('<g class="sales-chart__labels" fill="#5a4837" font-size="12">')
    for value in y_ticks:
        parts.append(f'<text x="{LEFT - 8}" y="{number(y_of(value) + 4)}" text-anchor="end">{value}</text>')
    x_ticks = [(window.start, "start"), (window.start + span / 2, "middle"), (window.end, "end")]
    if span <= timedelta(0):
        x_ticks = [(window.start, "start")]
    for moment, anchor in x_ticks:
        parts.append(
            f'<text x="{number(x_of(moment))}" y="{HEIGHT - 10}" text-anchor="{anchor}">'
            f"{escape(axis_time_text(moment, zone, span))}</text>"
        )
    parts.append("</g>")
    parts.extend(
        [
            f'<path class="sales-chart__area" d="{area}" fill="#8a3a12" fill-opacity="0.15" stroke="none"/>',
            f'<polyline class="sales-chart__line" points="{line}" fill="none" stroke="#8a3a12" stroke-width="2"'
            ' stroke-linejoin="round" stroke-linecap="round"/>',
            f'<circle class="sales-chart__now" cx="{number(last_x)}" cy="{number(last_y)}" r="4" fill="#8a3a12"/>',
            f'<line class="sales-chart__axis" x1="{LEFT}" y1="{baseline}" x2="{LEFT + PLOT_WIDTH}" y2="{baseline}"'
            ' stroke="#5a4837" stroke-width="1"/>',
            "</svg>",
        ]
    )
    # Every value above is a number the shop computed or text passed through escape().
    svg = Markup("".join(parts))  # noqa: S704
    return SalesChart(release_id=window.release_id, svg=svg, summary=summary, series=series)
