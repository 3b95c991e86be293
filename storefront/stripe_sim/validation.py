"""Check request parameters the way Stripe does, with Stripe's messages, params and codes where they are known."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .errors import StripeError, missing_param, unknown_param

MIN_SESSION_SECONDS = 30 * 60
MAX_SESSION_SECONDS = 24 * 60 * 60
# Stripe measures from the moment the session is created; allow a few seconds for the request to travel.
EXPIRES_AT_SLACK_SECONDS = 5
MAX_AMOUNT = 99_999_999
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
INTEGER = re.compile(r"^-?\d+$")

SESSION_PARAMS = {
    "billing_address_collection", "cancel_url", "client_reference_id", "custom_text", "customer_email", "expand",
    "expires_at", "line_items", "locale", "metadata", "mode", "payment_intent_data", "payment_method_types",
    "shipping_address_collection", "shipping_options", "submit_type", "success_url", "ui_mode",
}  # fmt: skip
LINE_ITEM_PARAMS = {"price", "price_data", "quantity"}
PRICE_DATA_PARAMS = {"currency", "product", "product_data", "tax_behavior", "unit_amount"}
PRODUCT_DATA_PARAMS = {"description", "images", "metadata", "name", "tax_code", "unit_label"}
INTENT_DATA_PARAMS = {"description", "metadata", "receipt_email", "statement_descriptor", "statement_descriptor_suffix"}
REFUND_PARAMS = {"amount", "charge", "expand", "metadata", "payment_intent", "reason"}
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
PAYMENT_METHOD_TYPES = {"card"}
MAX_SHIPPING_OPTIONS = 5
SHIPPING_OPTION_PARAMS = {"shipping_rate", "shipping_rate_data"}
SHIPPING_RATE_DATA_PARAMS = {"delivery_estimate", "display_name", "fixed_amount", "metadata", "tax_behavior",
                             "tax_code", "type"}  # fmt: skip
FIXED_AMOUNT_PARAMS = {"amount", "currency", "currency_options"}
DELIVERY_ESTIMATE_UNITS = ("business_day", "day", "hour", "month", "week")
CUSTOM_TEXT_POSITIONS = ("after_submit", "shipping_address", "submit", "terms_of_service_acceptance")
CUSTOM_TEXT_MAX_LENGTH = 1200


def reject_unknown(params: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed:
            raise unknown_param(f"{prefix}[{key}]" if prefix else key)


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StripeError(400, f"Invalid object: {param} must be a hash.", param=param)
    return value


def as_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise StripeError(400, f"Invalid array: {param} must be an array.", param=param)
    return value


def as_string(params: dict[str, Any], key: str, param: str | None = None, max_length: int = 5000) -> str | None:
    """An optional string; an empty string is an attempt to unset, which create calls do not allow."""
    param = param or key
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {param} must be a string.", param=param)
    if value == "":
        raise StripeError(
            400,
            f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a parameter; "
            f"however '{param}' cannot be unset. You should remove '{param}' from your request or supply a "
            "non-empty value.",
            param=param,
            code="parameter_invalid_empty",
        )
    if len(value) > max_length:
        raise StripeError(400, f"Invalid string: {value[:20]}...; must be at most {max_length} characters", param=param)
    return value


def as_integer(params: dict[str, Any], key: str, param: str, minimum: int | None = None) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not INTEGER.match(value):
        raise StripeError(400, f"Invalid integer: {value}", param=param, code="parameter_invalid_integer")
    number = int(value)
    if minimum is not None and number < minimum:
        raise StripeError(400, f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def as_url(params: dict[str, Any], key: str) -> str | None:
    value = as_string(params, key)
    if value is not None:
        target = urlsplit(value)
        if target.scheme not in {"http", "https"} or not target.netloc:
            raise StripeError(400, "Not a valid URL", param=key, code="url_invalid")
    return value


def as_choice(params: dict[str, Any], key: str, choices: tuple[str, ...], param: str | None = None) -> str | None:
    value = as_string(params, key, param)
    if value is not None and value not in choices:
        listed = ", ".join(choices[:-1]) + f", or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise StripeError(400, f"Invalid {param or key}: must be one of {listed}", param=param or key)
    return value


def metadata(params: dict[str, Any], param: str = "metadata") -> dict[str, str]:
    """Up to 50 keys of at most 40 characters, values of at most 500; empty values are dropped, as Stripe does."""
    if "metadata" not in params or params["metadata"] == "":
        return {}
    values = as_dict(params["metadata"], param)
    if len(values) > 50:
        raise StripeError(400, "Metadata can have at most 50 keys.", param=param)
    cleaned = {}
    for key, value in values.items():
        if not isinstance(value, str):
            raise StripeError(400, f"Invalid string: {param}[{key}] must be a string.", param=f"{param}[{key}]")
        if len(key) > 40:
            raise StripeError(400, f"Metadata keys can be at most 40 characters: {key}", param=f"{param}[{key}]")
        if len(value) > 500:
            raise StripeError(400, "Metadata values can be at most 500 characters.", param=f"{param}[{key}]")
        if value:
            cleaned[key] = value
    return cleaned


def expand_paths(params: dict[str, Any]) -> list[str]:
    if "expand" not in params:
        return []
    paths = as_list(params["expand"], "expand")
    if not all(isinstance(path, str) and path for path in paths):
        raise StripeError(400, "Invalid array: expand must contain strings.", param="expand")
    return paths


# --- Checkout Sessions -----------------------------------------------------------------------------------------


def checkout_session(params: dict[str, Any], now: int) -> dict[str, Any]:
    """Validate POST /v1/checkout/sessions; return clean values plus the validated line items."""
    reject_unknown(params, SESSION_PARAMS)
    mode = as_string(params, "mode")
    if mode is None:
        raise missing_param("mode")
    if mode != "payment":
        if mode in {"setup", "subscription"}:
            raise StripeError(400, f"The Stripe simulator only implements mode=payment, not {mode}.", param="mode")
        raise StripeError(400, "Invalid mode: must be one of payment, setup, or subscription", param="mode")
    if as_choice(params, "ui_mode", ("hosted", "embedded", "custom")) not in {None, "hosted"}:
        raise StripeError(400, "The Stripe simulator only implements ui_mode=hosted.", param="ui_mode")
    success_url = as_url(params, "success_url")
    if success_url is None:
        raise missing_param("success_url")
    clean: dict[str, Any] = {
        "mode": mode,
        "success_url": success_url,
        "cancel_url": as_url(params, "cancel_url"),
        "client_reference_id": as_string(params, "client_reference_id", max_length=200),
        "customer_email": customer_email(params),
        "metadata": metadata(params),
        "payment_method_types": payment_method_types(params),
        "shipping_address_collection": shipping_address_collection(params),
        "expires_at": expires_at(params, now),
        "billing_address_collection": as_choice(params, "billing_address_collection", ("auto", "required")),
        "locale": as_string(params, "locale", max_length=10),
        "submit_type": as_choice(params, "submit_type", ("auto", "book", "donate", "pay", "subscribe")),
        "payment_intent_data": payment_intent_data(params),
        "custom_text": custom_text(params),
        "expand": expand_paths(params),
    }
    clean["line_items"] = line_items(params)
    currencies = {item["price_data"]["currency"] for item in clean["line_items"]}
    if len(currencies) > 1:
        raise StripeError(400, "All line items in a Checkout Session must use the same currency.", param="line_items")
    clean["currency"] = currencies.pop()
    clean["amount_subtotal"] = sum(item["price_data"]["unit_amount"] * item["quantity"] for item in clean["line_items"])
    if clean["amount_subtotal"] > MAX_AMOUNT:
        raise StripeError(
            400, f"Amount must be no more than {MAX_AMOUNT}.", param="line_items", code="amount_too_large"
        )
    clean["shipping_options"] = shipping_options(params, clean["currency"], clean["shipping_address_collection"])
    # Stripe charges the first option until the buyer picks another; the simulator's page offers only that one.
    shipping = clean["shipping_options"][0]["fixed_amount"]["amount"] if clean["shipping_options"] else 0
    if clean["amount_subtotal"] + shipping > MAX_AMOUNT:
        raise StripeError(
            400, f"Amount must be no more than {MAX_AMOUNT}.", param="shipping_options", code="amount_too_large"
        )
    return clean


def customer_email(params: dict[str, Any]) -> str | None:
    email = as_string(params, "customer_email", max_length=800)
    if email is not None and not EMAIL.match(email):
        raise StripeError(400, f"Invalid email address: {email}", param="customer_email", code="email_invalid")
    return email


def payment_method_types(params: dict[str, Any]) -> list[str]:
    if "payment_method_types" not in params:
        return ["card"]
    types = as_list(params["payment_method_types"], "payment_method_types")
    for index, method in enumerate(types):
        if method not in PAYMENT_METHOD_TYPES:
            raise StripeError(
                400,
                f"The payment method type provided: {method} is invalid. The Stripe simulator only offers card.",
                param=f"payment_method_types[{index}]",
            )
    return types or ["card"]


def custom_text(params: dict[str, Any]) -> dict[str, dict[str, str] | None]:
    """Messages Checkout shows at fixed places on its page, each {message} of at most 1200 characters; an empty
    string leaves a place empty, as on Stripe."""
    clean: dict[str, dict[str, str] | None] = dict.fromkeys(CUSTOM_TEXT_POSITIONS)
    if "custom_text" not in params:
        return clean
    texts = as_dict(params["custom_text"], "custom_text")
    reject_unknown(texts, set(CUSTOM_TEXT_POSITIONS), "custom_text")
    for position, text in texts.items():
        param = f"custom_text[{position}]"
        if text == "":
            continue
        text = as_dict(text, param)
        reject_unknown(text, {"message"}, param)
        message = as_string(text, "message", f"{param}[message]", max_length=CUSTOM_TEXT_MAX_LENGTH)
        if message is None:
            raise missing_param(f"{param}[message]")
        clean[position] = {"message": message}
    return clean


def shipping_address_collection(params: dict[str, Any]) -> dict[str, list[str]] | None:
    if "shipping_address_collection" not in params:
        return None
    collection = as_dict(params["shipping_address_collection"], "shipping_address_collection")
    reject_unknown(collection, {"allowed_countries"}, "shipping_address_collection")
    if "allowed_countries" not in collection:
        raise missing_param("shipping_address_collection[allowed_countries]")
    countries = as_list(collection["allowed_countries"], "shipping_address_collection[allowed_countries]")
    for index, country in enumerate(countries):
        if not isinstance(country, str) or not COUNTRY.match(country):
            param = f"shipping_address_collection[allowed_countries][{index}]"
            raise StripeError(400, f"Invalid {param}: {country} is not a supported country code.", param=param)
    return {"allowed_countries": countries}


def shipping_options(
    params: dict[str, Any], currency: str, address_collection: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Up to five ad-hoc fixed-amount rates in the session's currency; Stripe needs an address to ship them to."""
    if "shipping_options" not in params:
        return []
    options = as_list(params["shipping_options"], "shipping_options")
    if len(options) > MAX_SHIPPING_OPTIONS:
        raise StripeError(
            400, f"You may only specify up to {MAX_SHIPPING_OPTIONS} shipping options.", param="shipping_options"
        )
    if options and address_collection is None:
        raise StripeError(
            400,
            "`shipping_options` can only be used when `shipping_address_collection` is also set.",
            param="shipping_options",
        )
    return [shipping_option(option, currency, f"shipping_options[{index}]") for index, option in enumerate(options)]


