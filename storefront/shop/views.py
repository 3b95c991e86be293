from flask import abort, current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Batch, Release, ReleaseStatus
from storefront.shop import bp

RECENTLY_SOLD_OUT_SHOWN = 6


def get_release_or_404(slug: str) -> Release:
    release = db.session.scalar(
        select(Release)
        .where(Release.slug == slug)
        .options(
            selectinload(Release.batch).selectinload(Batch.images),
            selectinload(Release.batch).selectinload(Batch.product),
        )
    )
    if release is None:
        abort(404, description="There is no release at this address. It may have been renamed or removed.")
    return release


@bp.get("/")
def show_home():
    """Show live and upcoming releases first, then runs that sold out recently."""
    now = clock.now()
    releases = db.session.scalars(
        select(Release).options(selectinload(Release.batch).selectinload(Batch.images)).order_by(Release.on_sale_at)
    ).all()
    views = describe_releases(db.session, releases, now)
    on_sale = [view for view in views if view.status is ReleaseStatus.ON_SALE]
    upcoming = [view for view in views if view.status is ReleaseStatus.UPCOMING]
    sold_out = [view for view in views if view.status is ReleaseStatus.SOLD_OUT]
    sold_out.sort(key=lambda view: view.release.on_sale_at, reverse=True)
    return render_template(
        "shop/show_home.html",
        on_sale=on_sale,
        upcoming=upcoming,
        sold_out=sold_out[:RECENTLY_SOLD_OUT_SHOWN],
        now=now,
    )


@bp.get("/releases/<slug>")
def show_release(slug: str):
    """Show one release: price, how many are left, a countdown while it is upcoming."""
    release = get_release_or_404(slug)
    now = clock.now()
    (view,) = describe_releases(db.session, [release], now)
    return render_template(
        "shop/show_release.html",
        view=view,
        release=release,
        batch=release.batch,
        now=now,
        refresh_seconds=current_app.config["STOCK_REFRESH_SECONDS"],
    )
