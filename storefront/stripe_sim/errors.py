"""Stripe's error shape: `{"error": {"type", "message", "param", "code", ...}}` with Stripe's status codes."""

from __future__ import annotations

from typing import Any

ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "card_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "invalid_request_error",
}
DEFAULT_CODE_BY_STATUS = {429: "rate_limit"}
DEFAULT_MESSAGE_BY_STATUS = {
    429: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
    500: "An unknown error occurred (simulated by the Stripe simulator).",
}


class StripeError(Exception):
    """An API failure the simulator answers the way Stripe would."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        **extra: Any,
    ) -> None:
        self.status = status
        self.message = message or DEFAULT_MESSAGE_BY_STATUS.get(status, "An error occurred.")
        self.param = param
        self.code = code if code is not None else DEFAULT_CODE_BY_STATUS.get(status)
        self.type = error_type or ERROR_TYPE_BY_STATUS.get(status, "api_error")
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def missing_param(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", param=param, code="parameter_missing")


def unknown_param(param: str) -> StripeError:
    return StripeError(400, f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def no_such(kind: str, identifier: str, param: str | None = None, status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{identifier}'", param=param or "id", code="resource_missing")
