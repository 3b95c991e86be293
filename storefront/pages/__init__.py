"""The shop's own pages (shipping, returns, contact, terms, privacy, age notice) and the footer that links them."""

from flask import Blueprint

bp = Blueprint("pages", __name__, url_prefix="/pages")

from storefront.pages import views  # noqa: E402, F401 - registers the routes and the footer's template helpers
