"""Cache headers and conditional GETs for the public pages: home, release, story, the shop's pages and the feed.

Every such page gets a weak ETag over what it shows and a short `max-age`, so a browser going back to a page does
not ask at all for a few seconds, and one that asks again with `If-None-Match` gets a bodyless 304 when nothing
changed. Counts change by the second during a drop, so pages that show them are kept for seconds, not minutes.

Public or private: almost every HTML page carries a CSRF token. Flask-WTF keeps a random token in the visitor's
signed session cookie and puts a signed copy of it in each form; a post is accepted only with a copy that matches
*this* session's token. A shared cache (a CDN, a proxy) that kept one visitor's page would hand that copy to
everyone else, whose own sessions carry other tokens: every reserve from the cached page would fail with "the form
expired". So a page whose rendering read the session (the CSRF token, the signed-in account, the hold banner) is
`private`: only the visitor's own browser may keep it. Only a page that is the same for everyone (the feed: no
form, no cookie set) is `public`. The personal cases stay stronger: a page with the hold banner or a flashed message is
`private, no-store` (storefront/shop/held.py sets it for the banner), and a view that already chose its own
Cache-Control (a waiter's place on a release page) is left alone.

The ETag leaves out the signed copy of the token, which is re-signed with a timestamp on every render, and puts in
the session's token itself: a 304 then means "your copy is the same page, and its form still posts from your
session" (tokens do not expire here: WTF_CSRF_TIME_LIMIT is None). Private pages vary on Cookie, so a browser whose
cookie changed (it just reserved, signed in, or was shown a message) never reuses a copy made before.

The ETag is taken over the rendered page, so a 304 saves the transfer (and the phone's parsing), not the server's
rendering; what saves the server is the `max-age`, during which a browser going back to a page does not ask at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import Flask, current_app, g, request, session
from flask.globals import request_ctx
from flask.wrappers import Response


@dataclass(frozen=True)
class PagePolicy:
    """How long a browser may keep a page without asking, and how long past that it may show it while it asks."""

    max_age: int
    stale_while_revalidate: int
    # A page that is the same for every visitor (no form, nothing of the session): shared caches may keep it.
    same_for_everyone: bool = False


# Pages that show live counts are kept for seconds; written pages and the feed change rarely. A kept copy that a
# status change overtook (on sale at 10:00, sold out) mends itself: its countdown reloads at zero and its stock
# check reloads on a new status, and a reload always asks the server again; the reserve POST checks everything anew.
PAGE_POLICIES = {
    "shop.show_home": PagePolicy(max_age=5, stale_while_revalidate=30),
    "shop.show_release": PagePolicy(max_age=5, stale_while_revalidate=30),
    "story.show_batch": PagePolicy(max_age=15, stale_while_revalidate=60),
    "pages.show_page": PagePolicy(max_age=60, stale_while_revalidate=300),
    "audience.show_feed": PagePolicy(max_age=300, stale_while_revalidate=3600, same_for_everyone=True),
}
PERSONAL = "private, no-store"


def flashes_shown() -> bool:
    """Whether this page showed a flashed message: one person's, once."""
    return bool(getattr(request_ctx, "flashes", None))


def page_etag(body: bytes) -> str:
    """A validator for what the page shows, the same for every render of it in one session."""
    digest = hashlib.blake2b(digest_size=16)
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    signed = g.get(field)
    if signed:
        body = body.replace(signed.encode(), b"")
        digest.update(str(session.get(field, "")).encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def cache_public_page(response: Response) -> Response:
    """Give a public page its Cache-Control and ETag, and answer 304 when the browser's copy is still the page."""
    policy = PAGE_POLICIES.get(request.endpoint or "")
    if (
        policy is None
        or request.method not in ("GET", "HEAD")
        or response.status_code != 200
        or response.is_streamed
        or "Cache-Control" in response.headers
    ):
        return response
    if g.get("hold_banner_shown") or flashes_shown():
        response.headers["Cache-Control"] = PERSONAL
        response.vary.add("Cookie")
        return response
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    # Flask-Login reads the session on every rendered template, so "the session was read" says nothing; a form's
    # token or a cookie being set does.
    shared = policy.same_for_everyone and not g.get(field) and not session.modified
    scope = "public" if shared else "private"
    response.set_etag(page_etag(response.get_data()), weak=True)
    response.headers["Cache-Control"] = (
        f"{scope}, max-age={policy.max_age}, stale-while-revalidate={policy.stale_while_revalidate}"
    )
    if scope == "private":
        response.vary.add("Cookie")
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    """Register after Flask-Compress: after-request hooks run last-registered first, so the ETag is taken over the
    page as rendered and a 304 is decided before anything is compressed."""
    app.after_request(cache_public_page)
