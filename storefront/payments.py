"""The payment gateway: the one place that imports stripe.

Everything goes through the official SDK's StripeClient with a pinned API version. `STRIPE_API_BASE` points it at
another Stripe-compatible server (the project's simulator), and nothing else in the shop knows the difference.
Results come back as small plain dataclasses, so callers never handle SDK objects.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stripe
from flask import Flask, current_app

from storefront.domain.fulfilment import LineItem, PaidCheckout

log = logging.getLogger(__name__)


class PaymentError(Exception):
    """The gateway failed or could not be reached; nothing is known to have happened."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class SessionNotOpen(PaymentError):
    """The Checkout Session could not be expired because it is no longer open (paid, or expired already)."""

    def __init__(self, message: str, session: CheckoutSession) -> None:
        super().__init__(message, retryable=False)
        self.session = session


class SessionGone(PaymentError):
    """The gateway answered for good that this session does not exist for us (404) or is not ours (403).

    Such a session can never be paid on this account, so the hold waiting on it may end.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class SignatureError(Exception):
    """A webhook's signature is missing, wrong, too old, or dated in the future."""


class MalformedEvent(Exception):
    """A correctly signed webhook body that is not an event the shop can read."""


class RetryingHTTPClient(stripe.RequestsClient):
    """The SDK's HTTP client, also retrying 429 (rate limited) as it already retries 409 and 5xx.

    Only used for calls with max_network_retries > 0, each with a fixed idempotency key, so a retry replays.
    """

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        if (
            response is not None
            and response[1] == 429
            and num_retries < (max_network_retries or 0)
            and (response[2] or {}).get("stripe-should-retry") != "false"
        ):
            return True
        return super()._should_retry(response, api_connection_error, num_retries, max_network_retries)


@dataclass(frozen=True)
class CheckoutSession:
    """What the shop needs to know of a Checkout Session."""

    id: str
    url: str | None
    status: str  # open, complete, expired
    payment_status: str  # paid, unpaid, no_payment_required
    amount_total: int | None
    currency: str | None
    payment_intent_id: str | None
    customer_email: str | None
    shipping_name: str
    shipping_address: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    client_reference_id: str | None = None

    @property
    def is_paid(self) -> bool:
        return self.status == "complete" and self.payment_status == "paid"

    def as_paid_checkout(self) -> PaidCheckout:
        """What the domain needs of a paid session, with what it says of itself kept apart from what it paid."""
        claimed = str(self.metadata.get("hold_id") or "")
        return PaidCheckout(
            session_id=self.id,
            payment_intent_id=self.payment_intent_id,
            amount_total=self.amount_total or 0,
            currency=self.currency or "",
            email=self.customer_email or "",
            claimed_hold_id=int(claimed) if claimed.isdigit() and len(claimed) < 19 else None,
            client_reference_id=self.client_reference_id,
            shipping_name=self.shipping_name,
            shipping_address=self.shipping_address,
        )


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str


def signature_timestamp(header: str) -> int | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return None


def to_plain(value: Any) -> Any:
    """Turn SDK objects (StripeObject) into plain dicts and lists."""
    if isinstance(value, stripe.StripeObject):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


