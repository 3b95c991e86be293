"""The shop's defences at the HTTP edge, and the settings production refuses to start without.

- Every response carries security headers: a Content-Security-Policy without 'unsafe-inline' (the templates have no
  inline script or style), nosniff, no framing, a referrer policy, and HSTS in production.
- A request body above MAX_CONTENT_LENGTH is answered 413 before anything reads it (forms, CSRF, the webhook).
- A NUL byte is refused at the door: 404 in the path, 400 in the query string, a form field or a body. No buyer
  types one, and PostgreSQL cannot store one in a text column, so letting it reach a view only turns into a 500.
- Flask's TRUSTED_HOSTS (always with SHOP_URL's host; production checks hosts even when it is empty) and werkzeug's
  ProxyFix (PROXY_FIX) are set here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, request
from flask.wrappers import Response
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.sansio.utils import host_is_trusted

import config as settings

# Where real Stripe's hosted Checkout page lives: the reserve form's 303 lands there.
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"
FORM_MIMETYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

MIN_SECRET_KEY_LENGTH = 32
# Phrases of keys copied from examples and tutorials, however padded or repeated; a random key will not contain one.
# Compared without case or punctuation ("Change_Me!" is "changeme").
PLACEHOLDER_SECRET_PHRASES = (
    "changeme",
    "replaceme",
    "secretkey",
    "yoursecret",
    "testsecret",
    "devsecret",
    "notsecret",
    "supersecret",
    "placeholder",
    "insecure",
    "example",
    "dummy",
)
# A random key of 32+ characters uses far more different characters than this; "x" * 40 or a repeated word does not.
MIN_DISTINCT_SECRET_CHARACTERS = 10


def init_app(app: Flask) -> None:
    """Install the request checks and response headers; call before CSRFProtect.init_app, so they come first."""
    app.extensions["storefront.security_headers"] = security_headers(app.config)
    app.before_request(refuse_oversized_bodies_and_nul_bytes)
    app.after_request(add_security_headers)


# --- Response headers ---------------------------------------------------------------------------------------------


def checkout_origin(stripe_api_base: str) -> str:
    """The origin of the hosted checkout page: the simulator's (STRIPE_API_BASE) when set, else Stripe's."""
    if not stripe_api_base:
        return STRIPE_CHECKOUT_ORIGIN
    base = urlsplit(stripe_api_base)
    return f"{base.scheme}://{base.netloc.rpartition('@')[2]}".lower()


def content_security_policy(config: Mapping[str, Any]) -> str:
    """Only the shop's own files; forms may post to the shop, whose reserve form then redirects to checkout.

    Chromium applies form-action to the redirects that follow a form's submission, so the checkout page's origin
    must be listed beside 'self'.
    """
    directives = {
        "default-src": "'self'",
        "img-src": "'self' data:",
        "style-src": "'self'",
        "script-src": "'self'",
        "form-action": f"'self' {checkout_origin(config.get('STRIPE_API_BASE', ''))}",
        "frame-ancestors": "'none'",
        "base-uri": "'self'",
        "object-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers(config: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(config),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
    }
    if config.get("STRICT_TRANSPORT_SECURITY"):
        headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
    return headers


def add_security_headers(response: Response) -> Response:
    """Add the shop's security headers to a response, keeping any a view chose for itself."""
    for name, value in current_app.extensions["storefront.security_headers"].items():
        response.headers.setdefault(name, value)
    return response


# --- Requests: size and NUL bytes ---------------------------------------------------------------------------------


def has_nul(*texts: str | None) -> bool:
    return any(text is not None and "\x00" in text for text in texts)


