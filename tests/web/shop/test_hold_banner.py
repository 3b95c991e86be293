"""The hold banner: a browser that holds numbers sees them, their time and the way to pay or cancel on every buyer
page, and nobody else does; the "limit reached" page links only the holds this browser made. On both databases."""

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from storefront.domain.accounts import create_producer
from storefront.extensions import db
from storefront.models import Hold
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.shop.test_reserve import ON_SALE, csrf_token_from, release_page_token, reserve
from tests.web.waitlist.test_offers import browser

BANNER = re.compile(r'<aside class="hold-banner".*?</aside>', re.DOTALL)


@pytest.fixture
def release(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=2)
    session.commit()
    return release


def banner_of(response) -> str:
    found = BANNER.search(response.get_data(as_text=True))
    return found.group(0) if found else ""


def reserve_two(client, session, release) -> Hold:
    response = reserve(client, release, release_page_token(client, release), quantity="2")
    assert response.status_code == 303
    return session.scalar(select(Hold).where(Hold.payment_url == response.headers["Location"]))


@contextmanager
def statements(app):
    """Record the SQL the app sends while the block runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_every_buyer_page_shows_the_browsers_hold(app, session, client, release):
    hold = reserve_two(client, session, release)

    pages = {
        "home": client.get("/"),
        "release": client.get(f"/releases/{release.slug}"),
        "story": client.get(f"/batches/{release.batch.slug}"),
        "sign-in": client.get("/login"),
        "not found": client.get("/no-such-page"),
    }

    for name, response in pages.items():
        banner = banner_of(response)
        assert "You hold No. 1–2" in banner, name
        # Without its script the banner says the deadline on the shop's clock (Europe/Dublin, summer time).
        assert "held until 11:11 IST" in banner, name
        assert 'data-hold-deadline="2026-07-01T10:11:00Z"' in banner
        assert f'href="{hold.payment_url}" data-hold-continue>Continue to payment</a>' in banner
        assert f'action="/holds/{hold.token}/cancel"' in banner
        # Someone's hold on the page: never kept by a shared cache.
        assert response.headers["Cache-Control"] == "private, no-store", name
        assert "Cookie" in response.headers["Vary"], name


def test_the_banner_is_not_on_its_own_hold_page_nor_in_the_workspace(app, session, client, clock, release):
    with write_transaction(session):
        create_producer(session, "maker@example.com", "correct horse battery", clock())
    sign_in = {"email": "maker@example.com", "password": "correct horse battery"}
    csrf = csrf_token_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"csrf_token": csrf, **sign_in}).status_code == 303
    hold = reserve_two(client, session, release)
    assert "You hold No. 1–2" in banner_of(client.get("/"))

    assert banner_of(client.get(f"/holds/{hold.token}")) == ""
    workspace = client.get("/producer/")
    assert workspace.status_code == 200 and "You hold" not in workspace.get_data(as_text=True)


def test_another_browser_sees_no_banner_and_costs_no_query(app, session, client, release):
    reserve_two(client, session, release)
    stranger = browser(app)

    with statements(app) as sent:
        home = stranger.get("/")

    assert banner_of(home) == ""
    assert "You hold" not in home.get_data(as_text=True)
    assert "no-store" not in home.headers.get("Cache-Control", "")
    assert not [statement for statement in sent if "hold.token" in statement]


def test_cancel_from_the_banner_leads_to_the_hold_page_and_the_banner_goes(app, session, client, release):
    hold = reserve_two(client, session, release)
    banner = banner_of(client.get("/"))

    response = client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_token_from(banner)})

    assert (response.status_code, response.headers["Location"]) == (303, f"/holds/{hold.token}")
    assert "You cancelled this hold" in client.get(response.headers["Location"]).get_data(as_text=True)
    home = client.get("/")
    assert banner_of(home) == ""
    assert "no-store" not in home.headers.get("Cache-Control", "")
    with client.session_transaction() as cookie:
        assert cookie.get("holds") is None  # the ended hold's token is dropped, not carried for ever


def test_the_banner_goes_when_the_time_is_up(app, session, client, clock, release):
    reserve_two(client, session, release)
    assert "You hold No. 1–2" in banner_of(client.get("/"))

    clock.advance(minutes=10)

    assert banner_of(client.get("/")) == ""


def test_the_banner_counts_each_hold_of_the_browser(app, session, client, release):
    first = reserve_two(client, session, release)
    other = make_release(session, units=5, on_sale_at=ON_SALE, limit=1)
    session.commit()
    second_response = reserve(client, other, release_page_token(client, other), email="bo@example.com")
    second = session.scalar(select(Hold).where(Hold.payment_url == second_response.headers["Location"]))

    banner = banner_of(client.get("/"))

    assert banner.index(f"/holds/{second.token}") < banner.index(f"/holds/{first.token}")  # newest first
    assert "You hold No. 1–2" in banner and "You hold No. 1</strong>" in banner


def test_the_limit_page_links_this_browsers_hold_only(app, session, client, release):
    hold = reserve_two(client, session, release)

    refused = reserve(client, release, release_page_token(client, release), quantity="1")

    page = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "You have reached the limit" in page
    assert f'<a class="button" href="/holds/{hold.token}">Continue with your hold</a>' in page
    assert "You hold No. 1–2 of this release" in page

    # Someone else typing the same address learns nothing that leads to the hold or its payment page.
    stranger = browser(app)
    refused = reserve(stranger, release, release_page_token(stranger, release), quantity="1")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "You have reached the limit" in page
    assert hold.token not in page and hold.payment_url not in page
    assert "Continue with your hold" not in page
    assert "continue in that window" in page
