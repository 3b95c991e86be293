from flask import abort, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.domain.stock import ReleaseView, describe_releases
from storefront.extensions import db
from storefront.models import Batch, ReleaseStatus
from storefront.story import bp


@bp.get("/batches/<slug>")
def show_batch(slug: str):
    """Tell a batch's story: the Markdown story, its provenance facts, photos and releases."""
    batch = db.session.scalar(
        select(Batch)
        .where(Batch.slug == slug)
        .options(
            selectinload(Batch.facts),
            selectinload(Batch.images),
            selectinload(Batch.releases),
            selectinload(Batch.product),
        )
    )
    if batch is None:
        abort(404, description="There is no batch at this address.")
    now = clock.now()
    releases = describe_releases(db.session, batch.releases, now)
    return render_template(
        "story/show_batch.html",
        batch=batch,
        releases=releases,
        featured=featured_release(releases),
        now=now,
    )


def featured_release(releases: list[ReleaseView]) -> ReleaseView | None:
    """The release a story's call to action leads to: one on sale, else the next upcoming, else the latest."""
    by_opening = sorted(releases, key=lambda view: view.release.on_sale_at)
    for status in (ReleaseStatus.ON_SALE, ReleaseStatus.UPCOMING):
        candidates = [view for view in by_opening if view.status is status]
        if candidates:
            return candidates[0]
    return by_opening[-1] if by_opening else None
