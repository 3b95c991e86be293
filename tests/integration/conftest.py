"""Fixtures for the integration tests."""

from collections.abc import Iterator

import pytest

from tests.integration.smtp import SmtpServer


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
