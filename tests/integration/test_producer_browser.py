"""A whole drop prepared in Chromium by a producer who never touches a shell, then bought by a customer.

Sign in → a product and a batch with a story and a photo → a release of 30 with No. 1 kept back, on sale in the
future → announced to a subscriber (who signed up and confirmed in the browser; the mail arrives over real SMTP with
its .ics) → the home page shows it coming with its countdown → at on-sale time (the test's clock) a customer reserves
and pays on the Stripe simulator → the dashboard's counts and chart show the sale.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import BytesIO

import icalendar
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.models import Announcement, Order, Release, Unit
from storefront.unit_of_work import write_transaction
from tests.integration.smtp import SmtpServer

pytestmark = pytest.mark.browser

PRODUCER = "ann@distillery.ie"
PASSWORD = "correct horse battery"
SUBSCRIBER = "niamh@example.com"
BUYER = "tomas@example.com"
# The clock starts at 09:00 UTC on 1 July 2026 (10:00 in Dublin); the release goes on sale at noon, Dublin time.
ON_SALE_LOCAL = "2026-07-01T12:00"
ON_SALE = datetime(2026, 7, 1, 11, 0, tzinfo=UTC)


@pytest.fixture
def app_overrides(smtp_server: SmtpServer, shop_port: int) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": f"http://127.0.0.1:{shop_port}"}


@pytest.fixture
def live_server(paying_live_server):
    return paying_live_server


def subscribe_and_confirm(browser: Browser, base: str, smtp_server: SmtpServer) -> None:
    """A visitor asks to hear about new batches from the home page and confirms from the mail."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/")
    page.get_by_label("Your email").fill(SUBSCRIBER)
    page.get_by_role("button", name="Tell me", exact=True).click()
    (confirmation,) = smtp_server.mails_to(SUBSCRIBER)
    link = re.search(r"https?://\S+/subscribe/confirm/\S+", confirmation.text).group(0)
    page.goto(link)
    page.get_by_role("button", name="Yes, tell me about new batches").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are on the list")
    context.close()


