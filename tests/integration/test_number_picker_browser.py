"""Picking a number in Chromium, at desktop and phone sizes: from the grid of a small run with the keyboard or a tap,
checked before the form goes (a number taken meanwhile is answered on the page), to the simulator's payment page
naming that number; and a long run's number box answering for a taken number.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.factories import make_release
from tests.integration.helpers import claim_committed

pytestmark = pytest.mark.browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
BUYER = "ann@example.com"
axe = Axe()


def assert_axe_clean(page: Page) -> None:
    """No serious or critical axe findings on the page as it is now."""
    blocking = [
        (violation["id"], [node["html"][:120] for node in violation["nodes"][:3]])
        for violation in axe.run(page).response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert not blocking, blocking


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


@pytest.fixture
def app_overrides() -> dict:
    return {"STOCK_REFRESH_SECONDS": 1}  # the page polls its count, and the grid follows it


def test_a_buyer_picks_a_number_from_the_grid_and_pays_for_that_one(
    session, clock, live_server, stripe_sim, screen, screen_page: Page
):
    page = screen_page
    release = make_release(session, units=24, on_sale_at=ON_SALE)
    claim_committed(session, release.id, 1, "bob@example.com", clock(), number=3)
    page.goto(f"{live_server.url}/releases/{release.slug}")

    grid = page.get_by_role("group", name="Pick your number")
    expect(grid.get_by_role("radio", name="Any free number")).to_be_checked()
    expect(grid.get_by_role("radio", name="3 (taken)")).to_be_disabled()
    claim_committed(session, release.id, 1, "dan@example.com", clock(), number=9)
    expect(grid.get_by_role("radio", name="9 (taken)")).to_be_disabled()  # refreshed with the stock count
    if screen == "desktop":
        # Native radios: the arrow keys walk the free numbers and step over the taken ones (1, 2, 4, 5, 6, 7).
        grid.get_by_role("radio", name="Any free number").focus()
        for _ in range(6):
            page.keyboard.press("ArrowRight")
    else:
        page.locator("label[for=number-7]").tap()
    expect(grid.get_by_role("radio", name="7", exact=True)).to_be_checked()

    # Someone else takes No. 7 while the buyer types: the check before sending answers it on the page.
    claim_committed(session, release.id, 1, "cy@example.com", clock(), number=7)
    page.get_by_label("Email").fill(BUYER)
    page.get_by_role("button", name="Reserve").click()
    expect(page.get_by_text("No. 7 is taken — No. 8 is free:")).to_be_visible()
    expect(grid.get_by_role("radio", name="7 (taken)")).to_be_disabled()
    page.get_by_role("button", name="choose it").click()
    expect(grid.get_by_role("radio", name="8", exact=True)).to_be_checked()
    assert_axe_clean(page)

    page.get_by_role("button", name="Reserve").click()
    expect(page.get_by_text("Test payment — simulator")).to_be_visible()
    expect(page.get_by_role("cell", name="No. 8 of 24")).to_be_visible()


def test_the_number_box_of_a_long_run_answers_for_a_taken_number(session, clock, live_server, screen_page: Page):
    page = screen_page
    release = make_release(session, units=1000, on_sale_at=ON_SALE)
    for number in (512, 513, 514):
        claim_committed(session, release.id, 1, f"buyer{number}@example.com", clock(), number=number)
    page.goto(f"{live_server.url}/releases/{release.slug}")
    expect(page.get_by_text("Free now: No. 1–511, 515–1,000.")).to_be_visible()

    page.get_by_label("Pick your number").fill("512")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("No. 512 is taken — No. 515 is free:")).to_be_visible()
    page.get_by_role("button", name="choose it").click()
    expect(page.get_by_label("Pick your number")).to_have_value("515")
    expect(page.get_by_text("No. 515 is chosen.")).to_be_visible()
    assert_axe_clean(page)

    page.get_by_label("Pick your number").fill("20")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("No. 20 is free.")).to_be_visible()
