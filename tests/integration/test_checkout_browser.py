"""A person in Chromium buys a numbered unit: release page → the simulator's hosted page → pay → their number.

The shop runs in a live server thread; the Stripe simulator delivers its signed webhooks to it, and mail goes to a
real SMTP server in this process. The shop's clock is frozen a minute after the release opened; the simulator keeps
real time, as Stripe would. The buyer opens the shop at 127.0.0.1, while its SHOP_URL names the same server as
localhost: the simulator's way back and the mail's links must use SHOP_URL, never the Host the buyer came in on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from storefront.models import Hold, Order
from tests.conftest import LiveServer
from tests.factories import make_release
from tests.integration.smtp import Delivery, SmtpServer
from tests.payments import sim_post, unit_statuses

pytestmark = pytest.mark.browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
UNITS = 24
BUYER = "ann@example.com"


@pytest.fixture
def shop_url(shop_port: int) -> str:
    """The shop's public address: the live server, named otherwise than the URL the buyer opens."""
    return f"http://localhost:{shop_port}"


@pytest.fixture
def app_overrides(smtp_server: SmtpServer, shop_url: str) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": shop_url}


@pytest.fixture
def live_server(app, shop_port: int):
    server = LiveServer(app, port=shop_port).start()
    yield server
    server.stop()


@dataclass(frozen=True)
class OnSale:
    id: int
    slug: str
    batch_slug: str


@pytest.fixture
def release(app, session, clock, live_server, stripe_sim):
    """A release on sale for a minute, with the simulator sending its webhooks to the live shop."""
    clock.set(ON_SALE + timedelta(minutes=1))
    sim_post(stripe_sim, "/_sim/webhooks", {"url": f"{live_server.url}/stripe/webhook", "hold": False})
    release = make_release(session, units=UNITS, on_sale_at=ON_SALE)
    on_sale = OnSale(release.id, release.slug, release.batch.slug)
    session.commit()
    yield on_sale
    # Nothing may reach this test's server after it stops (or the next test's server on the same port).
    assert stripe_sim.wait_for_deliveries(timeout=10), "the simulator still had webhooks to deliver"


def reserve_one(page: Page, live_server, release: OnSale) -> None:
    page.goto(f"{live_server.url}/releases/{release.slug}")
    expect(page.locator("[data-available]").first).to_have_text(str(UNITS))
    page.get_by_label("How many").fill("1")
    page.get_by_label("Email").fill(BUYER)
    page.get_by_role("button", name="Reserve").click()
    expect(page.get_by_text("Test payment — simulator")).to_be_visible()
    expect(page.get_by_role("heading", name="Pay €89.00")).to_be_visible()


def wait_for_mail(smtp_server: SmtpServer, timeout: float = 10) -> list[Delivery]:
    deadline = time.monotonic() + timeout
    while not smtp_server.received() and time.monotonic() < deadline:
        time.sleep(0.1)  # the webhook's request thread sends it; waiting on another thread, not on shop time
    return smtp_server.received()


def test_a_buyer_pays_on_the_simulator_and_gets_their_number_and_mail(
    app, session, release, live_server, shop_url, stripe_sim, smtp_server, page: Page
):
    reserve_one(page, live_server, release)

    expect(page.get_by_label("Email")).to_have_value(BUYER)
    page.get_by_label("Full name").fill("Ann Byrne")
    page.get_by_label("Address", exact=True).fill("1 Quay St")
    page.get_by_label("City").fill("Cork")
    page.get_by_label("Postal code").fill("T12 X2Y3")
    page.get_by_role("button", name="Pay", exact=True).click()

    expect(page).to_have_url(re.compile(re.escape(f"{shop_url}/checkout/success?session_id=cs_test_") + r"\w+$"))
    expect(page.get_by_role("heading", name=f"No. 1 of {UNITS} is yours")).to_be_visible()

    (delivery,) = wait_for_mail(smtp_server)
    session.commit()
    order = session.scalar(select(Order))
    assert delivery.recipients == [BUYER]
    assert delivery.message["Subject"] == f"No. 1 of {UNITS} is yours (order {order.reference})"
    assert f"No. 1 of {UNITS}" in delivery.body
    assert "Ann Byrne" in delivery.body
    assert f"{shop_url}/batches/{release.batch_slug}" in delivery.body
    assert [unit.number for unit in order.units] == [1]
    assert order.shipping_address["city"] == "Cork"
    assert unit_statuses(session, release.id) == {"sold": 1, "available": UNITS - 1}
    # The success page and the webhook both confirm the payment; the buyer still gets one mail.
    assert stripe_sim.wait_for_deliveries(timeout=10)
    assert len(smtp_server.received()) == 1


def test_a_buyer_who_cancels_on_the_simulator_gets_their_unit_back_on_sale(
    app, session, release, live_server, shop_url, stripe_sim, smtp_server, page: Page
):
    reserve_one(page, live_server, release)

    page.get_by_role("button", name="Cancel", exact=True).click()

    # Stripe's back link leads to the hold's page, which only asks: the numbers stay held until the buyer confirms.
    expect(page.get_by_role("heading", name=f"No. 1 of {UNITS} is held for you")).to_be_visible()
    session.commit()
    (hold,) = session.scalars(select(Hold)).all()
    expect(page).to_have_url(f"{shop_url}/holds/{hold.token}")
    assert (hold.status, hold.end_requested) == ("active", None)
    assert unit_statuses(session, release.id) == {"held": 1, "available": UNITS - 1}
    session.commit()

    # The expiry this cancel causes is held back until the buyer has their answer, so the cancel itself ends the
    # hold (tests/web/checkout/test_hold_endings.py covers the other order).
    sim_post(stripe_sim, "/_sim/webhooks", {"hold": True})
    page.get_by_role("button", name="Cancel this hold").click()

    expect(page).to_have_url(f"{shop_url}/holds/{hold.token}")
    expect(page.get_by_role("heading", name="You cancelled this hold")).to_be_visible()
    page.get_by_role("link", name="Back to the release").click()
    expect(page.locator("[data-available]").first).to_have_text(str(UNITS))
    # The expiry the cancel caused reaches the webhook after all; the hold stays recorded as cancelled.
    assert sim_post(stripe_sim, "/_sim/webhooks/flush")["flushed"]
    assert stripe_sim.wait_for_deliveries(timeout=10)
    session.commit()
    (hold,) = session.scalars(select(Hold)).all()
    assert (hold.status, hold.end_reason, hold.payment_status) == ("released", "cancelled", "expired")
    assert unit_statuses(session, release.id) == {"available": UNITS}
    assert session.scalar(select(Order)) is None
    assert smtp_server.received() == []
