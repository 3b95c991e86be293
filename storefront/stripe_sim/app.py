"""The simulator's Flask app: Stripe's REST subset under /v1, the hosted page under /pay, test controls under /_sim."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from . import objects
from .errors import StripeError
from .simulator import API_VERSION, Simulator

# Stripe's page shows the account's business name; a simulator started without one says what it is.
DEFAULT_BUSINESS_NAME = "Test shop"


def create_sim_app(
    webhook_url: str | None,
    webhook_secret: str,
    api_keys: set[str] | None = None,
    public_url: str | None = None,
    *,
    api_version: str = API_VERSION,
    clock: Callable[[], float] = time.time,
    expiry_interval: float = 0.5,
    business_name: str = DEFAULT_BUSINESS_NAME,
) -> Flask:
    """Build a Stripe-compatible app; its state lives in memory in `app.extensions["stripe_sim"]` (a Simulator).

    The background threads (webhook sender, expiry sweeper) start with the first request; call
    `app.extensions["stripe_sim"].close()` when done. `public_url` is the base of each session's `url`
    (default: the URL the API request came in on). `business_name` heads the payment page, as the account's
    business name does on Stripe's.
    """
    from . import api, control, hosted

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.config["BUSINESS_NAME"] = business_name or DEFAULT_BUSINESS_NAME
    app.extensions["stripe_sim"] = Simulator(
        webhook_url,
        webhook_secret,
        api_keys=api_keys,
        public_url=public_url,
        api_version=api_version,
        clock=clock,
        expiry_interval=expiry_interval,
    )
    app.register_blueprint(api.bp)
    app.register_blueprint(hosted.bp)
    app.register_blueprint(control.bp)
    app.jinja_env.globals["format_money"] = objects.format_money
    app.jinja_env.filters["utc_iso"] = lambda timestamp: datetime.fromtimestamp(timestamp, UTC).isoformat()
    app.jinja_env.filters["utc_text"] = lambda timestamp: f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M} UTC"
    app.before_request(start_request)
    app.after_request(label_response)
    app.register_error_handler(StripeError, stripe_error_response)
    app.register_error_handler(HTTPException, http_error_response)
    return app


def simulator() -> Simulator:
    return current_app.extensions["stripe_sim"]


def json_response(body: Any, status: int = 200) -> Response:
    """JSON the way Stripe sends it: pretty-printed, UTF-8."""
    return Response(json.dumps(body, indent=2) + "\n", status=status, mimetype="application/json")


def start_request() -> None:
    g.request_id = objects.new_id("req_", 14)
    sim = simulator()
    sim.start()
    # Lazy expiry as well as the sweeper thread, so a request never sees a session past its time as open.
    sim.expire_due_sessions()


def label_response(response: Response) -> Response:
    response.headers["Request-Id"] = g.get("request_id") or objects.new_id("req_", 14)
    if request.path.startswith("/v1/"):
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version") or simulator().api_version
    return response


def wants_json() -> bool:
    return request.path.startswith(("/v1/", "/_sim"))


def stripe_error_response(error: StripeError) -> Response:
    response = json_response(error.body(), error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
    return response


def http_error_response(error: HTTPException) -> Response:
    if not wants_json():
        page = render_template("stripe_sim/message.html", title=error.name, message=error.description)
        return Response(page, status=error.code or 500)
    if isinstance(error, InternalServerError):
        return stripe_error_response(StripeError(500, "An unknown error occurred in the Stripe simulator."))
    if error.code in {404, 405}:
        message = (
            f"Unrecognized request URL ({request.method}: {request.path}). Please see https://stripe.com/docs or we "
            "can help at https://support.stripe.com/."
        )
        return stripe_error_response(StripeError(404, message))
    return stripe_error_response(StripeError(error.code or 500, error.description))
