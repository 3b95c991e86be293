"""The producer's dashboard (every release's counts, revenue and sales chart) and the activity log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import abort, current_app, get_template_attribute, make_response, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from storefront import clock
from storefront.account.access import producer_required
from storefront.charts import SalesChart, render_sales_chart
from storefront.domain.activity import activity_subject_types, latest_activity, list_activity
from storefront.domain.sales import (
    Revenue,
    SalesSummary,
    is_selling,
    revenue_by_release,
    sales_series,
    sales_summaries,
)
from storefront.domain.stock import ReleaseView, StockCount, describe_releases
from storefront.extensions import db
from storefront.models import ActivityEntry, Batch, Release, ReleaseStatus
from storefront.producer import bp
from storefront.shop_time import shop_time, shop_zone
from storefront.text import format_money

# An upcoming release this close to its on-sale time gets an empty chart slot that starts redrawing when it opens,
# so a producer watching the dashboard sees the drop begin without reloading.
OPENS_SOON = timedelta(days=1)
LATEST_ACTIVITY = 5
STATUS_LABELS = {
    ReleaseStatus.UPCOMING: "Coming soon",
    ReleaseStatus.ON_SALE: "On sale",
    ReleaseStatus.PAUSED: "Paused",
    ReleaseStatus.SOLD_OUT: "Sold out",
    ReleaseStatus.CLOSED: "Closed",
}
# Where an activity line links to, by what it is about: (endpoint, its id argument).
SUBJECT_ENDPOINTS = {
    "release": ("producer.show_release", "release_id"),
    "batch": ("producer.edit_batch", "batch_id"),
    "product": ("producer.edit_product", "product_id"),
    "order": ("producer.show_order", "order_id"),
}


def revenue_text(amounts: dict[str, int], currency: str) -> str:
    """Money by currency as one phrase: "€1,780.00"; nothing yet is 0 in the release's currency."""
    if not amounts:
        return format_money(0, currency)
    return " + ".join(format_money(amount, code) for code, amount in sorted(amounts.items()))


# --- The sales chart: shared by the dashboard, its refresh endpoint, and the release's own page ---------------------


@dataclass(frozen=True)
class ChartSlot:
    """A release's place for its sales chart on a page, with what dashboard.js needs to keep it up to date."""

    release_id: int
    title: str
    url: str  # the fragment endpoint that redraws it
    chart: SalesChart | None  # None before the release goes on sale
    status: ReleaseStatus
    status_label: str
    stock: StockCount
    revenue: str
    live: bool  # still selling: redraw every `refresh_seconds`
    opens_at: datetime | None  # opening soon: start redrawing then
    opens_at_text: str
    server_now: datetime
    refresh_seconds: int


def chart_slots(
    views: Iterable[ReleaseView], now: datetime, revenues: dict[int, Revenue] | None = None, *, every: bool = False
) -> dict[int, ChartSlot]:
    """Chart slots, by release id, for releases with a chart (selling or recently sold) or opening soon.

    With `every`, releases with neither get an empty slot too. The release page can show one with
    `chart_slots([view], now)` and the `sales_chart_slot` macro of templates/producer/_sales_chart.html,
    loading static/js/dashboard.js to keep it fresh.
    """
    views = list(views)
    zone = shop_zone()
    series = sales_series(db.session, views, now)
    if revenues is None:
        revenues = revenue_by_release(db.session, [view.release.id for view in views])
    slots = {}
    for view in views:
        release = view.release
        opens_soon = view.status == ReleaseStatus.UPCOMING and release.on_sale_at - now <= OPENS_SOON
        if release.id not in series and not opens_soon and not every:
            continue
        title = f"{release.batch.title}: {release.title}"
        chart = None
        if release.id in series:
            chart = render_sales_chart(series[release.id], title=f"Units sold over time: {title}", zone=zone)
        slots[release.id] = ChartSlot(
            release_id=release.id,
            title=title,
            url=url_for("producer.show_sales_chart", release_id=release.id),
            chart=chart,
            status=view.status,
            status_label=STATUS_LABELS.get(view.status, str(view.status)),
            stock=view.stock,
            revenue=revenue_text(revenues.get(release.id, Revenue()).paid, release.currency),
            live=is_selling(view),
            opens_at=release.on_sale_at if opens_soon else None,
            opens_at_text=shop_time(release.on_sale_at),
            server_now=now,
            refresh_seconds=current_app.config["DASHBOARD_REFRESH_SECONDS"],
        )
    return slots


