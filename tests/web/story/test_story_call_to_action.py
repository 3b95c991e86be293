"""The story page's call to action near the top: the release on sale, else the next upcoming, else the latest."""

import re
from datetime import UTC, datetime, timedelta

from tests.factories import make_batch, make_release

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def call_to_action(client, batch) -> str:
    """The call to action's markup, or "" when the page has none."""
    page = client.get(f"/batches/{batch.slug}").get_data(as_text=True)
    found = re.search(r'<p class="batch__cta">(.*?)</p>', page, re.DOTALL)
    return found.group(1) if found else ""


def test_the_story_leads_to_the_release_on_sale_before_any_other(app, session, client, clock):
    clock.set(NOW)
    batch = make_batch(session)
    make_release(session, batch=batch, on_sale_at=NOW - timedelta(days=30), off_sale_at=NOW - timedelta(days=20))
    on_sale = make_release(session, batch=batch, on_sale_at=NOW - timedelta(hours=2), units=12)
    make_release(session, batch=batch, on_sale_at=NOW + timedelta(days=3))
    session.commit()

    cta = call_to_action(client, batch)

    assert f'href="/releases/{on_sale.slug}#reserve"' in cta
    assert "Reserve from this batch" in cta and "€89.00" in cta and "12 of 12 left" in cta
    # It comes before the photos and the story: a reader need not scroll past them to buy.
    page = client.get(f"/batches/{batch.slug}").get_data(as_text=True)
    assert page.index('class="batch__cta"') < page.index('class="batch__body"')


def test_without_a_release_on_sale_the_story_leads_to_the_next_one(app, session, client, clock):
    clock.set(NOW)
    batch = make_batch(session)
    make_release(session, batch=batch, on_sale_at=NOW + timedelta(days=9))
    next_one = make_release(session, batch=batch, on_sale_at=NOW + timedelta(days=2))
    session.commit()

    cta = call_to_action(client, batch)

    assert f'href="/releases/{next_one.slug}"' in cta and "on sale" in cta


def test_after_the_last_run_the_story_leads_to_the_latest_release(app, session, client, clock):
    clock.set(NOW)
    batch = make_batch(session)
    make_release(session, batch=batch, on_sale_at=NOW - timedelta(days=60), off_sale_at=NOW - timedelta(days=50))
    latest = make_release(
        session, batch=batch, on_sale_at=NOW - timedelta(days=10), off_sale_at=NOW - timedelta(days=1)
    )
    quiet = make_batch(session)
    session.commit()

    cta = call_to_action(client, batch)

    assert f'href="/releases/{latest.slug}"' in cta and "See the latest release" in cta
    assert call_to_action(client, quiet) == ""
