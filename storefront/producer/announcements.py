"""Announcing releases to subscribers, and the subscriber list (stub: the announcements helper fills this in)."""

from flask import render_template

from storefront.producer import bp


@bp.get("/subscribers")
def list_subscribers():
    """The people who asked to hear about new batches."""
    return render_template("producer/list_subscribers.html")


@bp.get("/releases/<int:release_id>/announce")
def preview_announcement(release_id: int):
    """Show the announcement mail as subscribers will get it, with the button that sends it."""
    return render_template("producer/list_subscribers.html")
