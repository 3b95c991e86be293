"""A small read-only JSON API (the release page polls it for a fresh count)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from storefront.api import views  # noqa: E402, F401 - registers the routes
