"""Small builders for test data: a product, a batch, a release with its numbered units."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session

from storefront.database import WRITE_TRANSACTION_ACTIVE
from storefront.domain.activity import SHOP
from storefront.domain.releases import ReleaseTerms, open_release
from storefront.models import Batch, BatchFact, Product, Release
from storefront.unit_of_work import plain_session, write_transaction

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
    withheld: Iterable[int] = (),
    currency: str = "EUR",
) -> Release:
    """Open a release of `units` numbered units through the domain (`open_release`), as the producer would.

    Inside a test's own write_transaction it joins it; otherwise it commits one of its own (on SQLite a
    write needs a transaction that began as one), together with whatever the test had pending.
    """
    n = next(sequence)
    terms = ReleaseTerms(
        title=f"Cask strength, run {n}",
        slug=slug or f"release-{n}",
        price_amount=price,
        currency=currency,
        total_units=units,
        on_sale_at=on_sale_at,
        off_sale_at=off_sale_at,
        per_customer_limit=limit,
        allow_number_choice=allow_number_choice,
    )

    def open_it() -> Release:
        batch_id = (batch or make_batch(session)).id
        # The factories record releases that opened in the past; `now` only stamps the activity line.
        return open_release(session, batch_id, terms, on_sale_at, SHOP, withheld=withheld, allow_past_on_sale=True)

    if plain_session(session).info.get(WRITE_TRANSACTION_ACTIVE):
        return open_it()
    # What the test changed by hand so far (a batch's code, say) is flushed and committed with the release.
    session.flush()
    with write_transaction(session):
        return open_it()
