"""The waitlist in Chromium: a visitor joins a sold-out run's waitlist and confirms from the mail (over real SMTP);
the producer refunds a unit through the simulator and returns it to sale; the offer mail arrives; the visitor
claims the number, pays on the simulator, and the success page names it. The auditor finds nothing wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.domain.audit import audit
from storefront.models import WaitlistOffer
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.smtp import SmtpServer
from tests.integration.test_orders_browser import buy, open_order, sign_in

pytestmark = pytest.mark.browser

PRODUCER = "ann@distillery.ie"
PASSWORD = "correct horse battery"
BUYER = "aoife@example.com"
VISITOR = "niamh@example.com"
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
UNITS = 2


@pytest.fixture
def app_overrides(smtp_server: SmtpServer, shop_port: int) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": f"http://127.0.0.1:{shop_port}"}


@pytest.fixture
def live_server(paying_live_server):
    return paying_live_server


def link_in(text: str, path: str) -> str:
    match = re.search(rf"https?://\S+{re.escape(path)}\S+", text)
    assert match, f"no {path} link in:\n{text}"
    return match.group(0)


def test_a_freed_number_goes_to_the_waiter_who_claims_and_pays_for_it(
    app,
    session,
    clock,
    live_server,
    smtp_server,
    stripe_sim,
    browser: Browser,
):
    clock.set(ON_SALE + timedelta(minutes=1))
    with write_transaction(session):
        create_producer(session, PRODUCER, PASSWORD, clock())
    release = make_release(session, units=UNITS, on_sale_at=ON_SALE, limit=2)
    slug = release.slug
    session.commit()
    base = live_server.url

    assert "No. 1" in buy(browser, base, slug, BUYER, 2)  # the whole run: sold out

    # A visitor joins the sold-out run's waitlist and confirms from the mail.
    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/releases/{slug}")
    expect(visitor.get_by_role("heading", name="Join the waitlist")).to_be_visible()
    visitor.get_by_label("Your email").fill(VISITOR)
    visitor.get_by_label("Your name").fill("Niamh")
    visitor.get_by_role("button", name="Join the waitlist").click()
    expect(visitor.get_by_role("heading", name="Check your inbox")).to_be_visible()

    (confirmation,) = smtp_server.mails_to(VISITOR, 1)
    assert confirmation.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    visitor.goto(link_in(confirmation.text, "/waitlist/confirm/"))
    visitor.get_by_role("button", name="Yes, keep my place").click()
    expect(visitor.get_by_role("heading", name="You are 1st in line")).to_be_visible()

    # The producer refunds No. 2 through the simulator and returns it to sale.
    producer = browser.new_context().new_page()
    sign_in(producer, base)
    open_order(producer, base, BUYER)
    producer.get_by_role("link", name=re.compile("Refund")).first.click()
    producer.get_by_label("Refund No. 2").check()
    producer.get_by_label("Return No. 2 to sale").check()
    producer.get_by_label("Reason").select_option(label="Buyer cancelled")
    producer.get_by_role("button", name="Refund through Stripe").click()
    expect(producer.locator(".flashes")).to_contain_text("€89.00")
    producer.context.close()

    # The number went to the waitlist, not back on public sale: the offer mail names it.
    offer_mail = smtp_server.mails_to(VISITOR, 2)[1]
    assert "No. 2 of" in offer_mail.message["Subject"]
    visitor.goto(f"{base}/releases/{slug}")
    expect(visitor.get_by_role("heading", name="Join the waitlist")).to_be_visible()  # still sold out to the public
    visitor.goto(link_in(offer_mail.text, "/waitlist/offers/"))
    expect(visitor.get_by_role("heading", level=1)).to_have_text(f"No. 2 of {UNITS} is yours to claim")
    visitor.get_by_role("button", name="Claim No. 2 and pay").click()
    expect(visitor.get_by_text("Test payment — simulator")).to_be_visible()
    visitor.get_by_label("Full name").fill("Niamh Kelly")
    visitor.get_by_label("Address", exact=True).fill("27 South Mall")
    visitor.get_by_label("City").fill("Cork")
    visitor.get_by_label("Postal code").fill("T12 HX76")
    visitor.get_by_role("button", name="Pay", exact=True).click()
    expect(visitor.get_by_role("heading", level=1)).to_have_text(f"No. 2 of {UNITS} is yours")
    visitor.context.close()

    assert stripe_sim.wait_for_deliveries(timeout=10)
    session.commit()
    offer = session.scalar(select(WaitlistOffer).where(WaitlistOffer.release_id == release.id))
    assert (offer.number, offer.status) == (2, "purchased")
    assert audit(session, clock()) == []
