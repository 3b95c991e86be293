"""The shop's pages in Chromium, on a laptop and a phone: from a release page's footer a buyer opens each page the
producer wrote, and from the age notice the age page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from storefront.domain import shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.shop_pages import PageDetails, SettingsDetails
from storefront.unit_of_work import write_transaction
from tests.factories import make_release

pytestmark = pytest.mark.browser


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite alone: what the browser sees of the footer does not depend on the database behind it."""
    return f"sqlite:///{tmp_path / 'shop.db'}"


PAGES = {
    "shipping": ("Shipping", "Ireland: **€6 per order**, dispatched within 2 working days."),
    "returns": ("Returns", "Unopened, within 14 days. Numbered units are refunded, not exchanged."),
    "contact": ("Contact", "We answer within one working day."),
    "terms": ("Terms of sale", "Paid means sold."),
    "privacy": ("Privacy", "Stripe processes your card; we keep your email and address."),
    "age-notice": ("Age notice", "You must be 18 or over to buy whiskey."),
}


def test_a_buyer_opens_every_written_page_from_a_release_pages_footer(session, clock, live_server, screen_page: Page):
    release = make_release(session)  # the factory's products are "spirits"
    with write_transaction(session):
        shop_pages.save_shop_settings(
            session, SHOP, SettingsDetails("orders@harrowvale.ie", "within 2 working days", "Spirits"), clock()
        )
        for kind, (title, body) in PAGES.items():
            shop_pages.save_shop_page(session, SHOP, kind, PageDetails(title, body), clock())
    release_url = f"{live_server.url}/releases/{release.slug}"
    page = screen_page

    page.goto(release_url)
    footer = page.get_by_role("navigation", name="About the shop")
    expect(footer.get_by_role("link")).to_have_text([title for title, _ in PAGES.values()])

    for kind, (title, body) in PAGES.items():
        page.goto(release_url)
        page.get_by_role("navigation", name="About the shop").get_by_role("link", name=title, exact=True).click()
        expect(page).to_have_url(f"{live_server.url}/pages/{kind}")
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        expect(page.locator(".shop-page__body")).to_contain_text(re.sub(r"\*\*", "", body))
        current = page.get_by_role("navigation", name="About the shop").get_by_role("link", name=title, exact=True)
        expect(current).to_have_attribute("aria-current", "page")
        if kind == "contact":
            expect(page.get_by_role("link", name="orders@harrowvale.ie")).to_have_attribute(
                "href", "mailto:orders@harrowvale.ie"
            )

    page.goto(release_url)
    notice = page.get_by_role("note").filter(has_text="For adults only")
    expect(notice).to_be_visible()
    notice.get_by_role("link", name="Age notice").click()
    expect(page).to_have_url(f"{live_server.url}/pages/age-notice")
