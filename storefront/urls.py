"""Absolute addresses of the shop's pages, built from SHOP_URL and never from the request's Host header.

A request's Host is whatever the client (or a proxy, or `stripe listen`) sent. An address given to somebody else,
such as Stripe's success and cancel URLs or a link in a mail, must point at the shop's public address instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, current_app
from werkzeug.routing import MapAdapter


def shop_url_adapter(app: Flask) -> MapAdapter:
    """A URL builder bound to SHOP_URL: its scheme, host and port, and its path as the shop's base path."""
    base = urlsplit(app.config["SHOP_URL"])
    if base.scheme not in {"http", "https"} or not base.netloc:
        raise RuntimeError(f"SHOP_URL must be an absolute http(s) address, got {app.config['SHOP_URL']!r}")
    return app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)


def external_url(endpoint: str, /, **values: Any) -> str:
    """Return the absolute address of `endpoint` on SHOP_URL, as `url_for(endpoint, _external=True, ...)` would.

    Works wherever there is an app context (a request, a CLI command, a worker task), whatever Host the current
    request came with. Values are percent-encoded as by url_for; `_anchor` adds a fragment. Stripe's literal
    `{CHECKOUT_SESSION_ID}` must be appended to the result, not passed as a value (its braces would be encoded).
    """
    app = current_app._get_current_object()
    anchor = values.pop("_anchor", None)
    app.inject_url_defaults(endpoint, values)
    url = shop_url_adapter(app).build(endpoint, values, force_external=True)
    if anchor is not None:
        url += "#" + quote(anchor, safe="%!#$&'()*+,/:;=?@")
    return url


def safe_next_url(target: str | None, default: str = "/") -> str:
    """Return `target` if it is a path on this shop ("/producer/?x=1"), else `default`.

    The one check for every `next` redirect: anything a browser could read as another site is refused, such as
    "//evil.example", "https://evil.example", "/\\evil.example" (browsers read "\\" as "/") and paths with control
    characters or whitespace, which browsers strip ("/\\t/evil.example" becomes "//evil.example").
    """
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(
        character.isspace() or ord(character) < 32 or ord(character) == 127 for character in target
    ):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
