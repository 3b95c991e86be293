"""A buyer in Chromium, on a laptop and on a phone, never loses their hold: they leave the payment page and come back
to it through the banner, return from it to the hold's page and cancel there, and the "limit reached" page leads them
to the hold that uses their limit.

The shop runs in a live server thread and pays through the Stripe simulator; the shop's clock is frozen a minute after
the release opened (10:01 UTC, 11:01 in the shop's Dublin), so its holds run until 11:11 IST.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from sqlalchemy import select

from storefront.models import Hold
from tests.conftest import LiveServer
from tests.factories import make_release

pytestmark = pytest.mark.browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
BUYER = "ann@example.com"


@pytest.fixture
def app_overrides(shop_port: int) -> dict:
    return {"SHOP_URL": f"http://127.0.0.1:{shop_port}"}


@pytest.fixture
def live_server(app, shop_port: int):
    server = LiveServer(app, port=shop_port).start()
    yield server
    server.stop()


@pytest.fixture
def release_slug(app, session, clock, live_server) -> str:
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=24, on_sale_at=ON_SALE, limit=2)
    session.commit()
    return release.slug


def reserve(page: Page, live_server: LiveServer, slug: str, quantity: int) -> None:
    page.goto(f"{live_server.url}/releases/{slug}")
    page.get_by_label("How many").fill(str(quantity))
    page.get_by_label("Email").fill(BUYER)
    page.get_by_role("button", name="Reserve").first.click()


def serious_accessibility_problems(page: Page) -> list[str]:
    """axe's serious and critical findings on the page as it is now."""
    violations = Axe().run(page).response["violations"]
    return [f"{found['id']}: {found['help']}" for found in violations if found["impact"] in {"serious", "critical"}]


def the_hold(session) -> Hold:
    session.commit()  # a fresh look at what the live server wrote
    (hold,) = session.scalars(select(Hold)).all()
    return hold


def test_a_buyer_leaves_the_payment_page_comes_back_through_the_banner_and_cancels(
    session, live_server, release_slug, stripe_sim, screen_page: Page
):
    page = screen_page
    reserve(page, live_server, release_slug, 2)

    # The simulator's page: the shop's name, its deadline beside the Pay button, and the way back.
    expect(page.get_by_role("heading", name="Pay €178.00")).to_be_visible()
    expect(page.locator(".merchant__name")).to_have_text("Small Batch")
    expect(page.locator(".submit-message")).to_contain_text("No. 1–2 of 24 are held for you until 11:11 IST")
    payment_url = page.url
    hold = the_hold(session)
    assert payment_url == hold.payment_url

    # Away to the shop's home page: the banner keeps the hold in reach, counting down on the shop's clock.
    page.goto(f"{live_server.url}/")
    banner = page.get_by_role("complementary", name="Your hold")
    expect(banner).to_contain_text("You hold No. 1–2")
    expect(banner.locator(".hold-banner__time")).to_have_text(re.compile(r"^(10:00|9:\d\d) left$"))
    assert serious_accessibility_problems(page) == []
    banner.get_by_role("link", name="Continue to payment").click()
    expect(page).to_have_url(payment_url)  # the same payment page, not a new one

    page.get_by_role("link", name="Back to Small Batch").click()
    expect(page).to_have_url(f"{live_server.url}/holds/{hold.token}")
    expect(page.get_by_role("heading", name="No. 1 and No. 2 of 24 are held for you")).to_be_visible()
    expect(page.get_by_role("link", name="Continue to payment")).to_have_attribute("href", payment_url)
    expect(page.get_by_role("complementary", name="Your hold")).to_have_count(0)  # not twice on its own page
    page.get_by_role("button", name="Cancel this hold").click()

    expect(page.get_by_role("heading", name="You cancelled this hold")).to_be_visible()
    expect(page.get_by_text("ran out of time")).to_have_count(0)
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("complementary", name="Your hold")).to_have_count(0)


def test_the_limit_page_leads_to_the_hold_that_uses_the_limit(
    session, live_server, release_slug, stripe_sim, screen_page: Page
):
    page = screen_page
    reserve(page, live_server, release_slug, 2)
    expect(page.get_by_role("heading", name="Pay €178.00")).to_be_visible()
    hold = the_hold(session)

    reserve(page, live_server, release_slug, 1)

    expect(page.get_by_role("heading", name="You have reached the limit")).to_be_visible()
    assert serious_accessibility_problems(page) == []
    page.get_by_role("main").get_by_role("link", name="Continue with your hold").click()
    expect(page).to_have_url(f"{live_server.url}/holds/{hold.token}")
    expect(page.get_by_role("heading", name="No. 1 and No. 2 of 24 are held for you")).to_be_visible()
