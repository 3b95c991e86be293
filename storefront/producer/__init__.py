"""The producer's workspace: every page under /producer/ needs a signed-in producer."""

from flask import Blueprint

from storefront.account.access import refuse_unless_producer

bp = Blueprint("producer", __name__, url_prefix="/producer")
# One guard for the whole blueprint, so a page added later cannot forget it.
bp.before_request(refuse_unless_producer)

from storefront.producer import (  # noqa: E402, F401 - registers the routes
    announcements,
    catalog,
    exports,
    orders,
    refunds,
    releases,
    shop_settings,
    views,
    waitlists,
)