def shipping_option(option: Any, currency: str, param: str) -> dict[str, Any]:
    option = as_dict(option, param)
    reject_unknown(option, SHIPPING_OPTION_PARAMS, param)
    if "shipping_rate" in option:
        raise StripeError(
            400,
            f"No such shipping rate: '{option['shipping_rate']}'",
            param=f"{param}[shipping_rate]",
            code="resource_missing",
        )
    if "shipping_rate_data" not in option:
        raise StripeError(
            400,
            f"You must specify either `shipping_rate` or `shipping_rate_data` in {param}.",
            param=param,
            code="parameter_missing",
        )
    rate_param = f"{param}[shipping_rate_data]"
    rate = as_dict(option["shipping_rate_data"], rate_param)
    reject_unknown(rate, SHIPPING_RATE_DATA_PARAMS, rate_param)
    display_name = as_string(rate, "display_name", f"{rate_param}[display_name]", max_length=100)
    if display_name is None:
        raise missing_param(f"{rate_param}[display_name]")
    # Stripe's only type, and its default.
    as_choice(rate, "type", ("fixed_amount",), f"{rate_param}[type]")
    if "fixed_amount" not in rate:
        raise missing_param(f"{rate_param}[fixed_amount]")
    fixed_param = f"{rate_param}[fixed_amount]"
    fixed = as_dict(rate["fixed_amount"], fixed_param)
    reject_unknown(fixed, FIXED_AMOUNT_PARAMS, fixed_param)
    amount = as_integer(fixed, "amount", f"{fixed_param}[amount]", minimum=0)
    if amount is None:
        raise missing_param(f"{fixed_param}[amount]")
    if amount > MAX_AMOUNT:
        raise StripeError(
            400, f"Amount must be no more than {MAX_AMOUNT}.", param=f"{fixed_param}[amount]", code="amount_too_large"
        )
    rate_currency = as_string(fixed, "currency", f"{fixed_param}[currency]")
    if rate_currency is None:
        raise missing_param(f"{fixed_param}[currency]")
    if rate_currency.lower() != currency:
        raise StripeError(
            400,
            f"The currency of the shipping rate ({rate_currency.lower()}) must match the currency of the Checkout "
            f"Session ({currency}).",
            param=f"{fixed_param}[currency]",
        )
    return {
        "display_name": display_name,
        "type": "fixed_amount",
        "fixed_amount": {"amount": amount, "currency": currency},
        "delivery_estimate": delivery_estimate(rate, f"{rate_param}[delivery_estimate]"),
        "metadata": metadata(rate, f"{rate_param}[metadata]"),
        "tax_behavior": as_choice(
            rate, "tax_behavior", ("exclusive", "inclusive", "unspecified"), f"{rate_param}[tax_behavior]"
        )
        or "unspecified",
        "tax_code": as_string(rate, "tax_code", f"{rate_param}[tax_code]"),
    }


