"""Each public page asks the database a fixed number of times, however many releases the shop has: no page loads
a release's batch, photos or counts one release at a time (N+1). On SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from storefront.domain import shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.shop_pages import PageDetails
from storefront.extensions import db
from storefront.models import BatchImage
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.web.waitlist.test_offers import browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
# What each page asks today (its rows, the stock counts, the footer's pages, the shop's settings): a change that adds
# a query shows here, and one that removes some lowers the number.
CEILING = {"home": 6, "release": 8, "story": 9, "feed": 4, "written page": 2, "stock API": 3}
# Transaction control (SQLite's explicit BEGIN) is not a question asked of the data.
NOT_QUERIES = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "PRAGMA")


@pytest.fixture
def client(app):
    return browser(app)


@contextmanager
def counted(app):
    """Count the SQL statements the app sends while the block runs."""
    sent: list[str] = []

    def record(_connection, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith(NOT_QUERIES):
            sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def add_releases(session, story_batch, count: int) -> None:
    """Half the releases in the story's batch, half each in a batch of its own with a photo; on sale, upcoming
    and closed ones mixed, so every card and status is drawn."""
    for n in range(count):
        batch = story_batch if n % 2 == 0 else make_batch(session)
        if not batch.images:
            batch.images.append(BatchImage(position=0, path=f"demo/{batch.slug}.jpg", alt_text="A cask"))
        opens = ON_SALE + timedelta(days=(n % 3) - 1)  # yesterday, today, tomorrow
        make_release(session, batch=batch, units=12, on_sale_at=opens, off_sale_at=opens + timedelta(days=2))
    session.commit()


def page_queries(app, client, story_slug: str, release_slug: str) -> dict[str, int]:
    pages = {
        "home": "/",
        "release": f"/releases/{release_slug}",
        "story": f"/batches/{story_slug}",
        "feed": "/feed.atom",
        "written page": "/pages/shipping",
        "stock API": f"/api/releases/{release_slug}",
    }
    counts = {}
    for name, path in pages.items():
        # The test's session shares the request's (one app context): start from an empty one, as a request does,
        # so nothing the test loaded hides a query.
        db.session.remove()
        with counted(app) as sent:
            response = client.get(path)
        assert response.status_code == 200, path
        counts[name] = len(sent)
    return counts


def test_every_public_page_asks_as_often_for_two_releases_as_for_twelve(app, session, clock, client):
    clock.set(ON_SALE + timedelta(hours=1))
    with write_transaction(session):
        shop_pages.save_shop_page(session, SHOP, "shipping", PageDetails("", "Ireland: €6 per order."), clock())
    story_batch = make_batch(session, slug="the-story")
    add_releases(session, story_batch, 2)
    slug = story_batch.releases[0].slug

    with_two = page_queries(app, client, "the-story", slug)
    add_releases(session, db.session.merge(story_batch), 10)
    with_twelve = page_queries(app, client, "the-story", slug)

    assert with_twelve == with_two
    for name, count in with_twelve.items():
        assert count <= CEILING[name], f"the {name} asks the database {count} times"