def build_catalogue(page: Page, base: str, photo_path) -> None:
    """Sign in, then a product, a batch with a fact and a story, and a photo."""
    page.goto(base + "/producer/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Email").fill(PRODUCER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/producer/")

    page.get_by_role("link", name="Products & batches").first.click()
    page.get_by_role("link", name=re.compile("New product")).first.click()
    page.get_by_label("Name").fill("Harrow & Vale Rye")
    page.get_by_label("Category").fill("Whiskey")
    page.get_by_role("button", name="Create product").click()
    expect(page.get_by_role("heading", name="Harrow & Vale Rye")).to_be_visible()

    page.get_by_role("link", name="New batch of Harrow & Vale Rye").click()
    page.get_by_label("Batch code").fill("B-2026-08")
    page.get_by_label("Title").fill("Batch 8: The Long Winter")
    page.get_by_label("Produced on").fill("2026-06-20")
    fact = page.locator("[data-fact-row]").first
    fact.locator("input").nth(0).fill("Cask")
    fact.locator("input").nth(1).fill("Ex-bourbon, first fill")
    page.get_by_label("Story").fill("## The field\n\nRye from *one* field in Carlow.")
    expect(page.locator("[data-preview-output]").locator("em")).to_have_text("one")
    page.get_by_role("button", name="Save batch").click()
    expect(page.get_by_text("Batch B-2026-08 created.")).to_be_visible()

    page.get_by_label("Photo", exact=True).set_input_files(str(photo_path))
    page.get_by_label("Description for people who cannot see it (alt text)").fill("Casks in the warehouse")
    page.get_by_role("button", name="Upload photo").click()
    expect(page.get_by_text("Photo added.")).to_be_visible()


def open_release(page: Page) -> None:
    """Open a release of 30, No. 1 kept back, on sale at noon Dublin time."""
    page.get_by_role("link", name="Open a release of this batch").click()
    page.get_by_label("Title", exact=True).fill("Batch 8, 70 cl")
    page.get_by_label("Price").fill("89.00")
    page.get_by_label("Number of units").fill("30")
    page.get_by_label("On sale from").fill(ON_SALE_LOCAL)
    page.get_by_label("Limit per customer").fill("2")
    page.get_by_label("Numbers kept back (optional)").fill("1")
    page.get_by_role("button", name="Open the release").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Batch 8, 70 cl")
    expect(page.locator("[data-withheld]").first).to_have_text("1")
    expect(page.locator("[data-available]").first).to_have_text("29")


def announce(page: Page) -> None:
    """Preview the announcement in two tabs and send it from both: one mail goes out."""
    page.get_by_role("link", name="Announce", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Announce Batch 8"))).to_be_visible()
    second_tab = page.context.new_page()
    second_tab.goto(page.url)
    page.get_by_role("button", name="Send to 1 subscriber").click()
    expect(page.get_by_text("The announcement is on its way to 1 subscriber.")).to_be_visible()
    second_tab.get_by_role("button", name="Send to 1 subscriber").click()
    expect(second_tab.get_by_text(re.compile("Already sent", re.IGNORECASE)).first).to_be_visible()
    second_tab.close()


def reserve_and_pay(browser: Browser, base: str, slug: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/releases/{slug}")
    page.get_by_label("How many").fill("1")
    page.get_by_label("Email").fill(BUYER)
    page.get_by_role("button", name="Reserve").click()
    expect(page.get_by_role("heading", name="Pay €89.00")).to_be_visible()
    page.get_by_label("Full name").fill("Tomás Ó Briain")
    page.get_by_label("Address", exact=True).fill("2 Main St")
    page.get_by_label("City").fill("Galway")
    page.get_by_label("Postal code").fill("H91 X2Y3")
    page.get_by_role("button", name="Pay", exact=True).click()
    # No. 1 is kept by the maker: the first buyer gets No. 2.
    expect(page.get_by_role("heading", name="No. 2 of 30 is yours")).to_be_visible()
    context.close()


def test_a_producer_prepares_announces_and_watches_a_drop_sell(
    app, session, clock, live_server, smtp_server, stripe_sim, browser: Browser, tmp_path
):
    with write_transaction(session):
        create_producer(session, PRODUCER, PASSWORD, clock())
    base = live_server.url
    photo = tmp_path / "casks.jpg"
    buffer = BytesIO()
    Image.new("RGB", (2000, 1400), (120, 70, 30)).save(buffer, "JPEG", quality=85)
    photo.write_bytes(buffer.getvalue())

    subscribe_and_confirm(browser, base, smtp_server)

    producer = browser.new_context().new_page()
    build_catalogue(producer, base, photo)
    open_release(producer)
    release = session.scalar(select(Release).where(Release.title == "Batch 8, 70 cl"))
    assert release.on_sale_at == ON_SALE and release.total_units == 30 and release.price_amount == 8900
    session.commit()

    announce(producer)
    (announcement_mail,) = smtp_server.mails_to(SUBSCRIBER, count=2)[1:]
    body = announcement_mail.text
    assert "Batch 8, 70 cl" in body and "€89.00" in body and "2026-07-01T11:00:00Z" in body
    assert f"/releases/{release.slug}" in body and "/batches/" in body
    assert announcement_mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (attachment,) = list(announcement_mail.message.iter_attachments())
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == ON_SALE
    session.commit()
    assert session.scalar(select(Announcement.recipient_count)) == 1
    assert len(smtp_server.mails_to(SUBSCRIBER, count=3, timeout=1)) == 2

    # The public side: coming soon on the home page, a countdown and a calendar link on the release page.
    visitor = browser.new_context().new_page()
    visitor.goto(base + "/")
    card = visitor.locator("article.card", has_text="Batch 8, 70 cl")
    expect(card.locator("[data-status]")).to_have_text("Coming soon")
    card.get_by_role("link").first.click()
    expect(visitor.locator("[data-countdown]")).to_be_visible()
    expect(visitor.get_by_role("link", name=re.compile("Add to calendar"))).to_be_visible()
    expect(visitor.get_by_text(re.compile("No. 1 is kept by the maker"))).to_be_visible()
    visitor.context.close()

    # Noon in Dublin: a customer buys one.
    clock.set(ON_SALE + timedelta(minutes=2))
    reserve_and_pay(browser, base, release.slug)
    assert stripe_sim.wait_for_deliveries(timeout=10)
    session.commit()
    order = session.scalar(select(Order))
    assert order.email == BUYER and [unit.number for unit in order.units] == [2]
    assert session.scalar(select(Unit.status).where(Unit.release_id == release.id, Unit.number == 1)) == "withheld"

    # The producer's dashboard: the counts and the chart of units sold.
    clock.set(ON_SALE + timedelta(minutes=5))
    producer.goto(base + "/producer/")
    row = producer.locator(f"[data-release-row='{release.id}']")
    expect(row.locator("[data-sold]")).to_have_text("1")
    expect(row.locator("[data-withheld]")).to_have_text("1")
    expect(row.locator("[data-available]")).to_have_text("28")
    chart = producer.locator(f"#sales-chart-{release.id} svg")
    expect(chart).to_be_visible()
    expect(producer.locator(f"#sales-chart-{release.id}")).to_contain_text("1 of 29 units sold")
    producer.context.close()
