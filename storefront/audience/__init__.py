"""The shop's audience: signing up for news of new batches, the Atom feed, and calendar files for releases."""

from flask import Blueprint

bp = Blueprint("audience", __name__)

from storefront.audience import views  # noqa: E402, F401 - registers the routes
