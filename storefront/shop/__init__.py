"""The public shop: home page and release pages."""

from flask import Blueprint

bp = Blueprint("shop", __name__)

from storefront.shop import views  # noqa: E402, F401 - registers the routes
