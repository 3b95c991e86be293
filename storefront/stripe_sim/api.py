"""Stripe's REST API, the subset the shop uses: bearer keys, form-encoded params, Idempotency-Key, Stripe errors."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, g, request

from . import validation
from .app import json_response, simulator
from .errors import StripeError
from .forms import parse_params
from .simulator import RequestContext

bp = Blueprint("api", __name__, url_prefix="/v1")

API_VERSION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z_]+)?(;.*)?$")
RETRIEVE_PARAMS = {"expand"}
LIST_PARAMS = {"limit", "starting_after", "ending_before", "expand"}

View = Callable[..., dict[str, Any]]


def request_params() -> dict[str, Any]:
    """Query-string and form-body params, merged and unflattened."""
    pairs = parse_qsl(request.query_string.decode(), keep_blank_values=True)
    body = request.get_data(as_text=True)
    if body:
        if request.mimetype not in {"application/x-www-form-urlencoded", ""}:
            raise StripeError(
                400,
                f"Invalid request: the body must be application/x-www-form-urlencoded, not {request.mimetype}.",
            )
        pairs += parse_qsl(body, keep_blank_values=True)
    return parse_params(pairs)


def api_call(view: View) -> Callable[..., Response]:
    """Run an API view behind injected faults, authentication, version check and idempotency."""

    @functools.wraps(view)
    def wrapper(**view_args: Any) -> Response:
        sim = simulator()
        fault = sim.take_fault(request.method, request.path)
        if fault is not None:
            sim.pause(fault.delay_seconds)
            failure = fault.failure()
            if failure is not None:
                raise failure
        api_key = sim.authenticate(request.headers.get("Authorization"))
        version = request.headers.get("Stripe-Version")
        if version is not None and not API_VERSION_FORMAT.match(version):
            raise StripeError(400, f"Invalid Stripe API version: {version}", code="api_version_invalid")
        params = request_params()
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        context = RequestContext(g.request_id, key)
        if not key:
            return json_response(view(params, context, **view_args))
        stored = sim.begin_idempotent(api_key, key, f"{request.method} {request.path}", params)
        if stored is not None:
            response = Response(stored.body, status=stored.status, mimetype="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Original-Request"] = stored.request_id or ""
            response.headers["Idempotency-Key"] = key
            return response
        try:
            result = view(params, context, **view_args)
        except StripeError as error:
            # Stripe keeps a result once the endpoint has begun to execute: 5xx are replayed, refusals are not.
            kept = json.dumps(error.body(), indent=2) + "\n" if error.status >= 500 else None
            sim.finish_idempotent(api_key, key, error.status, kept, g.request_id)
            raise
        except Exception:
            sim.finish_idempotent(api_key, key, 500, None, g.request_id)
            raise
        response = json_response(result)
        sim.finish_idempotent(api_key, key, 200, response.get_data(as_text=True), g.request_id)
        response.headers["Idempotency-Key"] = key
        return response

    return wrapper


def retrieve_expand(params: dict[str, Any]) -> list[str]:
    validation.reject_unknown(params, RETRIEVE_PARAMS)
    return validation.expand_paths(params)


# --- Checkout Sessions -----------------------------------------------------------------------------------------


@bp.post("/checkout/sessions")
@api_call
def create_checkout_session(params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    return simulator().create_session(params, request.host_url)


@bp.get("/checkout/sessions")
@api_call
def list_checkout_sessions(params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    validation.reject_unknown(params, LIST_PARAMS | {"status", "payment_intent", "client_reference_id"})
    return simulator().list_sessions(params)


@bp.get("/checkout/sessions/<session_id>")
@api_call
def retrieve_checkout_session(params: dict[str, Any], context: RequestContext, session_id: str) -> dict[str, Any]:
    sim = simulator()
    return sim.render(sim.session(session_id), retrieve_expand(params))


@bp.get("/checkout/sessions/<session_id>/line_items")
@api_call
def list_checkout_session_line_items(
    params: dict[str, Any], context: RequestContext, session_id: str
) -> dict[str, Any]:
    validation.reject_unknown(params, LIST_PARAMS - {"expand"})
    return simulator().session_line_items(session_id, params)


@bp.post("/checkout/sessions/<session_id>/expire")
@api_call
def expire_checkout_session(params: dict[str, Any], context: RequestContext, session_id: str) -> dict[str, Any]:
    expand = retrieve_expand(params)
    sim = simulator()
    return sim.render(sim.expire_session(session_id, context), expand)


# --- PaymentIntents, Charges, Refunds, Events ------------------------------------------------------------------


@bp.get("/payment_intents/<intent_id>")
@api_call
def retrieve_payment_intent(params: dict[str, Any], context: RequestContext, intent_id: str) -> dict[str, Any]:
    sim = simulator()
    return sim.render(sim.find(intent_id, "payment_intent", "intent"), retrieve_expand(params))


@bp.get("/charges/<charge_id>")
@api_call
def retrieve_charge(params: dict[str, Any], context: RequestContext, charge_id: str) -> dict[str, Any]:
    sim = simulator()
    return sim.render(sim.find(charge_id, "charge", "charge"), retrieve_expand(params))


@bp.post("/refunds")
@api_call
def create_refund(params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    return simulator().create_refund(params, context)


@bp.get("/refunds/<refund_id>")
@api_call
def retrieve_refund(params: dict[str, Any], context: RequestContext, refund_id: str) -> dict[str, Any]:
    sim = simulator()
    return sim.render(sim.find(refund_id, "refund", "refund"), retrieve_expand(params))


@bp.get("/events/<event_id>")
@api_call
def retrieve_event(params: dict[str, Any], context: RequestContext, event_id: str) -> dict[str, Any]:
    validation.reject_unknown(params, set())
    sim = simulator()
    return sim.render(sim.find(event_id, "event", "id"))


@bp.get("/events")
@api_call
def list_events(params: dict[str, Any], context: RequestContext) -> dict[str, Any]:
    validation.reject_unknown(params, LIST_PARAMS - {"expand"} | {"type"})
    return simulator().list_events(params)