def delivery_estimate(rate: dict[str, Any], param: str) -> dict[str, Any] | None:
    if "delivery_estimate" not in rate:
        return None
    estimate = as_dict(rate["delivery_estimate"], param)
    reject_unknown(estimate, {"maximum", "minimum"}, param)
    clean = {}
    for bound in ("minimum", "maximum"):
        if bound not in estimate:
            clean[bound] = None
            continue
        value = as_dict(estimate[bound], f"{param}[{bound}]")
        reject_unknown(value, {"unit", "value"}, f"{param}[{bound}]")
        unit = as_choice(value, "unit", DELIVERY_ESTIMATE_UNITS, f"{param}[{bound}][unit]")
        number = as_integer(value, "value", f"{param}[{bound}][value]", minimum=1)
        if unit is None or number is None:
            raise missing_param(f"{param}[{bound}][{'unit' if unit is None else 'value'}]")
        clean[bound] = {"unit": unit, "value": number}
    return clean


def expires_at(params: dict[str, Any], now: int) -> int:
    value = as_integer(params, "expires_at", "expires_at")
    if value is None:
        return now + MAX_SESSION_SECONDS
    if value < now + MIN_SESSION_SECONDS - EXPIRES_AT_SLACK_SECONDS:
        raise StripeError(
            400,
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            param="expires_at",
        )
    if value > now + MAX_SESSION_SECONDS:
        raise StripeError(
            400,
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    return value


def payment_intent_data(params: dict[str, Any]) -> dict[str, Any]:
    if "payment_intent_data" not in params:
        return {}
    data = as_dict(params["payment_intent_data"], "payment_intent_data")
    reject_unknown(data, INTENT_DATA_PARAMS, "payment_intent_data")
    clean: dict[str, Any] = {"metadata": metadata(data, "payment_intent_data[metadata]")}
    for key in INTENT_DATA_PARAMS - {"metadata"}:
        clean[key] = as_string(data, key, f"payment_intent_data[{key}]", max_length=1000)
    return clean


def line_items(params: dict[str, Any]) -> list[dict[str, Any]]:
    if "line_items" not in params:
        raise StripeError(
            400,
            "You must provide at least one line item in `payment` mode.",
            param="line_items",
            code="parameter_missing",
        )
    items = as_list(params["line_items"], "line_items")
    if not items:
        raise missing_param("line_items")
    if len(items) > 100:
        raise StripeError(400, "A Checkout Session can have at most 100 line items.", param="line_items")
    return [line_item(item, f"line_items[{index}]") for index, item in enumerate(items)]


def line_item(item: Any, param: str) -> dict[str, Any]:
    item = as_dict(item, param)
    reject_unknown(item, LINE_ITEM_PARAMS, param)
    if "price" in item:
        raise StripeError(400, f"No such price: '{item['price']}'", param=f"{param}[price]", code="resource_missing")
    if "price_data" not in item:
        raise StripeError(
            400, f"You must specify either `price` or `price_data` in {param}.", param=param, code="parameter_missing"
        )
    quantity = as_integer(item, "quantity", f"{param}[quantity]", minimum=1)
    if quantity is None:
        raise missing_param(f"{param}[quantity]")
    price_param = f"{param}[price_data]"
    price_data = as_dict(item["price_data"], price_param)
    reject_unknown(price_data, PRICE_DATA_PARAMS, price_param)
    currency = as_string(price_data, "currency", f"{price_param}[currency]")
    if currency is None:
        raise missing_param(f"{price_param}[currency]")
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise StripeError(400, f"Invalid currency: {currency}.", param=f"{price_param}[currency]")
    unit_amount = as_integer(price_data, "unit_amount", f"{price_param}[unit_amount]", minimum=0)
    if unit_amount is None:
        raise missing_param(f"{price_param}[unit_amount]")
    product = as_string(price_data, "product", f"{price_param}[product]")
    product_data = None
    if "product_data" in price_data:
        product_data = as_dict(price_data["product_data"], f"{price_param}[product_data]")
        reject_unknown(product_data, PRODUCT_DATA_PARAMS, f"{price_param}[product_data]")
        if as_string(product_data, "name", f"{price_param}[product_data][name]", max_length=250) is None:
            raise missing_param(f"{price_param}[product_data][name]")
    elif product is None:
        raise StripeError(
            400,
            "You must specify either `product` or `product_data` when creating a price.",
            param=f"{price_param}[product_data]",
            code="parameter_missing",
        )
    else:
        product_data = {"name": product}
    tax_behavior = as_choice(
        price_data, "tax_behavior", ("exclusive", "inclusive", "unspecified"), f"{price_param}[tax_behavior]"
    )
    return {
        "quantity": quantity,
        "price_data": {
            "currency": currency.lower(),
            "unit_amount": unit_amount,
            "product": product,
            "product_data": product_data,
            "tax_behavior": tax_behavior or "unspecified",
        },
    }


# --- Refunds ---------------------------------------------------------------------------------------------------


def refund(params: dict[str, Any]) -> dict[str, Any]:
    reject_unknown(params, REFUND_PARAMS)
    clean = {
        "charge": as_string(params, "charge"),
        "payment_intent": as_string(params, "payment_intent"),
        "amount": as_integer(params, "amount", "amount", minimum=1),
        "reason": as_choice(params, "reason", REFUND_REASONS),
        "metadata": metadata(params),
        "expand": expand_paths(params),
    }
    if clean["charge"] is None and clean["payment_intent"] is None:
        raise StripeError(
            400,
            "One of the following params should be provided for this request: payment_intent or charge.",
            code="parameter_missing",
        )
    return clean


# --- the hosted page -------------------------------------------------------------------------------------------

ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")
REQUIRED_ADDRESS_FIELDS = {"line1": "Address", "city": "City", "postal_code": "Postal code", "country": "Country"}


def buyer_details(details: dict[str, Any], allowed_countries: list[str] | None) -> dict[str, str]:
    """Field errors for what a buyer typed on the payment page (empty when all is well)."""
    errors = {}
    email = (details.get("email") or "").strip()
    if not EMAIL.match(email):
        errors["email"] = "Enter an email address like name@example.com."
    if not (details.get("name") or "").strip():
        errors["name"] = "Enter the name for delivery."
    address = details.get("address") or {}
    for field, label in REQUIRED_ADDRESS_FIELDS.items():
        if not (address.get(field) or "").strip():
            errors[field] = f"{label} is required."
    country = (address.get("country") or "").strip()
    if country and allowed_countries and country not in allowed_countries:
        errors["country"] = f"We cannot ship to {country}."
    elif country and not COUNTRY.match(country):
        errors["country"] = "Use a two-letter country code such as IE."
    return errors
