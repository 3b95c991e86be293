"""Build API objects with the same top-level fields as Stripe's published examples.

The shapes are written out here (not read from ../shared at runtime); the simulator's tests compare them with
Stripe's example objects in ../shared/stripe/fixtures.json.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

ALPHABET = string.ascii_letters + string.digits
ZERO_DECIMAL_CURRENCIES = {
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
}  # fmt: skip
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "nzd": "NZ$"}
TEST_CARD = {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034, "country": "US", "funding": "credit"}


def new_id(prefix: str, length: int = 24) -> str:
    """An id shaped like Stripe's: a type prefix and random letters and digits."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def format_money(amount: int, currency: str) -> str:
    """Render minor units the way a checkout page does: €89.00, ¥500, 12.50 SEK."""
    currency = currency.lower()
    value = f"{amount:,}" if currency in ZERO_DECIMAL_CURRENCIES else f"{amount / 100:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def empty_address() -> dict[str, Any]:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def full_address(address: dict[str, Any]) -> dict[str, Any]:
    return {**empty_address(), **{key: address.get(key) or None for key in empty_address()}}


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def checkout_session(
    *,
    session_id: str,
    created: int,
    params: dict[str, Any],
    amount_subtotal: int,
    currency: str,
    url: str,
) -> dict[str, Any]:
    """A new, open Checkout Session in payment mode."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_subtotal,
        "amount_total": amount_subtotal,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": params.get(
            "custom_text",
            {"after_submit": None, "shipping_address": None, "submit": None, "terms_of_service_acceptance": None},
        ),
        "customer": None,
        "customer_account": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "discounts": [],
        "expires_at": params["expires_at"],
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": params.get("locale"),
        "managed_payments": {"enabled": False},
        "metadata": params.get("metadata", {}),
        "mode": "payment",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": params.get("payment_method_types", ["card"]),
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": {
            "allow_redisplay_filters": ["always"],
            "payment_method_remove": None,
            "payment_method_save": None,
        },
        "setup_intent": None,
        "shipping_address_collection": params.get("shipping_address_collection"),
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": params.get("submit_type"),
        "subscription": None,
        "success_url": params["success_url"],
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url,
        "wallet_options": None,
    }


def shipping_rate(*, created: int, rate_data: dict[str, Any]) -> dict[str, Any]:
    """The ad-hoc Shipping Rate a session's `shipping_rate_data` creates (a fixed amount)."""
    return {
        "id": new_id("shr_1"),
        "object": "shipping_rate",
        "active": True,
        "created": created,
        "delivery_estimate": rate_data["delivery_estimate"],
        "display_name": rate_data["display_name"],
        "fixed_amount": dict(rate_data["fixed_amount"]),
        "livemode": False,
        "metadata": rate_data["metadata"],
        "tax_behavior": rate_data["tax_behavior"],
        "tax_code": rate_data["tax_code"],
        "type": "fixed_amount",
    }


def charge_shipping(session: dict[str, Any], rates: list[dict[str, Any]]) -> None:
    """Offer the rates on a session and charge the first, as Checkout does until the buyer picks another."""
    chosen = rates[0]["fixed_amount"]["amount"]
    session["shipping_options"] = [
        {"shipping_amount": rate["fixed_amount"]["amount"], "shipping_rate": rate["id"]} for rate in rates
    ]
    session["shipping_cost"] = {
        "amount_subtotal": chosen,
        "amount_tax": 0,
        "amount_total": chosen,
        "shipping_rate": rates[0]["id"],
    }
    session["amount_total"] = session["amount_subtotal"] + chosen
    session["total_details"] = {**session["total_details"], "amount_shipping": chosen}


def line_item(*, created: int, price_data: dict[str, Any], quantity: int) -> dict[str, Any]:
    """A Checkout line item (object "item") with the ad-hoc Price that `price_data` creates."""
    product = price_data.get("product_data") or {}
    unit_amount = price_data["unit_amount"]
    amount = unit_amount * quantity
    currency = price_data["currency"]
    return {
        "id": new_id("li_"),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": currency,
        "description": product.get("name"),
        "metadata": {},
        "price": {
            "id": new_id("price_"),
            "object": "price",
            "active": False,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": price_data.get("product") or new_id("prod_", 14),
            "recurring": None,
            "tax_behavior": price_data.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(unit_amount),
        },
        "quantity": quantity,
    }


def payment_intent(
    *,
    intent_id: str,
    created: int,
    amount: int,
    currency: str,
    charge_id: str,
    payment_method: str,
    intent_data: dict[str, Any],
    shipping: dict[str, Any] | None,
) -> dict[str, Any]:
    """A PaymentIntent that a Checkout card payment created and confirmed."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{new_id('', 25)}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "description": intent_data.get("description"),
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": charge_id,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": intent_data.get("metadata", {}),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": intent_data.get("receipt_email"),
        "review": None,
        "setup_future_usage": None,
        "shipping": shipping,
        "source": None,
        "statement_descriptor": intent_data.get("statement_descriptor"),
        "statement_descriptor_suffix": intent_data.get("statement_descriptor_suffix"),
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(
    *,
    charge_id: str,
    created: int,
    intent: dict[str, Any],
    billing_details: dict[str, Any],
    receipt_url: str,
) -> dict[str, Any]:
    """The succeeded, captured card Charge behind a PaymentIntent."""
    amount = intent["amount"]
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn_"),
        "billing_details": billing_details,
        "calculated_statement_descriptor": "SMALL BATCH",
        "captured": True,
        "created": created,
        "currency": intent["currency"],
        "customer": None,
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": intent["id"],
        "payment_method": intent["payment_method"],
        "payment_method_details": {
            "card": {
                "amount_authorized": amount,
                "authorization_code": None,
                "brand": TEST_CARD["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": TEST_CARD["country"],
                "exp_month": TEST_CARD["exp_month"],
                "exp_year": TEST_CARD["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": "SimulatorCard4242",
                "funding": TEST_CARD["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": TEST_CARD["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": TEST_CARD["brand"],
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": intent["receipt_email"],
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": False,
        "refunds": list_object([], f"/v1/charges/{charge_id}/refunds"),
        "review": None,
        "shipping": intent["shipping"],
        "source": None,
        "source_transfer": None,
        "statement_descriptor": intent["statement_descriptor"],
        "statement_descriptor_suffix": intent["statement_descriptor_suffix"],
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    *, refund_id: str, created: int, paid_charge: dict[str, Any], amount: int, params: dict[str, Any]
) -> dict[str, Any]:
    """A card refund; in test mode Stripe settles these at once, so it is born `succeeded`."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn_"),
        "charge": paid_charge["id"],
        "created": created,
        "currency": paid_charge["currency"],
        "customer": None,
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": params.get("metadata", {}),
        "payment_intent": paid_charge["payment_intent"],
        "payment_method": paid_charge["payment_method"],
        "reason": params.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def event(
    *,
    event_id: str,
    created: int,
    event_type: str,
    data_object: dict[str, Any],
    api_version: str,
    pending_webhooks: int,
    request_id: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """A snapshot event: `data.object` is the object as it was when the event happened."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }
