"""Every page a buyer meets, checked by axe-core in Chromium at desktop and phone sizes; and the phone's first screen.

One live server per test: a test sets the shop up once (releases upcoming, on sale, sold out and closed, a hold,
a paid order, a producer) and then walks its pages, running axe on each and failing on any violation whose impact
is serious or critical, with every finding of every page in one readable report. Accessibility does not depend on
the database, so these run on SQLite only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from sqlalchemy import select

from storefront.audience.tokens import confirmation_token
from storefront.domain.accounts import create_producer
from storefront.models import Order, ShopPage, ShopPageKind, ShopSettings, Subscriber, WaitlistEntry
from storefront.unit_of_work import write_transaction
from storefront.waitlist.tokens import confirmation_url
from tests.factories import make_batch, make_release
from tests.integration.helpers import claim_committed, release_committed
from tests.payments import hold_with_checkout, pay

pytestmark = pytest.mark.browser

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
NOW = ON_SALE + timedelta(minutes=1)
PRODUCER = "maker@distillery.ie"
PASSWORD = "correct horse battery"
BUYER = "aoife@example.com"
PHONE_HEIGHT = 844
PHONE_WIDTH = 390
BLOCKING_IMPACTS = {"serious", "critical"}
LONG_CODE = "B-2026-SINGLE-CASK-NO-1147-REFILL-OLOROSO-SHERRY-BUTT-FINISH"
LONG_TITLE = "Kilbeggan-Triple-Distilled-Single-Estate-Heritage-Pot-Still-Rye-Whiskey-Aged-Fourteen-Years"


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite alone: what axe sees in a page does not depend on the database behind it."""
    return f"sqlite:///{tmp_path / 'shop.db'}"


@pytest.fixture
def app_overrides(shop_port: int) -> dict:
    return {"SHOP_URL": f"http://127.0.0.1:{shop_port}"}


@pytest.fixture
def live_server(paying_live_server):
    return paying_live_server


@dataclass(frozen=True)
class Shop:
    """The slugs and links of a shop set up with a release in every state."""

    base: str
    upcoming: str
    on_sale: str
    sold_out: str
    closed: str
    last_one: str
    last_one_id: int
    batch: str
    hold_token: str
    cancelled_token: str
    pending_session: str
    paid_session: str
    order_id: int
    release_id: int
    product_id: int
    batch_id: int


@pytest.fixture
def shop(app, session, clock, live_server, stripe_sim) -> Shop:
    clock.set(NOW)
    with write_transaction(session):
        create_producer(session, PRODUCER, PASSWORD, clock())
        # Every footer page written, and the spirits' age notice on: all of them are checked too.
        session.add(ShopSettings(id=1, contact_email="hello@distillery.ie", age_restricted_categories="spirits"))
        for kind in ShopPageKind:
            body = f"## {kind.value.title()}\n\nWhat the shop promises, in plain words, with [a link](/)."
            session.add(ShopPage(kind=kind.value, title=kind.value.replace("-", " ").title(), body_markdown=body))
    on_sale = make_release(session, units=24, on_sale_at=ON_SALE, allow_number_choice=True)
    upcoming = make_release(session, units=12, on_sale_at=NOW + timedelta(days=2))
    sold_out = make_release(session, units=2, on_sale_at=ON_SALE, limit=2)
    closed = make_release(session, units=6, on_sale_at=ON_SALE - timedelta(days=9), off_sale_at=NOW - timedelta(days=2))
    last_one = make_release(session, units=1, on_sale_at=ON_SALE)
    session.commit()
    claim_committed(session, sold_out.id, 2, "first@example.com", NOW)
    cancelled = claim_committed(session, on_sale.id, 1, "changed-mind@example.com", NOW)
    release_committed(session, cancelled, NOW, "cancelled")
    # The limit is 3: this buyer has it all held, so one more is refused with the limit page.
    claim_committed(session, on_sale.id, 3, "limit@example.com", NOW)
    pending = hold_with_checkout(app, on_sale.id, "pending@example.com", NOW)
    paid = hold_with_checkout(app, on_sale.id, BUYER, NOW)
    pay(stripe_sim, paid.payment_session_id, name="Aoife Byrne")
    assert stripe_sim.wait_for_deliveries(timeout=10)
    session.commit()
    order_id = session.scalar(select(Order.id).where(Order.checkout_session_id == paid.payment_session_id))
    assert order_id, "the paid checkout made no order"
    return Shop(
        base=live_server.url,
        upcoming=upcoming.slug,
        on_sale=on_sale.slug,
        sold_out=sold_out.slug,
        closed=closed.slug,
        last_one=last_one.slug,
        last_one_id=last_one.id,
        batch=on_sale.batch.slug,
        release_id=on_sale.id,
        product_id=on_sale.batch.product_id,
        batch_id=on_sale.batch_id,
        hold_token=pending.token,
        cancelled_token=cancelled.token,
        pending_session=pending.payment_session_id,
        paid_session=paid.payment_session_id,
        order_id=order_id,
    )


