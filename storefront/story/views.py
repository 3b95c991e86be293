from flask import abort, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Batch
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
    return render_template(
        "story/show_batch.html",
        batch=batch,
        releases=describe_releases(db.session, batch.releases, now),
        now=now,
    )
