from flask import abort, jsonify
from sqlalchemy import select

from storefront import clock
from storefront.api import bp
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Release
from storefront.text import iso_utc


@bp.get("/releases/<slug>")
def show_release_stock(slug: str):
    """Return a release's status and counts as JSON."""
    release = db.session.scalar(select(Release).where(Release.slug == slug))
    if release is None:
        abort(404, description=f"No release with slug {slug!r}.")
    (view,) = describe_releases(db.session, [release], clock.now())
    response = jsonify(
        {
            "slug": release.slug,
            "status": str(view.status),
            "total": view.stock.total,
            "available": view.stock.available,
            "held": view.stock.held,
            "sold": view.stock.sold,
            "on_sale_at": iso_utc(release.on_sale_at),
            "off_sale_at": iso_utc(release.off_sale_at),
        }
    )
    # Counts change every second during a drop; a short shared cache would still show stale stock.
    response.headers["Cache-Control"] = "no-store"
    return response
