"""How many units of each release are available, held, sold: counted from the unit rows themselves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storefront.domain.inventory import is_reclaimable
from storefront.models import Hold, Release, ReleaseStatus, Unit, UnitStatus


@dataclass(frozen=True)
class StockCount:
    total: int
    available: int = 0
    held: int = 0
    sold: int = 0
    withheld: int = 0


def count_stock(session: Session, releases: Iterable[Release], now: datetime) -> dict[int, StockCount]:
    """Count each release's units by status; units of holds that timed out count as available again.

    A timed-out hold's units are claimable by the next buyer (the claim reclaims them), so showing them as
    held would call a release sold out while a buyer could still get one.
    """
    releases = list(releases)
    if not releases:
        return {}
    release_ids = [release.id for release in releases]
    rows = session.execute(
        select(Unit.release_id, Unit.status, func.count())
        .where(Unit.release_id.in_(release_ids))
        .group_by(Unit.release_id, Unit.status)
    ).all()
    reclaimable = dict(
        session.execute(
            select(Unit.release_id, func.count())
            .join(Hold, Unit.hold_id == Hold.id)
            .where(Unit.release_id.in_(release_ids), Unit.status == UnitStatus.HELD, is_reclaimable(now))
            .group_by(Unit.release_id)
        ).all()
    )
    by_release: dict[int, dict[str, int]] = {}
    for release_id, status, count in rows:
        by_release.setdefault(release_id, {})[status] = count
    counts = {}
    for release in releases:
        found = by_release.get(release.id, {})
        timed_out = reclaimable.get(release.id, 0)
        counts[release.id] = StockCount(
            total=release.total_units,
            available=found.get(UnitStatus.AVAILABLE, 0) + timed_out,
            held=found.get(UnitStatus.HELD, 0) - timed_out,
            sold=found.get(UnitStatus.SOLD, 0),
            withheld=found.get(UnitStatus.WITHHELD, 0),
        )
    return counts


@dataclass(frozen=True)
class ReleaseView:
    """A release with its stock and status at one moment: what every page and the JSON API show."""

    release: Release
    stock: StockCount
    status: ReleaseStatus


def describe_releases(session: Session, releases: Iterable[Release], now: datetime) -> list[ReleaseView]:
    releases = list(releases)
    counts = count_stock(session, releases, now)
    return [
        ReleaseView(release, counts[release.id], release.status_at(now, counts[release.id].available))
        for release in releases
    ]
