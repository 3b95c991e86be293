"""Stripe's webhook: the verified source of payment truth."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from storefront.webhooks import views  # noqa: E402, F401 - registers the routes
