"""Orders through to the door, in Chromium: two buyers pay on the Stripe simulator; the producer packs and ships the
first order with tracking (the buyer's mail, over real SMTP, names the number and the tracking link), refunds one unit
of the second order through the simulator and returns it to sale, and that number can then be reserved again from the
public release page. The auditor finds nothing wrong at the end.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.domain.audit import audit
from storefront.models import Order, Refund, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.smtp import SmtpServer

pytestmark = pytest.mark.browser

PRODUCER = "ann@distillery.ie"
PASSWORD = "correct horse battery"
FIRST_BUYER = "aoife@example.com"
SECOND_BUYER = "eoin@example.com"
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
UNITS = 12


@pytest.fixture
def app_overrides(smtp_server: SmtpServer, shop_port: int) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": f"http://127.0.0.1:{shop_port}"}


@pytest.fixture
def live_server(paying_live_server):
    return paying_live_server


def buy(browser: Browser, base: str, slug: str, email: str, quantity: int) -> str:
    """Reserve `quantity` and pay on the simulator; return the success page's heading."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/releases/{slug}")
    page.get_by_label("How many").fill(str(quantity))
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Reserve").click()
    expect(page.get_by_text("Test payment — simulator")).to_be_visible()
    page.get_by_label("Full name").fill("Aoife Byrne" if email == FIRST_BUYER else "Eoin Walsh")
    page.get_by_label("Address", exact=True).fill("12 Quay Street")
    page.get_by_label("City").fill("Galway")
    page.get_by_label("Postal code").fill("H91 E2K3")
    page.get_by_role("button", name="Pay", exact=True).click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("yours")
    text = heading.inner_text()
    context.close()
    return text


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(PRODUCER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/producer/")


def open_order(page: Page, base: str, search: str) -> None:
    page.goto(base + "/producer/orders")
    page.get_by_label("Email, name, reference or number").fill(search)
    page.get_by_role("button", name="Show orders").click()
    page.locator("tbody tr").first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Order")


def test_a_producer_ships_one_order_and_refunds_a_unit_of_another_back_to_sale(
    app, session, clock, live_server, smtp_server, stripe_sim, browser: Browser
):
    clock.set(ON_SALE + timedelta(minutes=1))
    with write_transaction(session):
        create_producer(session, PRODUCER, PASSWORD, clock())
    release = make_release(session, units=UNITS, on_sale_at=ON_SALE, limit=3, allow_number_choice=True)
    slug = release.slug
    session.commit()
    base = live_server.url

    assert buy(browser, base, slug, FIRST_BUYER, 1) == f"No. 1 of {UNITS} is yours"
    assert "No. 2" in buy(browser, base, slug, SECOND_BUYER, 2)
    assert len(smtp_server.mails_to(FIRST_BUYER, 1)) == 1
    assert len(smtp_server.mails_to(SECOND_BUYER, 1)) == 1

    producer = browser.new_context().new_page()
    sign_in(producer, base)

    # The first order: packed, then shipped with An Post and a tracking number.
    open_order(producer, base, FIRST_BUYER)
    producer.get_by_role("button", name="Mark packed").click()
    expect(producer.get_by_text("Marked packed.")).to_be_visible()
    producer.get_by_label("Carrier", exact=True).select_option(label="An Post")
    producer.get_by_label("Tracking number", exact=True).fill("CE123456789IE")
    producer.get_by_role("button", name="Mark shipped and tell the buyer").click()
    expect(producer.get_by_text("Marked shipped; the buyer is told it is on its way.")).to_be_visible()
    expect(producer.locator("[data-tracking-number]")).to_have_text("CE123456789IE")

    shipped_mail = smtp_server.mails_to(FIRST_BUYER, 2)[1]
    body = shipped_mail.text
    assert f"No. 1 of {UNITS}" in shipped_mail.message["Subject"] + body
    assert "CE123456789IE" in body
    assert "https://www.anpost.com/Post-Parcels/Track/History?item=CE123456789IE" in body

    # The second order: No. 3 refunded through the simulator and returned to sale; No. 2 stays sold.
    open_order(producer, base, SECOND_BUYER)
    producer.get_by_role("link", name=re.compile("Refund")).first.click()
    producer.get_by_label("Refund No. 3").check()
    producer.get_by_label("Return No. 3 to sale").check()
    producer.get_by_label("Reason").select_option(label="Buyer cancelled")
    expect(producer.locator("[data-refund-amount]")).to_have_text("€89.00")
    producer.get_by_role("button", name="Refund through Stripe").click()
    expect(producer.locator(".flashes")).to_contain_text("€89.00")
    expect(producer.get_by_role("heading", level=1)).to_contain_text("Order")

    session.commit()
    second = session.scalar(select(Order).where(Order.email == SECOND_BUYER))
    (refund,) = session.scalars(select(Refund).where(Refund.order_id == second.id)).all()
    assert (refund.status, refund.amount) == ("succeeded", 8900)
    assert [unit.number for unit in second.units] == [2]
    assert second.status == "paid"
    assert session.scalar(select(Unit.status).where(Unit.release_id == release.id, Unit.number == 3)) == "available"
    session.commit()

    # No. 3 can be picked again from the public page.
    visitor = browser.new_context().new_page()
    visitor.goto(f"{base}/releases/{slug}")
    visitor.get_by_label("How many").fill("1")
    visitor.locator("label[for=number-3]").click()  # the run is small: its numbers are a grid
    visitor.get_by_label("Email").fill("grace@example.org")
    visitor.get_by_role("button", name="Reserve").click()
    expect(visitor.get_by_text("Test payment — simulator")).to_be_visible()
    visitor.context.close()
    session.commit()
    assert session.scalar(select(Unit.status).where(Unit.release_id == release.id, Unit.number == 3)) == "held"

    producer.context.close()
    assert stripe_sim.wait_for_deliveries(timeout=10)
    session.commit()
    assert audit(session, clock()) == []
