"""A person in Chromium: home page, a release, its batch story, the live count."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.factories import make_batch, make_release

pytestmark = pytest.mark.browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
STORY = "## Four winters in oak\n\nThe rye came from *one field* by the river.\n\n<script>window.pwned = 1</script>"


def test_follow_a_release_to_its_batch_story(app, session, clock, live_server, page: Page):
    clock.set(ON_SALE + timedelta(hours=1))
    batch = make_batch(session, story=STORY)
    release = make_release(session, batch=batch, units=24, on_sale_at=ON_SALE)
    session.commit()

    page.goto(live_server.url + "/")
    page.get_by_role("link", name=batch.title).first.click()

    expect(page).to_have_url(f"{live_server.url}/releases/{release.slug}")
    expect(page.locator("[data-available]").first).to_have_text("24")
    expect(page.locator("[data-total]").first).to_have_text("24")

    page.get_by_role("link", name=f"story of batch {batch.code}").first.click()
    expect(page).to_have_url(f"{live_server.url}/batches/{batch.slug}")
    expect(page.get_by_role("heading", name="Four winters in oak")).to_be_visible()
    expect(page.locator(".story em")).to_have_text("one field")
    assert page.evaluate("window.pwned") is None
    expect(page.get_by_text("24 of 24 left").first).to_be_visible()


@pytest.fixture
def app_overrides():
    return {"STOCK_REFRESH_SECONDS": 1}


def test_release_page_refreshes_its_count_from_the_api(app, session, clock, live_server, page: Page):
    import sqlalchemy as sa

    from storefront.models import Unit

    clock.set(ON_SALE + timedelta(hours=1))
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    page.goto(f"{live_server.url}/releases/{release.slug}")
    expect(page.locator("[data-available]").first).to_have_text("10")

    session.execute(sa.update(Unit).where(Unit.release_id == release.id, Unit.number <= 3).values(status="withheld"))
    session.commit()

    expect(page.locator("[data-available]").first).to_have_text("7", timeout=10_000)
