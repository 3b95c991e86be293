"""Rate limits on reserving, per client and per buyer, shared by every way to reserve.

The release page's reserve form, a waiter's early-access reserve and the claim of an offered number draw on the
same two allowances (RESERVE_LIMIT_PER_IP, RESERVE_LIMIT_PER_EMAIL): a client, or a buyer, cannot get more tries by
switching forms. The limits are checked before the view runs, so before the claim: a request over a limit never
takes a unit. Every attempt counts, whatever its answer; a sold-out answer is one cheap read, and a buyer retrying
"only 2 left" needs a handful of tries, not the allowance. A request without the form's token is refused (400)
before the limits are consulted, by the CSRF check.
"""

from __future__ import annotations

from flask import current_app, request

from storefront.domain.buyers import buyer_key
from storefront.domain.errors import DomainError
from storefront.extensions import limiter
from storefront.rate_limits import client_network

IP_SCOPE = "reserve-ip"
BUYER_SCOPE = "reserve-buyer"


def reserve_limit_per_ip() -> str:
    return current_app.config["RESERVE_LIMIT_PER_IP"]


def reserve_limit_per_email() -> str:
    return current_app.config["RESERVE_LIMIT_PER_EMAIL"]


def buyer_limit_key(key: str) -> str:
    # Never empty: Flask-Limiter skips a limit whose key is empty.
    return f"buyer:{key}"


def submitted_buyer() -> str:
    """The buyer the reserve form names: its email as the per-customer limit counts it (plus-tags and case folded)."""
    typed = (request.form.get("email") or "").strip()
    try:
        key = buyer_key(typed, ignore_plus_tags=current_app.config["BUYER_KEY_IGNORES_PLUS_TAGS"])
    except DomainError:
        # The form will refuse this address; its attempts still count, by what was typed.
        key = typed.lower()[:320]
    return buyer_limit_key(key)


# One allowance per client network for every reserve form (rate_limits.client_network: an IPv6 client by its /64).
reserve_limit_by_ip = limiter.shared_limit(reserve_limit_per_ip, scope=IP_SCOPE, key_func=client_network)


def reserve_limit_by_buyer(key_func):
    """The per-buyer allowance, shared by every reserve form; `key_func` says which buyer a request is for."""
    return limiter.shared_limit(reserve_limit_per_email, scope=BUYER_SCOPE, key_func=key_func)
