"""The server-drawn sales chart: valid SVG, accessible, monotone, and free of inline styles."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from storefront.charts import HEIGHT, render_sales_chart
from storefront.domain.sales import SalesWindow, build_series
from storefront.text import local_datetime_text

SVG = "{http://www.w3.org/2000/svg}"
DUBLIN = ZoneInfo("Europe/Dublin")
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def series(minutes: int = 10, counts: dict[int, int] | None = None, sellable: int = 20):
    window = SalesWindow(7, ON_SALE, ON_SALE + timedelta(minutes=minutes), 60)
    return build_series(window, sellable, counts if counts is not None else {0: 1, 1: 2, 5: 3})


def parse(chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))  # noqa: S314 - markup the shop itself just made


def line_points(root: ET.Element) -> list[tuple[float, float]]:
    polyline = root.find(f"{SVG}polyline")
    assert polyline is not None
    return [tuple(float(value) for value in pair.split(",")) for pair in polyline.get("points").split()]


def test_the_chart_is_valid_svg_with_a_title_and_a_description():
    chart = render_sales_chart(series(), title="Units sold over time: Winter Rye", zone=DUBLIN)

    root = parse(chart)

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title.text == "Units sold over time: Winter Rye"
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == desc.get("id")
    assert desc.text == chart.summary
    assert "6 of 20 units sold" in chart.summary
    assert "The busiest minute sold 3 units" in chart.summary


def test_the_summary_speaks_the_shops_time_zone():
    chart = render_sales_chart(series(), title="t", zone=DUBLIN)

    # 10:00 UTC is 11:00 in Dublin in July; the end, on the same day, needs only its hour.
    assert "between Wed 1 July 2026, 11:00 IST and 11:10." in chart.summary
    assert local_datetime_text(datetime(2026, 1, 1, 10, 0, tzinfo=UTC), DUBLIN) == "Thu 1 January 2026, 10:00 GMT"


def test_the_line_rises_left_to_right_and_ends_at_the_units_sold():
    chart = render_sales_chart(series(), title="t", zone=DUBLIN)

    points = line_points(parse(chart))

    assert len(points) == 11
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    assert xs == sorted(xs)
    assert ys == sorted(ys, reverse=True)  # SVG's y grows downwards: more sold is higher up
    assert ys[0] > ys[-1]
    labels = [text.text for text in parse(chart).iter(f"{SVG}text")]
    assert "20" in labels and "0" in labels  # the axis runs from nothing to every sellable unit
    assert "11:00" in labels and "11:10" in labels  # from on-sale to now, on the shop's clock


def test_no_inline_styles_anywhere():
    chart = render_sales_chart(series(), title='Rye "special" <b>', zone=DUBLIN)

    markup = str(chart.svg)

    assert "style=" not in markup
    assert "<style" not in markup
    assert "<script" not in markup
    assert all("style" not in element.attrib for element in parse(chart).iter())


def test_titles_are_escaped():
    chart = render_sales_chart(series(), title="<script>alert(1)</script> & Co", zone=DUBLIN)

    root = parse(chart)

    assert root.find(f"{SVG}title").text == "<script>alert(1)</script> & Co"
    assert "<script>" not in str(chart.svg)


def test_a_chart_without_sales_or_time_still_draws():
    empty = render_sales_chart(series(counts={}), title="t", zone=DUBLIN)
    instant = render_sales_chart(series(minutes=0, counts={}), title="t", zone=DUBLIN)

    for chart in (empty, instant):
        points = line_points(parse(chart))
        assert {y for _, y in points} == {points[0][1]}
        assert all(0 <= y <= HEIGHT for _, y in points)
    assert "0 of 20 units sold" in empty.summary
    assert "busiest" not in empty.summary
