"""The live count of a release, kept by each process for a second (STOCK_CACHE_SECONDS).

Every open release page polls `/api/releases/<slug>`: at a drop, thousands of pages ask for the same release many
times a second, and counting its units (three round trips: the release, its units by status, the timed-out holds)
on each would cost as much as serving the page. Within one second the answer is the same for all of them. It is
safe when stale: the count only informs, and the claim counts again, under its own locks, before it holds anything.
Each process keeps its own copy, so nothing has to be invalidated across servers; it is at most one second old.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app

EXTENSION_KEY = "storefront.stock_cache"


class StockCache:
    """One process's recent stock answers by release slug, each with the moment it stops being fresh."""

    def __init__(self, seconds: float) -> None:
        self.fresh_for = timedelta(seconds=seconds)
        self.answers: dict[str, tuple[datetime, dict]] = {}
        # gthread workers share this object between threads.
        self.lock = threading.Lock()

    def answer(self, slug: str, now: datetime, count: Callable[[], dict | None]) -> dict | None:
        """The stock answer for `slug`: the cached one while fresh, else `count()`'s (None: no such release)."""
        if self.fresh_for:
            with self.lock:
                cached = self.answers.get(slug)
            if cached is not None and now < cached[0]:
                return cached[1]
        payload = count()
        # Only releases that exist are kept: the cache stays as small as the catalogue, whatever addresses are asked.
        if payload is not None and self.fresh_for:
            with self.lock:
                self.answers[slug] = (now + self.fresh_for, payload)
        return payload


def stock_cache() -> StockCache:
    """The running app's cache, made on first use with the app's settings."""
    cache = current_app.extensions.get(EXTENSION_KEY)
    if cache is None:
        cache = current_app.extensions.setdefault(EXTENSION_KEY, StockCache(current_app.config["STOCK_CACHE_SECONDS"]))
    return cache
