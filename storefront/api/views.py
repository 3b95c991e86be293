import re
from datetime import datetime

from flask import abort, jsonify
from sqlalchemy import select

from storefront import clock
from storefront.api import bp
from storefront.api.stock_cache import stock_cache
from storefront.domain.numbers import NumberState, free_numbers, number_status
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Release
from storefront.text import iso_utc


@bp.get("/releases/<slug>")
def show_release_stock(slug: str):
    """Return a release's status and counts as JSON."""
    now = clock.now()
    payload = stock_cache().answer(slug, now, lambda: count_release_stock(slug, now))
    if payload is None:
        abort(404, description=f"No release with slug {slug!r}.")
    response = jsonify(payload)
    # Counts change every second during a drop; a short shared cache would still show stale stock.
    response.headers["Cache-Control"] = "no-store"
    return response


def count_release_stock(slug: str, now: datetime) -> dict | None:
    """The release's status and counts as the API shows them, or None when there is no such release."""
    release = db.session.scalar(select(Release).where(Release.slug == slug))
    if release is None:
        return None
    (view,) = describe_releases(db.session, [release], now)
    return {
        "slug": release.slug,
        "status": str(view.status),
        "total": view.stock.total,
        "available": view.stock.available,
        "held": view.stock.held,
        "sold": view.stock.sold,
        "on_sale_at": iso_utc(release.on_sale_at),
        "off_sale_at": iso_utc(release.off_sale_at),
    }


# A fragmented run of 100,000 has up to 50,000 ranges; the answer names the first ones and counts them all.
NUMBER_RANGES_LISTED = 1_000
NUMBER_IN_PATH = re.compile(r"[0-9]{1,9}")


def release_or_json_404(slug: str) -> Release:
    release = db.session.scalar(select(Release).where(Release.slug == slug))
    if release is None:
        abort(404, description=f"No release with slug {slug!r}.")
    return release


def picking_release_or_json_404(slug: str) -> Release:
    """A release whose buyers may pick their number: the others publish no map of their numbers (and a long run's
    ranges are not a query anyone may run for nothing)."""
    release = release_or_json_404(slug)
    if not release.allow_number_choice:
        abort(404, description="This release does not let buyers pick a number.")
    return release


def fresh_json(payload: dict, status: int = 200):
    response = jsonify(payload)
    response.status_code = status
    # A number taken a second ago must not be offered from a cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/releases/<slug>/numbers")
def show_free_numbers(slug: str):
    """Return a release's free numbers as ranges, with how many are free, as JSON."""
    release = picking_release_or_json_404(slug)
    found = free_numbers(db.session, release.id, clock.now(), limit=NUMBER_RANGES_LISTED)
    return fresh_json(
        {
            "slug": release.slug,
            "total": release.total_units,
            "free": found.free,
            "range_count": found.range_count,
            "complete": found.complete,
            "ranges": [[first, last] for first, last in found.ranges],
        }
    )


@bp.get("/releases/<slug>/numbers/<number>")
def show_number_status(slug: str, number: str):
    """Say whether one number of a release is free, and which free number to offer when it is not."""
    if not NUMBER_IN_PATH.fullmatch(number):
        abort(400, description="Ask for a number in digits, such as 17.")
    release = picking_release_or_json_404(slug)
    status = number_status(db.session, release, int(number), clock.now())
    payload = {"number": status.number, "status": str(status.state), "next_free": status.next_free}
    if status.state is NumberState.NOT_IN_RUN:
        message = f"Numbers of this release run from 1 to {release.total_units}."
        return fresh_json({"error": "Not Found", "message": message, **payload}, 404)
    return fresh_json(payload)
