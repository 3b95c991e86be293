"""Whole pages kept for a second by each process: a release page, and the answer that it sold out.

At 10:00 thousands of buyers open one release page, and once its last unit is held thousands more are told it sold
out. Each of those pages is the same for every visitor but for two things: the form's CSRF token, which is bound to
the visitor's session, and the server's clock a countdown starts from. So each process renders such a page at most
once per `PAGE_CACHE_SECONDS` and keeps it with both cut out; a visitor whose session shapes nothing on the page
(no hold banner, no flashed message, not signed in) gets the kept page with their own token and the time put back:
no query, no template. Anyone else gets the page rendered for them, as before.

Safe when stale, as the other per-process caches are: a count on the page may be a second old (the live count is
too), and the reserve POST re-checks everything in the claim's own transaction. A kept page never outlives the
release's next moment (early access, on sale, off sale): the countdown that reaches zero reloads into the page as it
is now, not as it was a second before. A producer's change in this process drops the release's pages at once, in
other processes within the second.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask_wtf.csrf import generate_csrf

from storefront.models import Release
from storefront.shop import held
from storefront.text import iso_utc

EXTENSION_KEY = "storefront.page_cache"
# Stand-ins for what differs between visitors; neither can occur in a rendered page (no markup, no real token).
TOKEN_SLOT = "\x1bcsrf-token\x1b"  # noqa: S105 - a placeholder, not a secret
NOW_SLOT = "\x1bserver-now\x1b"
# The only address arguments these pages read: a waiter's link shows their place in line. Anything else (the utm_
# tags of an announcement mail or a post) changes nothing on the page and must not cost a render at 10:00.
PERSONAL_ARGUMENTS = ("waiter",)
# How long one thread's render of a stale page may take before another thread tries (its render may have failed).
REFRESH_GRACE = timedelta(seconds=2)


@dataclass(frozen=True)
class KeptPage:
    body: str
    until: datetime  # fresh until then
    # Never shown at or after this: the release's next moment (early access, on sale, off sale), or None.
    changes_at: datetime | None
    release_id: int


class PageCache:
    """One process's rendered pages by key (such as ("release", slug)), each with the moment it stops being fresh.

    When a kept page goes stale, one thread renders it again while the others go on serving the stale copy for the
    few milliseconds that takes: otherwise every thread that asks in that moment renders the same page at once, and
    at a drop that is every thread, every second. A page past its release's next moment is never served stale.
    """

    def __init__(self, seconds: float) -> None:
        self.keep_for = timedelta(seconds=seconds)
        self.pages: dict[tuple[str, str], KeptPage] = {}
        # Keys being rendered again, with when that began: a render that failed is retried after REFRESH_GRACE.
        self.refreshing: dict[tuple[str, str], datetime] = {}
        # gthread workers share this object between threads.
        self.lock = threading.Lock()

    def page(self, key: tuple[str, str], now: datetime) -> str | None:
        """The kept page for this visitor (their token, the time now), or None: render it."""
        if not self.keep_for or not shared_page_request():
            return None
        with self.lock:
            kept = self.pages.get(key)
            if kept is None or (kept.changes_at is not None and now >= kept.changes_at):
                return None
            if now >= kept.until:
                started = self.refreshing.get(key)
                if started is None or now >= started + REFRESH_GRACE:
                    self.refreshing[key] = now  # this thread renders; the others serve the stale copy meanwhile
                    return None
        body = kept.body
        if TOKEN_SLOT in body:
            body = body.replace(TOKEN_SLOT, generate_csrf())
        if NOW_SLOT in body:
            body = body.replace(NOW_SLOT, server_now_attribute(now))
        return body

    def keep(self, key: tuple[str, str], body: str, now: datetime, release: Release) -> None:
        """Keep `body`, a page of `release` rendered at `now` for this visitor, until the cache's time is up or the
        release's page would change by itself (early access, on sale, off sale), whichever comes first."""
        if not self.keep_for or not shared_page_request():
            return
        field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        signed = g.get(field)
        if signed:
            body = body.replace(signed, TOKEN_SLOT)
        body = body.replace(server_now_attribute(now), NOW_SLOT)
        moments = (release.early_access_at, release.on_sale_at, release.off_sale_at)
        changes_at = min((moment for moment in moments if moment is not None and moment > now), default=None)
        until = now + self.keep_for if changes_at is None else min(now + self.keep_for, changes_at)
        with self.lock:
            self.pages[key] = KeptPage(body, until, changes_at, release.id)
            self.refreshing.pop(key, None)

    def forget(self, release_id: int) -> None:
        """Drop this process's pages of a release (the producer changed it here)."""
        with self.lock:
            for key in [key for key, kept in self.pages.items() if kept.release_id == release_id]:
                del self.pages[key]
                self.refreshing.pop(key, None)


def server_now_attribute(now: datetime) -> str:
    """How a page hands its countdown the server's clock (templates/shop/show_release.html)."""
    return f'data-server-now="{iso_utc(now)}"'


def shared_page_request() -> bool:
    """Whether this visitor sees the page exactly as every other would: nothing in the address, their session or
    their cookies shapes it (a waiter's link, a hold banner, a flashed message, a signed-in or remembered account)."""
    if any(name in request.args for name in PERSONAL_ARGUMENTS):
        return False
    if "_user_id" in session or "_flashes" in session or session.get(held.SESSION_KEY):
        return False
    return current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") not in request.cookies


def page_cache() -> PageCache:
    """The running app's cache, made on first use with the app's settings."""
    cache = current_app.extensions.get(EXTENSION_KEY)
    if cache is None:
        cache = current_app.extensions.setdefault(EXTENSION_KEY, PageCache(current_app.config["PAGE_CACHE_SECONDS"]))
    return cache
