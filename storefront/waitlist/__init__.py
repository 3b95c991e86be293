"""Waitlists, the buyer's side: joining (double opt-in), leaving, an offer of a freed number, early access."""

from flask import Blueprint

bp = Blueprint("waitlist", __name__, url_prefix="/waitlist")

from storefront.waitlist import views  # noqa: E402, F401 - registers the routes
