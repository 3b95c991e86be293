"""The producer's dashboard."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.account.access import producer_required
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Batch, Release
from storefront.producer import bp


@bp.route("/")
@producer_required  # also guarded by the blueprint's before_request; kept so the view reads as protected
def show_dashboard():
    """Every release with its live available / held / sold counts."""
    releases = db.session.scalars(
        select(Release)
        .options(selectinload(Release.batch).selectinload(Batch.product))
        .order_by(Release.on_sale_at.desc(), Release.id.desc())
    ).all()
    views = describe_releases(db.session, releases, clock.now())
    return render_template("producer/show_dashboard.html", views=views, user=current_user)


@bp.get("/activity")
def show_activity():
    """Who changed what, newest first."""
    return render_template("producer/show_activity.html")