def refuse_oversized_bodies_and_nul_bytes() -> None:
    """Answer 413 for a body above MAX_CONTENT_LENGTH, 404 for a NUL in the path, 400 for one anywhere else."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    if has_nul(request.path):
        abort(404)
    if any(has_nul(key, value) for key, value in request.args.items(multi=True)):
        abort(400, description="The address contains a character the shop does not accept (a NUL byte).")
    if request.content_length is None and "Transfer-Encoding" not in request.headers:
        return  # no body: a page view, the bulk of a drop's requests
    # Reading the body here also enforces MAX_CONTENT_LENGTH on bodies sent without a Content-Length (chunked).
    if request.mimetype in FORM_MIMETYPES:
        fields = request.form.items(multi=True)
        files = ((key, upload.filename) for key, upload in request.files.items(multi=True))
        if any(has_nul(key, value) for key, value in [*fields, *files]):
            abort(400, description="The form contains a character the shop does not accept (a NUL byte).")
    elif b"\x00" in request.get_data(cache=True):
        abort(400, description="The request contains a character the shop does not accept (a NUL byte).")


# --- Hosts and proxies --------------------------------------------------------------------------------------------


def shop_host(app: Flask) -> str:
    return (urlsplit(app.config["SHOP_URL"]).hostname or "").lower()


def configure_hosts_and_proxies(app: Flask) -> None:
    """Set Flask's TRUSTED_HOSTS and wrap the app in ProxyFix if PROXY_FIX asks for it.

    Production checks hosts even when TRUSTED_HOSTS is empty (SHOP_URL's host only). Whenever hosts are checked,
    SHOP_URL's host is one of them: mail is rendered in a request for SHOP_URL (notifications.queue_mail).
    """
    trusted = app.config.get("TRUSTED_HOSTS")
    if isinstance(trusted, str):
        trusted = [host.strip() for host in trusted.split(",") if host.strip()]
    trusted = list(trusted or [])
    host = shop_host(app)
    checked = bool(trusted) or app.config.get("ENV_NAME") == "production"
    # host_is_trusted accepts any host against an empty list, hence the `trusted and`.
    if checked and host and not (trusted and host_is_trusted(host, trusted)):
        trusted.append(host)
    app.config["TRUSTED_HOSTS"] = trusted or None

    proxy_fix = app.config.get("PROXY_FIX") or {}
    if isinstance(proxy_fix, str | int):
        proxy_fix = settings.parse_proxy_fix(str(proxy_fix))
    app.config["PROXY_FIX"] = proxy_fix
    if proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, **proxy_fix)


# --- What production refuses ----------------------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8, ::1 (also written as 127.1, 0x7f.1 or ::ffff:127.0.0.1) and 0.0.0.0."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:  # the short and numeric forms browsers also accept
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def is_weak_secret_key(key: str) -> bool:
    """True for a key too short, too repetitive, or copied from an example ("change-me", "test-secret-key"...)."""
    normalised = "".join(character for character in key.lower() if character.isalnum())
    return (
        len(key) < MIN_SECRET_KEY_LENGTH
        or len(set(key)) < MIN_DISTINCT_SECRET_CHARACTERS
        or any(phrase in normalised for phrase in PLACEHOLDER_SECRET_PHRASES)
    )


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """What is unsafe about these settings for a production shop (empty when nothing is)."""
    problems = []
    secret_key = config.get("SECRET_KEY") or ""
    if secret_key and is_weak_secret_key(secret_key):
        problems.append(
            f"SECRET_KEY must be a random value of at least {MIN_SECRET_KEY_LENGTH} characters, not a placeholder "
            "(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    shop_url = config.get("SHOP_URL") or ""
    shop = urlsplit(shop_url)
    if shop.scheme != "https" or not shop.hostname:
        problems.append(f"SHOP_URL must be the shop's public https:// address, got {shop_url!r}")
    elif is_loopback_host(shop.hostname):
        problems.append(f"SHOP_URL must be the shop's public address, not a loopback one: {shop_url!r}")
    if config.get("STRIPE_API_BASE"):
        problems.append(
            f"STRIPE_API_BASE must be empty in production: payments go to Stripe itself, not to "
            f"{config['STRIPE_API_BASE']!r} (the simulator)"
        )
    return problems
