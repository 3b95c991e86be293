"""Test-only controls under /_sim (no API key): pay or expire sessions, see events, inject faults, steer webhooks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from .app import json_response, simulator
from .errors import StripeError

bp = Blueprint("control", __name__, url_prefix="/_sim")

WEBHOOK_SETTING_CHECKS = {
    "url": lambda value: value is None or (isinstance(value, str) and value.startswith(("http://", "https://"))),
    "secret": lambda value: isinstance(value, str) and bool(value),
    "latency_seconds": lambda value: is_number(value) and value >= 0,
    "fail_first": lambda value: is_integer(value) and value >= 0,
    "duplicates": lambda value: is_integer(value) and value >= 1,
    "hold": lambda value: isinstance(value, bool),
    "enabled_events": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "retry_delays": lambda value: isinstance(value, list) and all(is_number(item) and item >= 0 for item in value),
    "timeout_seconds": lambda value: is_number(value) and value > 0,
}
FAULT_CHECKS = {
    "method": lambda value: value is None or isinstance(value, str),
    "path": lambda value: value is None or (isinstance(value, str) and value.startswith("/")),
    "path_prefix": lambda value: value is None or (isinstance(value, str) and value.startswith("/")),
    "status": lambda value: value is None or (is_integer(value) and 400 <= value <= 599),
    "delay_seconds": lambda value: is_number(value) and value >= 0,
    "count": lambda value: value is None or (is_integer(value) and value >= 1),
    "error": lambda value: value is None or isinstance(value, dict),
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_body() -> dict[str, Any]:
    if not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise StripeError(400, "Send a JSON object (Content-Type: application/json).")
    return body


def checked(body: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    for name, value in body.items():
        if name not in checks:
            raise StripeError(400, f"Unknown setting: {name} (known: {', '.join(checks)})", param=name)
        if not checks[name](value):
            raise StripeError(400, f"Invalid value for {name}: {value!r}", param=name)
    return body


@bp.get("")
def describe_controls():
    """List the control endpoints, for whoever opens /_sim in a browser or with curl."""
    return json_response(
        {
            "endpoints": [
                "POST /_sim/checkout/sessions/<id>/pay  {email?, name?, address?, decline?}",
                "POST /_sim/checkout/sessions/<id>/expire-by-time",
                "GET  /_sim/events[?type=...]",
                "POST /_sim/events/<id>/resend",
                "GET|POST|DELETE /_sim/faults  {method?, path? | path_prefix?, status?, delay_seconds?, count?, "
                "error?}",
                "GET|POST /_sim/webhooks  {url, secret, latency_seconds, fail_first, duplicates, hold, "
                "enabled_events, retry_delays, timeout_seconds}",
                "POST /_sim/webhooks/flush  {order?: original|reverse, event_ids?: [...]}",
                "POST /_sim/webhooks/wait  {timeout?: seconds}",
                "GET|POST /_sim/clock  {advance_seconds}",
                "POST /_sim/reset",
            ]
        }
    )


@bp.post("/checkout/sessions/<session_id>/pay")
def pay_session(session_id: str):
    """Complete a session as the Pay button would (or answer as a declined card with {"decline": true})."""
    sim = simulator()
    body = json_body()
    session = sim.open_session(session_id)
    if body.get("decline"):
        raise StripeError(402, "Your card was declined.", code="card_declined", decline_code="generic_decline")
    buyer = sim.default_buyer(session)
    buyer.update({key: body[key] for key in ("email", "name") if key in body})
    buyer["address"].update(body.get("address") or {})
    return json_response(sim.render(sim.pay_session(session_id, buyer)))


@bp.post("/checkout/sessions/<session_id>/expire-by-time")
def expire_session_by_time(session_id: str):
    sim = simulator()
    return json_response(sim.render(sim.expire_by_time(session_id)))


@bp.get("/events")
def list_events():
    events = simulator().event_log()
    wanted = request.args.get("type")
    if wanted:
        events = [entry for entry in events if entry["event"]["type"] == wanted]
    return json_response({"object": "list", "data": events})


@bp.post("/events/<event_id>/resend")
def resend_event(event_id: str):
    sim = simulator()
    event = sim.find(event_id, "event")
    if not sim.webhooks.will_deliver(event["type"]):
        raise StripeError(400, "No webhook endpoint is configured for this event type.", param="url")
    return json_response({"event": sim.render(event), **sim.webhooks.resend(event_id)})


@bp.get("/faults")
def list_faults():
    return json_response({"faults": [vars(fault) for fault in simulator().faults]})


@bp.post("/faults")
def add_fault():
    spec = checked(json_body(), FAULT_CHECKS)
    if spec.get("path") is not None and spec.get("path_prefix") is not None:
        raise StripeError(400, "Give either path or path_prefix, not both.", param="path_prefix")
    return json_response(vars(simulator().add_fault(spec)))


@bp.delete("/faults")
def clear_faults():
    sim = simulator()
    with sim.lock:
        sim.faults.clear()
    return json_response({"faults": []})


@bp.get("/webhooks")
def show_webhook_settings():
    return json_response(simulator().webhooks.public_settings())


@bp.post("/webhooks")
def configure_webhooks():
    sim = simulator()
    sim.webhooks.configure(checked(json_body(), WEBHOOK_SETTING_CHECKS))
    return json_response(sim.webhooks.public_settings())


@bp.post("/webhooks/flush")
def flush_webhooks():
    body = json_body()
    order = body.get("order", "original")
    if order not in {"original", "reverse"}:
        raise StripeError(400, "order must be original or reverse.", param="order")
    try:
        flushed = simulator().webhooks.flush(order, body.get("event_ids"))
    except KeyError as error:
        raise StripeError(400, f"These events are not held: {error.args[0]}", param="event_ids") from None
    return json_response({"flushed": flushed})


@bp.post("/webhooks/wait")
def wait_for_webhooks():
    """Block until no delivery is queued or in flight (held events excepted); 408 when `timeout` passes first."""
    timeout = json_body().get("timeout", 10)
    if not is_number(timeout) or timeout < 0:
        raise StripeError(400, "timeout must be a number of seconds.", param="timeout")
    idle = simulator().webhooks.wait_idle(float(timeout))
    return json_response({"idle": idle}, 200 if idle else 408)


@bp.get("/clock")
def show_clock():
    sim = simulator()
    return json_response({"now": sim.now(), "offset_seconds": sim.clock_offset})


@bp.post("/clock")
def advance_clock():
    """Move simulated time forward; sessions whose `expires_at` passes expire at once and send their events."""
    seconds = json_body().get("advance_seconds")
    if not is_number(seconds) or seconds < 0:
        raise StripeError(400, "advance_seconds must be a non-negative number.", param="advance_seconds")
    sim = simulator()
    now = sim.advance_clock(seconds)
    return json_response({"now": now, "offset_seconds": sim.clock_offset})


@bp.post("/reset")
def reset():
    simulator().reset()
    return json_response({"reset": True})