# --- The activity log -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityLine:
    """One entry of the log as the page shows it."""

    entry: ActivityEntry
    when: str
    who: str
    subject_url: str | None


def subject_url(subject_type: str, subject_id: int | None) -> str | None:
    """The workspace page of what an entry is about, when there is one (the endpoint may not exist yet)."""
    target = SUBJECT_ENDPOINTS.get(subject_type)
    if target is None or subject_id is None:
        return None
    endpoint, argument = target
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **{argument: subject_id})
    except BuildError:  # the page needs more than the id (a batch under its product, say): no link, no error
        return None


def activity_lines(entries: Iterable[ActivityEntry]) -> list[ActivityLine]:
    """Write out each entry's time on the shop's clock, its actor, and a link to its subject."""
    return [
        ActivityLine(
            entry=entry,
            when=shop_time(entry.occurred_at),
            who=entry.actor_email or "the shop",
            subject_url=subject_url(entry.subject_type, entry.subject_id),
        )
        for entry in entries
    ]


# --- Pages ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardRow:
    """One release's line in the dashboard's table, its money and time already written out."""

    view: ReleaseView
    revenue: str
    refunded: str | None
    on_sale: str
    sales: SalesSummary = SalesSummary()
    net_revenue: str = ""


@bp.route("/")
@producer_required  # also guarded by the blueprint's before_request; kept so the view reads as protected
def show_dashboard():
    """Every release, newest on-sale first: live counts, revenue, sales charts; and the latest activity."""
    now = clock.now()
    releases = db.session.scalars(
        select(Release)
        .options(selectinload(Release.batch).selectinload(Batch.product))
        .order_by(Release.on_sale_at.desc(), Release.id.desc())
    ).all()
    views = describe_releases(db.session, releases, now)
    revenues = revenue_by_release(db.session, [release.id for release in releases])
    summaries = sales_summaries(
        db.session,
        [release.id for release in releases],
        sold={view.release.id: view.stock.sold for view in views},
        revenues=revenues,
    )
    rows = []
    for view in views:
        release = view.release
        revenue = revenues[release.id]
        rows.append(
            DashboardRow(
                view=view,
                revenue=revenue_text(revenue.paid, release.currency),
                refunded=revenue_text(revenue.refunded, release.currency) if revenue.refunded_orders else None,
                on_sale=shop_time(release.on_sale_at),
                sales=summaries[release.id],
                net_revenue=revenue_text(summaries[release.id].net, release.currency),
            )
        )
    slots = chart_slots(views, now, revenues)
    return render_template(
        "producer/show_dashboard.html",
        rows=rows,
        slots=[slots[view.release.id] for view in views if view.release.id in slots],
        status_labels=STATUS_LABELS,
        activity=activity_lines(latest_activity(db.session, LATEST_ACTIVITY)),
        zone_name=current_app.config["SHOP_TIMEZONE"],
        refresh_seconds=current_app.config["DASHBOARD_REFRESH_SECONDS"],
        user=current_user,
    )


@bp.get("/releases/<int:release_id>/chart")
def show_sales_chart(release_id: int):
    """One release's chart slot as an HTML fragment, with its counts: what dashboard.js swaps in."""
    release = db.session.get(Release, release_id)
    if release is None:
        abort(404)
    now = clock.now()
    slot = chart_slots(describe_releases(db.session, [release], now), now, every=True)[release.id]
    sales_chart_slot = get_template_attribute("producer/_sales_chart.html", "sales_chart_slot")
    response = make_response(sales_chart_slot(slot))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/activity")
def show_activity():
    """Who changed what and when, newest first, 50 a page (?before=<id> for older, ?after=<id> for newer)."""
    subject_type = request.args.get("subject", "").strip() or None
    page = list_activity(
        db.session,
        before_id=request.args.get("before", type=int),
        after_id=request.args.get("after", type=int),
        subject_type=subject_type,
    )
    return render_template(
        "producer/show_activity.html",
        page=page,
        lines=activity_lines(page.entries),
        subject_type=subject_type,
        subject_types=activity_subject_types(db.session),
        zone_name=current_app.config["SHOP_TIMEZONE"],
    )