def session_from_stripe(data: Any) -> CheckoutSession:
    """Read a checkout.session object (SDK object or webhook dict) into a CheckoutSession.

    Raises MalformedEvent for an object that is not shaped like one: a webhook body is signed, not trusted to be
    well formed.
    """
    data = to_plain(data)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise MalformedEvent("The checkout session has no id")
    details = mapping(data.get("customer_details"))
    collected = mapping(data.get("collected_information"))
    shipping = mapping(collected.get("shipping_details")) or mapping(data.get("shipping_details"))
    payment_intent = data.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    amount_total = data.get("amount_total")
    if amount_total is not None and (isinstance(amount_total, bool) or not isinstance(amount_total, int)):
        raise MalformedEvent("The checkout session's amount_total is not a whole number")
    metadata = mapping(data.get("metadata"))
    return CheckoutSession(
        id=data["id"],
        url=text_or_none(data.get("url")),
        status=text_or_none(data.get("status")) or "open",
        payment_status=text_or_none(data.get("payment_status")) or "unpaid",
        amount_total=amount_total,
        currency=(text_or_none(data.get("currency")) or "").upper() or None,
        payment_intent_id=text_or_none(payment_intent),
        customer_email=text_or_none(details.get("email")) or text_or_none(data.get("customer_email")),
        shipping_name=text_or_none(shipping.get("name")) or text_or_none(details.get("name")) or "",
        shipping_address=mapping(shipping.get("address")) or mapping(details.get("address")),
        metadata={str(key): str(value) for key, value in metadata.items()},
        client_reference_id=text_or_none(data.get("client_reference_id")),
    )


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class Gateway:
    """Stripe, through the official SDK."""

    def __init__(
        self,
        secret_key: str,
        api_version: str,
        api_base: str = "",
        timeout_seconds: float = 10,
        webhook_secret: str = "",
        webhook_tolerance: int = 300,
        checkout_retries: int = 2,
    ) -> None:
        if not secret_key:
            raise PaymentError("STRIPE_SECRET_KEY is not set: payments are not configured.", retryable=False)
        base_addresses = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(
            secret_key,
            stripe_version=api_version,
            base_addresses=base_addresses,
            # Background calls (the sweeper, refunds) are retried by their periodic task, with backoff.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )
        # Opening a checkout is retried at once, briefly (the SDK waits 0.5 s, then 1 s): a buyer is waiting on
        # the reserve button, and a 429 or 5xx at 10:00 should not cost them their numbers.
        self.checkout_client = stripe.StripeClient(
            secret_key,
            stripe_version=api_version,
            base_addresses=base_addresses,
            max_network_retries=checkout_retries,
            http_client=RetryingHTTPClient(timeout=timeout_seconds),
        )
        self.webhook_secret = webhook_secret
        self.webhook_tolerance = webhook_tolerance

    def create_checkout_session(
        self,
        *,
        idempotency_key: str,
        line_items: list[LineItem],
        currency: str,
        customer_email: str,
        client_reference_id: str,
        metadata: dict[str, str],
        expires_at: datetime,
        success_url: str,
        cancel_url: str,
        allowed_countries: list[str],
        shipping_options: list[dict[str, Any]] | None = None,
        submit_message: str = "",
    ) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            # Cards only: a delayed method (SEPA, bank transfer) would leave a unit held for days.
            "payment_method_types": ["card"],
            "line_items": [
                {
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": item.unit_amount,
                        "product_data": {"name": item.name},
                    },
                    "quantity": item.quantity,
                }
                for item in line_items
            ],
            "customer_email": customer_email,
            "client_reference_id": client_reference_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "expires_at": int(expires_at.timestamp()),
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if allowed_countries:
            params["shipping_address_collection"] = {"allowed_countries": allowed_countries}
        if shipping_options:
            params["shipping_options"] = shipping_options
        if submit_message:
            # Shown beside the Pay button (Stripe allows 1200 characters).
            params["custom_text"] = {"submit": {"message": submit_message[:1200]}}
        return self.call(
            "create a checkout session",
            lambda: session_from_stripe(
                self.checkout_client.v1.checkout.sessions.create(params, {"idempotency_key": idempotency_key})
            ),
        )

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        return self.call(
            "retrieve a checkout session",
            lambda: session_from_stripe(self.client.v1.checkout.sessions.retrieve(session_id)),
        )

    def expire_session(self, session_id: str) -> CheckoutSession:
        """Expire an open session so it can no longer be paid.

        Raises SessionNotOpen if it is already complete or expired, SessionGone if the gateway says for good that
        there is no such session of ours, PaymentError otherwise.
        """
        try:
            return session_from_stripe(self.client.v1.checkout.sessions.expire(session_id))
        except (stripe.PermissionError, stripe.InvalidRequestError) as error:
            if error.http_status in (403, 404):
                raise SessionGone(f"Checkout Session {session_id}: {error.user_message or error}") from error
            # Stripe refuses to expire a session that is not open; find out what it is instead.
            current = self.retrieve_session(session_id)
            if current.status != "open":
                raise SessionNotOpen(f"Checkout Session {session_id} is {current.status}", current) from error
            raise PaymentError(f"Stripe refused to expire {session_id}: {error.user_message}") from error
        except stripe.StripeError as error:
            raise self.translate("expire a checkout session", error) from error

    def refund(self, *, payment_intent_id: str, amount: int, idempotency_key: str, reason: str) -> RefundResult:
        params = {"payment_intent": payment_intent_id, "amount": amount, "metadata": {"reason": reason}}
        refund = self.call(
            "refund a payment",
            lambda: self.client.v1.refunds.create(params, {"idempotency_key": idempotency_key}),
        )
        return RefundResult(id=refund.id, status=refund.status)

    def verify_event(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Check a webhook's Stripe-Signature and return the event as a plain dict.

        Raises SignatureError for a missing, wrong, old or future-dated signature (timestamps come from Stripe's
        real clock, so this uses the real one too), MalformedEvent for a signed body that is not an event object
        with an id, a type and a `data.object`.
        """
        if not signature:
            raise SignatureError("Missing Stripe-Signature header")
        if not self.webhook_secret:
            raise SignatureError("STRIPE_WEBHOOK_SECRET is not set; refusing unverified webhooks")
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, self.webhook_secret, self.webhook_tolerance)
        except UnicodeDecodeError as error:
            raise SignatureError("The payload is not UTF-8 text") from error
        except stripe.SignatureVerificationError as error:
            raise SignatureError(str(error)) from error
        timestamp = signature_timestamp(signature)
        if timestamp is None or timestamp > time.time() + self.webhook_tolerance:
            raise SignatureError("The signature's timestamp is in the future")
        try:
            event = json.loads(text)
        except ValueError as error:
            raise MalformedEvent(f"Unreadable payload: {error}") from error
        if not isinstance(event, dict):
            raise MalformedEvent("The event is not a JSON object")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise MalformedEvent("The event has no data.object")
        if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str) or not event["id"]:
            raise MalformedEvent("The event has no id or type")
        return event

    def call(self, action: str, request):
        try:
            return request()
        except stripe.StripeError as error:
            raise self.translate(action, error) from error

    @staticmethod
    def translate(action: str, error: stripe.StripeError) -> PaymentError:
        # A 409 (the same idempotency key still in flight elsewhere), a 429 or a 5xx means "ask again", not "no".
        # A 400 idempotency error (the key reused with other parameters) will not mend itself: it is final.
        retryable = isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or (
            error.http_status in (409, 429) or (error.http_status or 0) >= 500
        )
        if error.http_status is None and isinstance(error, stripe.APIError):
            retryable = True
        log.warning("Stripe failed to %s: %s (%s)", action, error.user_message or error, type(error).__name__)
        return PaymentError(f"Could not {action}: {error.user_message or error}", retryable=retryable)


def gateway(app: Flask | None = None) -> Gateway:
    """The app's gateway, built once per app from its configuration."""
    app = app or current_app
    existing = app.extensions.get("payments_gateway")
    if existing is None:
        existing = Gateway(
            secret_key=app.config["STRIPE_SECRET_KEY"],
            api_version=app.config["STRIPE_API_VERSION"],
            api_base=app.config["STRIPE_API_BASE"],
            timeout_seconds=app.config["STRIPE_TIMEOUT_SECONDS"],
            webhook_secret=app.config["STRIPE_WEBHOOK_SECRET"],
            checkout_retries=app.config["STRIPE_CHECKOUT_RETRIES"],
        )
        app.extensions["payments_gateway"] = existing
    return existing
