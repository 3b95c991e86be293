"""The hosted payment page at each session's `url`: Pay, Decline or Cancel, as a buyer would on Stripe Checkout."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request
from werkzeug.wrappers import Response

from .app import simulator
from .errors import StripeError
from .simulator import SessionUnavailable

bp = Blueprint("hosted", __name__)

COUNTRY_NAMES = {
    "AT": "Austria", "AU": "Australia", "BE": "Belgium", "CA": "Canada", "CH": "Switzerland", "CZ": "Czechia",
    "DE": "Germany", "DK": "Denmark", "ES": "Spain", "FI": "Finland", "FR": "France", "GB": "United Kingdom",
    "GR": "Greece", "IE": "Ireland", "IS": "Iceland", "IT": "Italy", "JP": "Japan", "LU": "Luxembourg",
    "NL": "Netherlands", "NO": "Norway", "NZ": "New Zealand", "PL": "Poland", "PT": "Portugal", "SE": "Sweden",
    "US": "United States",
}  # fmt: skip
ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")
DECLINED = "Your card was declined."


def session_or_404(session_id: str) -> dict[str, Any]:
    try:
        return simulator().session(session_id)
    except StripeError:
        abort(404, "There is no checkout session at this address.")


def unavailable(session: dict[str, Any]) -> tuple[str, int]:
    message = {
        "complete": "This checkout session is already complete: it has been paid.",
        "expired": "This checkout session has expired. Return to the shop to start again.",
    }.get(session["status"], "This checkout session cannot be paid.")
    page = render_template(
        "stripe_sim/message.html",
        title="This page is no longer available",
        message=message,
        back_url=session["cancel_url"],
    )
    return page, 409


def submitted_buyer() -> dict[str, Any]:
    form = request.form
    return {
        "email": form.get("email", ""),
        "name": form.get("name", ""),
        "address": {field: form.get(field, "") for field in ADDRESS_FIELDS},
    }


def payment_page(
    session: dict[str, Any], buyer: dict[str, Any], *, errors: dict[str, str] | None = None, declined: bool = False
) -> str:
    sim = simulator()
    allowed = (session["shipping_address_collection"] or {}).get("allowed_countries")
    return render_template(
        "stripe_sim/pay.html",
        session=session,
        line_items=sim.line_items[session["id"]],
        shipping_rate=sim.shipping_rates.get((session["shipping_cost"] or {}).get("shipping_rate")),
        buyer=buyer,
        errors=errors or {},
        declined=declined,
        countries=[(code, COUNTRY_NAMES.get(code, code)) for code in allowed] if allowed else None,
    )


@bp.get("/pay/<session_id>")
def show_payment_page(session_id: str) -> str | tuple[str, int]:
    session = session_or_404(session_id)
    try:
        simulator().open_session(session_id)
    except SessionUnavailable:
        return unavailable(session)
    allowed = (session["shipping_address_collection"] or {}).get("allowed_countries") or []
    buyer = {
        "email": session["customer_email"] or "",
        "name": "",
        "address": {"country": allowed[0] if allowed else ""},
    }
    return payment_page(session, buyer)


@bp.post("/pay/<session_id>")
def submit_payment_page(session_id: str) -> Response | str | tuple[str, int]:
    sim = simulator()
    session = session_or_404(session_id)
    action = request.form.get("action")
    if action == "cancel":
        if not session["cancel_url"]:
            abort(404, "This checkout session has no cancel URL.")
        # Stripe leaves the session open when the buyer goes back; it expires later on its own.
        return redirect(session["cancel_url"], code=303)
    if action not in {"pay", "decline"}:
        abort(400, "Choose Pay, Decline or Cancel.")
    buyer = submitted_buyer()
    try:
        if action == "decline":
            sim.open_session(session_id)
            # A declined card changes nothing Stripe would report: no event, the session stays open.
            return payment_page(session, buyer, declined=True), 402
        sim.pay_session(session_id, buyer)
    except SessionUnavailable:
        return unavailable(session)
    except StripeError as error:
        return payment_page(session, buyer, errors=error.extra.get("field_errors", {})), 422
    return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id), code=303)


@bp.get("/receipts/<charge_id>")
def show_receipt(charge_id: str) -> str:
    try:
        paid = simulator().find(charge_id, "charge")
    except StripeError:
        abort(404, "There is no receipt at this address.")
    return render_template("stripe_sim/receipt.html", charge=paid)
