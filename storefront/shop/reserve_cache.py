"""Short-lived, per-process answers for the reserve POST: a release's rules, and that it is sold out.

At a drop every worker answers thousands of POSTs for one release in a minute; asking the database for the same
release row, or for the same "nothing left", on each of them is most of what a refusal costs. Both answers are
safe when stale. The claim (`storefront.domain.inventory.claim`) re-reads the release with its row locked and
re-checks every rule it needs (on sale, closed, paused, quantity, per-customer limit, number choice and range) in
its own transaction, so a stale rule can only send a request to a claim that refuses it, or refuse it a moment
early. A stale sold-out answer can turn a buyer away for at most `SOLD_OUT_CACHE_SECONDS` after units came back
(a hold ended); the next request looks again. Each process keeps its own copy: nothing to invalidate across
servers, and a producer's change reaches every worker within `RELEASE_RULES_CACHE_SECONDS`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session

from storefront.domain.inventory import has_claimable_units
from storefront.models import Release, ReleaseStatus

EXTENSION_KEY = "storefront.reserve_cache"


@dataclass(frozen=True)
class ReleaseRules:
    """What the reserve POST needs of a release before the claim: its id and the rules of its form."""

    id: int
    slug: str
    on_sale_at: datetime
    off_sale_at: datetime | None
    paused_at: datetime | None
    per_customer_limit: int
    total_units: int
    allow_number_choice: bool

    def status_at(self, now: datetime, available: int) -> ReleaseStatus:
        """Derive the status as the model does."""
        # The model's own method, so the two can never disagree: it reads only the fields above.
        return Release.status_at(self, now, available)  # type: ignore[arg-type]


RULE_COLUMNS = (
    Release.id,
    Release.slug,
    Release.on_sale_at,
    Release.off_sale_at,
    Release.paused_at,
    Release.per_customer_limit,
    Release.total_units,
    Release.allow_number_choice,
)


def read_release_rules(session: Session | scoped_session, slug: str) -> ReleaseRules | None:
    """Read the rules of the release at `slug` as one row, without loading a Release object."""
    row = session.execute(select(*RULE_COLUMNS).where(Release.slug == slug)).one_or_none()
    return ReleaseRules(*row) if row is not None else None


class ReserveCache:
    """One process's cached release rules (by slug) and sold-out answers (by release id), each with a deadline."""

    def __init__(self, rules_seconds: float, sold_out_seconds: float) -> None:
        self.rules_for = timedelta(seconds=rules_seconds)
        self.sold_out_for = timedelta(seconds=sold_out_seconds)
        self.rules: dict[str, tuple[datetime, ReleaseRules]] = {}
        self.sold_out_until: dict[int, datetime] = {}
        # gthread workers share this object between threads; a dict read or write is atomic, the pair is not.
        self.lock = threading.Lock()

    def release_rules(self, session: Session | scoped_session, slug: str, now: datetime) -> ReleaseRules | None:
        """The rules of the release at `slug`, from the cache while fresh, else from one query."""
        if self.rules_for:
            with self.lock:
                cached = self.rules.get(slug)
            if cached is not None and now < cached[0]:
                return cached[1]
        rules = read_release_rules(session, slug)
        # Only found releases are kept: the cache stays as small as the catalogue, whatever addresses are asked.
        if rules is not None and self.rules_for:
            with self.lock:
                self.rules[slug] = (now + self.rules_for, rules)
        return rules

    def is_sold_out(self, session: Session | scoped_session, release_id: int, now: datetime) -> bool:
        """Whether no claim could find a unit now: a recent sold-out answer, else one read (kept when it says so)."""
        if self.sold_out_for:
            with self.lock:
                until = self.sold_out_until.get(release_id)
            if until is not None and now < until:
                return True
        if has_claimable_units(session, release_id, now):
            return False
        self.remember_sold_out(release_id, now)
        return True

    def remember_sold_out(self, release_id: int, now: datetime) -> None:
        """Keep the answer that nothing is left, as a claim that found nothing learned it."""
        if self.sold_out_for:
            with self.lock:
                self.sold_out_until[release_id] = now + self.sold_out_for

    def forget(self, slug: str | None = None, release_id: int | None = None) -> None:
        """Drop what this process knows of a release (the producer changed it here)."""
        with self.lock:
            if slug is not None:
                self.rules.pop(slug, None)
            if release_id is not None:
                self.sold_out_until.pop(release_id, None)
                for key in [key for key, (_, rules) in self.rules.items() if rules.id == release_id]:
                    del self.rules[key]


def reserve_cache() -> ReserveCache:
    """The running app's cache, made on first use with the app's settings."""
    cache = current_app.extensions.get(EXTENSION_KEY)
    if cache is None:
        cache = current_app.extensions.setdefault(
            EXTENSION_KEY,
            ReserveCache(
                current_app.config["RELEASE_RULES_CACHE_SECONDS"], current_app.config["SOLD_OUT_CACHE_SECONDS"]
            ),
        )
    return cache
