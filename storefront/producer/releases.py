"""Opening, editing, withholding and pausing releases (stub: the releases helper fills this in)."""

from flask import render_template

from storefront.producer import bp


@bp.get("/releases/new")
def new_release():
    """The form to open a numbered release of a batch."""
    return render_template("producer/new_release.html")


@bp.get("/releases/<int:release_id>")
def show_release(release_id: int):
    """One release in the workspace: its terms, counts, withheld numbers, pause and edit."""
    return render_template("producer/new_release.html")
