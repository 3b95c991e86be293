"""Signing in and out: the same pages for producers now and customers later."""

from flask import Blueprint

bp = Blueprint("account", __name__)

from storefront.account import views  # noqa: E402, F401 - registers the routes
