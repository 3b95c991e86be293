"""Batch story pages: provenance, process, photos."""

from flask import Blueprint

bp = Blueprint("story", __name__)

from storefront.story import views  # noqa: E402, F401 - registers the routes
