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
is now, not as it was a second before. A producer's change in this process drops the release's pages at once (and
a render begun before it, of any release, is not kept); other processes show it within PAGE_CACHE_SECONDS, or at
most REFRESH_GRACE more while a busy process re-renders.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask_wtf.csrf import generate_csrf

from storefront.http_caching import flashes_shown
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
# How long one thread's render may take before another thread tries, and how long past its time a kept page may be
# served while that render is under way.
REFRESH_GRACE = timedelta(seconds=2)


# How long a thread waits for another's render of the same page before rendering it itself (real seconds).
WAIT_FOR_RENDER_SECONDS = 1.0
SERVER_NOW = re.compile(r'data-server-now="[^"]*"')


@dataclass(frozen=True)
class KeptPage:
    body: str
    until: datetime  # fresh until then
    # Never shown at or after this: the release's next moment (early access, on sale, off sale), or None.
    changes_at: datetime | None
    release_id: int

    def shown_at(self, now: datetime) -> bool:
        return self.changes_at is None or now < self.changes_at


@dataclass
class Render:
    """One thread rendering a page the others wait for (or serve stale meanwhile)."""

    started: datetime
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Lookup:
    """One request's look at the cache: the page for it, or the duty to render it (and the chance to keep it)."""

    cache: PageCache
    key: tuple[str, str]
    now: datetime
    # Decided before rendering: rendering changes the session (a flashed message is consumed, Flask-Login drops an
    # account whose client changed), and what was personal then must never be kept.
    shared: bool
    epoch: int
    body: str | None = None
    renders: Render | None = None  # set when this request renders for the others

    def keep(self, body: str, release: Release) -> None:
        """Keep `body`, a page of `release` rendered for this request, if it is the same for every visitor."""
        self.cache.keep(self, body, release)


class PageCache:
    """One process's rendered pages by key (such as ("release", slug)), each with the moment it stops being fresh.

    One thread renders a page that is missing or stale while the others serve the stale copy (for at most
    REFRESH_GRACE past its time) or, with no copy to serve (the first request, the moment sales open), wait for that
    render briefly: otherwise every thread that asks in that moment renders the same page at once, and at a drop that
    is every thread. A page past its release's next moment is never served, stale or not.
    """

    def __init__(self, seconds: float, wait_seconds: float = WAIT_FOR_RENDER_SECONDS) -> None:
        self.keep_for = timedelta(seconds=max(seconds, 0))  # 0 (or less) keeps nothing
        self.wait_seconds = wait_seconds
        self.pages: dict[tuple[str, str], KeptPage] = {}
        self.renders: dict[tuple[str, str], Render] = {}
        # Bumped by forget(): a render that began before a producer's change is not kept after it.
        self.epoch = 0
        # gthread workers share this object between threads.
        self.lock = threading.Lock()

    @contextmanager
    def lookup(self, key: tuple[str, str], now: datetime) -> Iterator[Lookup]:
        """Look `key` up for this request: `.body` is the page to send, or None to render it (then `.keep()` it).

        A render that fails (a 404 for a renamed release, an error) drops what was kept under `key`.
        """
        found = Lookup(self, key, now, shared=bool(self.keep_for) and shared_page_request(), epoch=self.epoch)
        if found.shared:
            found.body = self.find(found)
        try:
            yield found
        except BaseException:
            if found.renders is not None:
                with self.lock:
                    if self.renders.get(key) is found.renders:  # still this request's to render: not overtaken
                        self.pages.pop(key, None)
            raise
        finally:
            if found.renders is not None:
                with self.lock:
                    if self.renders.get(key) is found.renders:
                        del self.renders[key]
                found.renders.done.set()

    def find(self, found: Lookup) -> str | None:
        """The kept page for this visitor (their token, the time now), or None after taking the duty to render."""
        key, now = found.key, found.now
        for attempt in range(2):
            with self.lock:
                kept = self.pages.get(key)
                if kept is not None and not kept.shown_at(now):
                    kept = None
                if kept is not None and now < kept.until:
                    return personal_copy(kept.body, now)
                render = self.renders.get(key)
                if render is not None and now >= render.started + REFRESH_GRACE:
                    render = None  # that render is taking too long: this thread tries
                if render is None:
                    found.renders = self.renders[key] = Render(now)
                    return None
                if kept is not None and now < kept.until + REFRESH_GRACE:
                    return personal_copy(kept.body, now)  # stale by the length of one render
            # No copy to serve: wait for the render under way, once, then look again.
            if attempt == 0 and not render.done.wait(self.wait_seconds):
                return None
        return None

    def keep(self, found: Lookup, body: str, release: Release) -> None:
        if not found.shared or flashes_shown() or g.get("hold_banner_shown"):
            return
        field_name = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        signed = g.get(field_name)
        if signed:
            body = body.replace(signed, TOKEN_SLOT)
        body = SERVER_NOW.sub(NOW_SLOT, body)
        now = found.now
        moments = (release.early_access_at, release.on_sale_at, release.off_sale_at)
        changes_at = min((moment for moment in moments if moment is not None and moment > now), default=None)
        until = now + self.keep_for if changes_at is None else min(now + self.keep_for, changes_at)
        with self.lock:
            newer = self.pages.get(found.key)
            # Not over a producer's change made since this render began, nor over a later render that landed first.
            if self.epoch == found.epoch and (newer is None or newer.until <= until):
                self.pages[found.key] = KeptPage(body, until, changes_at, release.id)

    def forget(self, release_id: int) -> None:
        """Drop this process's pages of a release (the producer changed it here), and any render begun before."""
        with self.lock:
            self.epoch += 1
            for key in [key for key, kept in self.pages.items() if kept.release_id == release_id]:
                del self.pages[key]


def personal_copy(body: str, now: datetime) -> str:
    """A kept page with this visitor's form token and the server's time now put in."""
    if TOKEN_SLOT in body:
        body = body.replace(TOKEN_SLOT, generate_csrf())
    if NOW_SLOT in body:
        body = body.replace(NOW_SLOT, server_now_attribute(now))
    return body


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
