"""How many units of each release are available, held, sold: counted from the unit rows themselves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storefront.models import Release, ReleaseStatus, Unit, UnitStatus


@dataclass(frozen=True)
class StockCount:
    total: int
    available: int = 0
    held: int = 0
    sold: int = 0
    withheld: int = 0


def count_stock(session: Session, releases: Iterable[Release]) -> dict[int, StockCount]:
    """Count each release's units by status in one query; releases without units count as empty."""
    releases = list(releases)
    if not releases:
        return {}
    rows = session.execute(
        select(Unit.release_id, Unit.status, func.count())
        .where(Unit.release_id.in_([release.id for release in releases]))
        .group_by(Unit.release_id, Unit.status)
    ).all()
    by_release: dict[int, dict[str, int]] = {}
    for release_id, status, count in rows:
        by_release.setdefault(release_id, {})[status] = count
    counts = {}
    for release in releases:
        found = by_release.get(release.id, {})
        counts[release.id] = StockCount(
            total=release.total_units,
            available=found.get(UnitStatus.AVAILABLE, 0),
            held=found.get(UnitStatus.HELD, 0),
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
    counts = count_stock(session, releases)
    return [
        ReleaseView(release, counts[release.id], release.status_at(now, counts[release.id].available))
        for release in releases
    ]