# --- axe ----------------------------------------------------------------------------------------------------------

axe = Axe()


def blocking_violations(page: Page) -> list[str]:
    """axe's serious and critical findings on the page as it is now, one readable line per rule and element."""
    results = axe.run(page).response
    found = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING_IMPACTS:
            continue
        found.append(f"  [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            found.append(f"      {target}\n        {node['html'][:160]}\n        {summary[:300]}")
        if len(violation["nodes"]) > 5:
            found.append(f"      ... and {len(violation['nodes']) - 5} more")
    return found


def check_pages(page: Page, visits: list[tuple[str, Callable[[Page], None]]]) -> None:
    """Open every page in turn and fail once, at the end, with axe's findings for all of them."""
    report = []
    for name, visit in visits:
        visit(page)
        found = blocking_violations(page)
        if found:
            report.append(f"{name} ({page.url}):\n" + "\n".join(found))
    assert not report, "axe found serious or critical problems:\n\n" + "\n\n".join(report)


def go(base: str, path: str, status: int = 200) -> Callable[[Page], None]:
    def visit(page: Page) -> None:
        response = page.goto(base + path)
        assert response is not None and response.status == status, f"{path} answered {response and response.status}"

    return visit


def footer_pages(app, base: str) -> list[tuple[str, Callable[[Page], None]]]:
    """The shop's written pages (shipping, returns...), once the shop has a route for them."""
    if not any(rule.rule.startswith("/pages/") for rule in app.url_map.iter_rules()):
        return []
    return [(f"footer page {kind.value}", go(base, f"/pages/{kind.value}")) for kind in ShopPageKind]


# --- The buyer's pages --------------------------------------------------------------------------------------------


def test_every_shop_page_has_no_serious_accessibility_problem(app, session, shop: Shop, screen_page: Page):
    base = shop.base

    def form_error(page: Page) -> None:
        page.goto(f"{base}/releases/{shop.on_sale}")
        page.locator("form.reserve-form").evaluate("form => form.noValidate = true")
        page.get_by_label("How many").fill("9")
        page.get_by_label("Email").fill("not an address")
        page.get_by_role("button", name="Reserve").click()
        # Focus moves to the summary of what went wrong, and its links lead to the fields.
        summary = page.locator("[data-error-summary]")
        expect(summary).to_be_focused()
        summary.get_by_role("link").last.click()
        expect(page.get_by_label("Email")).to_be_focused()

    def reserve_and_leave(page: Page) -> None:
        """Reserve, leave the payment page for the shop: from here on every page carries this browser's hold."""
        page.goto(f"{base}/releases/{shop.on_sale}")
        page.get_by_label("How many").fill("1")
        page.get_by_label("Email").fill("banner@example.com")
        page.get_by_role("button", name="Reserve").click()
        expect(page.get_by_text("Test payment — simulator")).to_be_visible()
        page.goto(f"{base}/")
        expect(page.get_by_role("complementary", name="Your hold")).to_be_visible()

    def limit_refusal(page: Page) -> None:
        page.goto(f"{base}/releases/{shop.on_sale}")
        page.get_by_label("How many").fill("1")
        page.get_by_label("Email").fill("limit@example.com")
        page.get_by_role("button", name="Reserve").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("limit")

    def too_many_reserves(page: Page) -> None:
        """The 429 page: a buyer over the per-buyer allowance (lowered for this visit) is told to wait."""
        app.config["RESERVE_LIMIT_PER_EMAIL"] = "1/hour"
        try:
            for _ in range(2):
                page.goto(f"{base}/releases/{shop.on_sale}")
                page.get_by_label("How many").fill("1")
                page.get_by_label("Email").fill("limit@example.com")  # at its limit: nothing is reserved
                page.get_by_role("button", name="Reserve").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Too many tries")
        finally:
            app.config["RESERVE_LIMIT_PER_EMAIL"] = "10/minute"

    def sold_out_refusal(page: Page) -> None:
        page.goto(f"{base}/releases/{shop.last_one}")
        claim_committed(session, shop.last_one_id, 1, "quicker@example.com", NOW)  # gone while the page was open
        page.get_by_label("Email").fill("slower@example.com")
        page.get_by_role("button", name="Reserve").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("sold|gone", re.IGNORECASE))

    def join_waitlist(page: Page) -> None:
        page.goto(f"{base}/releases/{shop.sold_out}")
        page.get_by_label("Your email").fill("niamh@example.com")
        page.get_by_role("button", name="Join the waitlist").click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    def confirm_waitlist(page: Page) -> None:
        session.commit()
        entry_id = session.scalar(select(WaitlistEntry.id).where(WaitlistEntry.email == "niamh@example.com"))
        with app.test_request_context():
            url = confirmation_url(entry_id)
        page.goto(url)

    def subscribe(page: Page) -> None:
        page.goto(f"{base}/subscribe")
        page.locator("main").get_by_label("Your email").first.fill("reader@example.com")
        page.locator("main").get_by_role("button", name="Tell me").first.click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("inbox")

    def confirm_subscription(page: Page) -> None:
        session.commit()
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == "reader@example.com"))
        with app.test_request_context():
            token = confirmation_token(subscriber_id)
        page.goto(f"{base}/subscribe/confirm/{token}")

    def sign_in_error(page: Page) -> None:
        page.goto(f"{base}/login")
        page.get_by_label("Email").fill(PRODUCER)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert").first).to_be_focused()

    check_pages(
        screen_page,
        [
            ("home", go(base, "/")),
            ("release upcoming", go(base, f"/releases/{shop.upcoming}")),
            ("release on sale, number choice on", go(base, f"/releases/{shop.on_sale}")),
            ("release sold out, waitlist form", go(base, f"/releases/{shop.sold_out}")),
            ("release closed", go(base, f"/releases/{shop.closed}")),
            ("release page with a form error", form_error),
            ("story", go(base, f"/batches/{shop.batch}")),
            ("hold active", go(base, f"/holds/{shop.hold_token}")),
            ("hold cancelled", go(base, f"/holds/{shop.cancelled_token}")),
            ("leaving the payment page", go(base, f"/checkout/cancel/{shop.hold_token}")),
            ("checkout pending", go(base, f"/checkout/success?session_id={shop.pending_session}", 202)),
            ("checkout success", go(base, f"/checkout/success?session_id={shop.paid_session}")),
            ("home with a hold", reserve_and_leave),
            ("limit refusal", limit_refusal),
            ("sold-out refusal", sold_out_refusal),
            ("too many reserves", too_many_reserves),
            ("waitlist joined", join_waitlist),
            ("waitlist confirm", confirm_waitlist),
            ("subscribe", go(base, "/subscribe")),
            ("subscribed", subscribe),
            ("subscription confirm", confirm_subscription),
            ("sign in", go(base, "/login")),
            ("sign in refused", sign_in_error),
            ("not found", go(base, "/no-such-page", 404)),
            *footer_pages(app, base),
        ],
    )


def test_the_workspace_pages_have_no_serious_accessibility_problem(shop: Shop, page: Page):
    """The producer's main pages, at desktop size (the workspace is a desk tool)."""
    base = shop.base
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(PRODUCER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/producer/")

    def invalid_product(page: Page) -> None:
        page.goto(f"{base}/producer/products/new")
        page.locator("main form").first.evaluate("form => form.noValidate = true")
        page.get_by_role("button", name=re.compile("Save|Create|Add", re.IGNORECASE)).first.click()
        expect(page.locator(".form-problem")).to_be_focused()

    check_pages(
        page,
        [
            ("dashboard", go(base, "/producer/")),
            ("products", go(base, "/producer/products")),
            ("new product", go(base, "/producer/products/new")),
            ("new product refused", invalid_product),
            ("edit product", go(base, f"/producer/products/{shop.product_id}/edit")),
            ("edit batch", go(base, f"/producer/batches/{shop.batch_id}/edit")),
            ("new batch", go(base, f"/producer/products/{shop.product_id}/batches/new")),
            ("add photo", go(base, f"/producer/batches/{shop.batch_id}/photos/new")),
            ("new release", go(base, "/producer/releases/new")),
            ("release", go(base, f"/producer/releases/{shop.release_id}")),
            ("edit release", go(base, f"/producer/releases/{shop.release_id}/edit")),
            ("announce", go(base, f"/producer/releases/{shop.release_id}/announce")),
            ("orders", go(base, "/producer/orders")),
            ("order", go(base, f"/producer/orders/{shop.order_id}")),
            ("refund", go(base, f"/producer/orders/{shop.order_id}/refund")),
            ("waitlists", go(base, "/producer/waitlists")),
            ("release waitlist", go(base, f"/producer/waitlists/releases/{shop.release_id}")),
            ("subscribers", go(base, "/producer/subscribers")),
            ("activity", go(base, "/producer/activity")),
        ],
    )


# --- Phones first -------------------------------------------------------------------------------------------------


def phone_page(browser) -> Page:
    return browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT}, device_scale_factor=3, is_mobile=True, has_touch=True
    ).new_page()


