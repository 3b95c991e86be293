"""Small builders for test data: a product, a batch, a release with its numbered units."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from storefront.models import Batch, BatchFact, Product, Release, Unit

sequence = itertools.count(1)


def make_batch(session: Session, *, story: str = "A **good** story.", slug: str | None = None) -> Batch:
    n = next(sequence)
    product = Product(slug=f"product-{n}", name=f"Rye Whiskey {n}", category="spirits")
    batch = Batch(
        product=product,
        code=f"B-2026-{n:02d}",
        slug=slug or f"batch-{n}",
        title=f"Rye batch {n}",
        produced_on=date(2026, 3, 14),
        summary="Four years in ex-bourbon casks.",
        story_markdown=story,
        facts=[BatchFact(position=0, label="Cask", value="Ex-bourbon, first fill")],
    )
    session.add(batch)
    session.flush()
    return batch


def make_release(
    session: Session,
    *,
    units: int = 10,
    on_sale_at: datetime = datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
    off_sale_at: datetime | None = None,
    price: int = 8900,
    limit: int = 3,
    batch: Batch | None = None,
    slug: str | None = None,
    allow_number_choice: bool = True,
) -> Release:
    """Create a release with `units` available units numbered 1..units."""
    batch = batch or make_batch(session)
    n = next(sequence)
    release = Release(
        batch=batch,
        slug=slug or f"release-{n}",
        title=f"Cask strength, run {n}",
        price_amount=price,
        currency="EUR",
        total_units=units,
        on_sale_at=on_sale_at,
        off_sale_at=off_sale_at,
        per_customer_limit=limit,
        allow_number_choice=allow_number_choice,
    )
    session.add(release)
    session.flush()
    session.execute(
        insert(Unit),
        [{"release_id": release.id, "number": i, "status": "available"} for i in range(1, units + 1)],
    )
    session.flush()
    return release
