"""The answer to a request over one of the shop's rate limits (Flask-Limiter): a page in the shop's voice, 429."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from flask import Response, current_app, render_template
from flask_limiter.util import get_remote_address

from storefront.extensions import limiter


def too_many_requests(template: str, **context: Any) -> Response:
    """Render `template` with how long to wait, as a 429 with Retry-After from the limit that was hit."""
    current = limiter.current_limit
    retry_after = max(1, int(current.reset_at - time.time())) if current else 60
    response = current_app.make_response((render_template(template, retry_after=retry_after, **context), 429))
    response.headers["Retry-After"] = str(retry_after)
    return response


def client_network() -> str:
    """The client a per-IP limit counts: its IPv4 address, or the /64 network of an IPv6 one."""
    address = get_remote_address()
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        # One IPv6 host is normally handed a whole /64: counted address by address, it could never run out.
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