def in_first_screen(locator, bottom: float = PHONE_HEIGHT) -> bool:
    """Whether the element is shown wholly within the first screen, above `bottom` (where something fixed starts)."""
    if not locator.count() or not locator.first.is_visible():
        return False
    box = locator.first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= bottom


def test_a_phone_sees_price_stock_and_reserve_in_the_first_screen(shop: Shop, browser):
    page = phone_page(browser)
    page.goto(f"{shop.base}/releases/{shop.on_sale}")

    bar = page.locator("[data-reserve-bar]")
    bar_top = bar.bounding_box()["y"] if bar.is_visible() else PHONE_HEIGHT
    reserve = bar.get_by_role("link", name="Reserve · €89.00")
    in_the_form = page.locator("#reserve").get_by_role("button", name="Reserve", exact=True)
    assert in_first_screen(reserve) or in_first_screen(in_the_form, bar_top), "no Reserve in the phone's first screen"
    assert in_first_screen(page.locator(".stock__price .price"), bar_top), "the price is below the first screen"
    stock_shown = in_first_screen(page.locator("[data-stock-line]"), bar_top) or in_first_screen(
        bar.get_by_text("left")
    )
    assert stock_shown, '"N of M left" is below the first screen'
    expect(bar).to_contain_text("19 of 24 left")

    # Here the form is further down (the test-payments banner, the photo): the bar leads to it and puts the cursor
    # in its first field; while the form is being filled in, the bar is gone.
    reserve.click()
    expect(page.get_by_label("How many")).to_be_focused()
    expect(bar).to_be_hidden()
    page.context.close()


@pytest.mark.parametrize("where", ["release", "story"])
def test_long_codes_and_titles_do_not_widen_a_phone_page(session, shop: Shop, browser, where: str):
    batch = make_batch(session)
    batch.code = LONG_CODE
    batch.title = LONG_TITLE
    release = make_release(session, batch=batch, units=100_000, on_sale_at=NOW + timedelta(days=400))
    path = f"/releases/{release.slug}" if where == "release" else f"/batches/{batch.slug}"
    session.commit()
    page = phone_page(browser)
    page.goto(shop.base + path)
    expect(page.get_by_role("heading", level=1)).to_contain_text(LONG_TITLE[:20])
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the {where} page scrolls sideways on a phone: {width} px wide"
    page.context.close()


def test_the_pending_page_moves_on_by_itself_once_the_payment_is_confirmed(shop: Shop, stripe_sim, page: Page):
    """It asks again quietly (pending.js) instead of reloading on a timer, which would throw a screen reader back to
    the top every few seconds; once the payment is confirmed, it opens the success page."""
    page.clock.install()
    page.goto(f"{shop.base}/checkout/success?session_id={shop.pending_session}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirming your payment…")
    page.clock.run_for(4000)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirming your payment…")  # still 202: it stays

    pay(stripe_sim, shop.pending_session, name="Pat Byrne")
    assert stripe_sim.wait_for_deliveries(timeout=10)
    page.clock.run_for(30_000)
    expect(page.get_by_role("heading", level=1)).to_contain_text("is yours")
