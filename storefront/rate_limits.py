"""The answer to a request over one of the shop's rate limits (Flask-Limiter): a page in the shop's voice, 429."""

from __future__ import annotations

import time

from flask import Response, current_app, render_template

from storefront.extensions import limiter


def too_many_requests(template: str) -> Response:
    """Render `template` with how long to wait, as a 429 with Retry-After from the limit that was hit."""
    current = limiter.current_limit
    retry_after = max(1, int(current.reset_at - time.time())) if current else 60
    response = current_app.make_response((render_template(template, retry_after=retry_after), 429))
    response.headers["Retry-After"] = str(retry_after)
    return response
