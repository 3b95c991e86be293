"""Fixtures for the integration tests."""

from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer
from tests.integration.helpers import free_port
from tests.integration.smtp import SmtpServer
from tests.payments import sim_post


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


# The two screens the buyer's side is tried at: a laptop, and a phone (390 × 844 CSS pixels, touch).
SCREENS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture(params=list(SCREENS))
def screen(request: pytest.FixtureRequest) -> str:
    """The screen a two-size browser test runs at: "desktop" or "phone"."""
    return request.param


@pytest.fixture
def screen_page(browser, screen: str):
    """A page in a fresh browser context the size of `screen`; use instead of `page` to test at both sizes."""
    context = browser.new_context(**SCREENS[screen])
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shop_port() -> int:
    """The port the live shop listens on: a module names it in SHOP_URL (app_overrides) before the app is made."""
    return free_port()


@pytest.fixture
def paying_live_server(app, shop_port: int, stripe_sim) -> Iterator[LiveServer]:
    """The shop at SHOP_URL's port with the simulator's signed webhooks delivered to it; at the end, none is left
    undelivered (a test that ends mid-payment would otherwise leak into the next)."""
    server = LiveServer(app, port=shop_port).start()
    sim_post(stripe_sim, "/_sim/webhooks", {"url": f"{server.url}/stripe/webhook", "hold": False})
    yield server
    assert stripe_sim.wait_for_deliveries(timeout=10), "the simulator still had webhooks to deliver"
    server.stop()
