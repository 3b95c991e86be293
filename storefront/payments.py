"""The payment gateway: the one place that imports stripe.

Everything goes through the official SDK's StripeClient with a pinned API version. `STRIPE_API_BASE` points it at
another Stripe-compatible server (the project's simulator), and nothing else in the shop knows the difference.
Results come back as small plain dataclasses, so callers never handle SDK objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import stripe
from flask import Flask, current_app

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


class SignatureError(Exception):
    """A webhook's signature is missing, wrong, or too old."""


@dataclass(frozen=True)
class LineItem:
    name: str
    unit_amount: int
    quantity: int = 1


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

    @property
    def is_paid(self) -> bool:
        return self.status == "complete" and self.payment_status == "paid"


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str


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
    """Read a checkout.session object (SDK object or webhook dict) into a CheckoutSession."""
    data = to_plain(data)
    details = data.get("customer_details") or {}
    collected = data.get("collected_information") or {}
    shipping = collected.get("shipping_details") or data.get("shipping_details") or {}
    payment_intent = data.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    return CheckoutSession(
        id=data["id"],
        url=data.get("url"),
        status=data.get("status") or "open",
        payment_status=data.get("payment_status") or "unpaid",
        amount_total=data.get("amount_total"),
        currency=(data.get("currency") or "").upper() or None,
        payment_intent_id=payment_intent,
        customer_email=details.get("email") or data.get("customer_email"),
        shipping_name=shipping.get("name") or details.get("name") or "",
        shipping_address=shipping.get("address") or details.get("address") or {},
        metadata=dict(data.get("metadata") or {}),
    )


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
    ) -> None:
        if not secret_key:
            raise PaymentError("STRIPE_SECRET_KEY is not set: payments are not configured.", retryable=False)
        base_addresses = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(
            secret_key,
            stripe_version=api_version,
            base_addresses=base_addresses,
            # Retries are ours to decide (the sweeper and the refund task come back later); a buyer waiting on
            # the reserve button must get an answer within the timeout, not after several silent retries.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
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
        return self.call(
            "create a checkout session",
            lambda: session_from_stripe(
                self.client.v1.checkout.sessions.create(params, {"idempotency_key": idempotency_key})
            ),
        )

    def retrieve_session(self, session_id: str) -> CheckoutSession:
        return self.call(
            "retrieve a checkout session",
            lambda: session_from_stripe(self.client.v1.checkout.sessions.retrieve(session_id)),
        )

    def expire_session(self, session_id: str) -> CheckoutSession:
        """Expire an open session so it can no longer be paid; SessionNotOpen if it is already complete/expired."""
        try:
            return session_from_stripe(self.client.v1.checkout.sessions.expire(session_id))
        except stripe.InvalidRequestError as error:
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
        """Check a webhook's Stripe-Signature and return the event as a plain dict."""
        if not signature:
            raise SignatureError("Missing Stripe-Signature header")
        if not self.webhook_secret:
            raise SignatureError("STRIPE_WEBHOOK_SECRET is not set; refusing unverified webhooks")
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self.webhook_secret, tolerance=self.webhook_tolerance
            )
        except stripe.SignatureVerificationError as error:
            raise SignatureError(str(error)) from error
        except ValueError as error:
            raise SignatureError(f"Unreadable payload: {error}") from error
        return to_plain(event)

    def call(self, action: str, request):
        try:
            return request()
        except stripe.StripeError as error:
            raise self.translate(action, error) from error

    @staticmethod
    def translate(action: str, error: stripe.StripeError) -> PaymentError:
        retryable = isinstance(error, stripe.APIConnectionError | stripe.APIError | stripe.RateLimitError)
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
        )
        app.extensions["payments_gateway"] = existing
    return existing
