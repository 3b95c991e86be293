"""Cheap public pages: a browser may keep the home, release, story, written pages and the feed for a few seconds, asks
again with their ETag and gets a bodyless 304 while nothing changed; personal pages are never kept; static files
live under content-hashed addresses a browser keeps for a year. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from storefront.domain import shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.shop_pages import PageDetails
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.shop.test_reserve import ON_SALE, csrf_token_from, reserve
from tests.web.waitlist.test_offers import browser

STATIC_URL = re.compile(r'(?:href|src)="(/static/css/shop\.css\?v=[0-9a-f]+)"')
SHORT_PRIVATE = "private, max-age=5, stale-while-revalidate=30"


@pytest.fixture
def client(app):
    """One visitor's browser (each test's other visitors are `browser(app)`)."""
    return browser(app)


@pytest.fixture
def release(session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=2)
    session.commit()
    return release


def ask_again(client, path, response):
    return client.get(path, headers={"If-None-Match": response.headers["ETag"]})


def test_a_release_page_is_kept_briefly_by_the_browser_and_revalidated_with_a_304(client, release):
    path = f"/releases/{release.slug}"
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == SHORT_PRIVATE
    assert first.headers["ETag"].startswith('W/"')
    assert "Cookie" in first.headers["Vary"]

    again = ask_again(client, path, first)
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == first.headers["ETag"]

    # The form of the copy the browser kept still reserves: its token belongs to this browser's session.
    reserved = reserve(client, release, csrf_token_from(first.get_data(as_text=True)))
    assert reserved.status_code == 303


def test_a_page_whose_counts_changed_is_sent_again(client, session, release, stripe_sim):
    path = f"/releases/{release.slug}"
    first = client.get(path)
    other_browser = browser(client.application)
    token = csrf_token_from(other_browser.get(path).get_data(as_text=True))
    assert reserve(other_browser, release, token).status_code == 303

    again = ask_again(client, path, first)
    assert again.status_code == 200
    assert again.headers["ETag"] != first.headers["ETag"]


def test_another_browser_never_gets_a_304_for_a_copy_made_for_someone_else(client, release):
    path = f"/releases/{release.slug}"
    first = client.get(path)
    stranger = browser(client.application)
    answer = ask_again(stranger, path, first)
    assert answer.status_code == 200
    assert csrf_token_from(answer.get_data(as_text=True)) != csrf_token_from(first.get_data(as_text=True))


def test_a_page_with_the_browsers_hold_is_never_kept(client, release, stripe_sim):
    path = f"/releases/{release.slug}"
    before = client.get(path)
    assert reserve(client, release, csrf_token_from(before.get_data(as_text=True))).status_code == 303

    for page in ("/", path, f"/batches/{release.batch.slug}"):
        response = client.get(page, headers={"If-None-Match": before.headers["ETag"]})
        assert response.status_code == 200, page
        assert response.headers["Cache-Control"] == "private, no-store", page
        assert "ETag" not in response.headers, page


def test_a_page_with_a_flashed_message_is_never_kept(client, release):
    with client.session_transaction() as cookie_session:
        cookie_session["_flashes"] = [("info", "You are signed out.")]
    response = client.get("/")
    assert "You are signed out." in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_waiters_release_page_stays_private(client, release):
    response = client.get(f"/releases/{release.slug}?waiter=not-a-real-token")
    assert response.headers["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    ("page", "cache_control"),
    [
        ("/", SHORT_PRIVATE),
        ("/batches/{batch}", "private, max-age=15, stale-while-revalidate=60"),
        ("/pages/shipping", "private, max-age=60, stale-while-revalidate=300"),
    ],
)
def test_the_home_story_and_written_pages_are_kept_briefly_and_revalidated(
    client, session, clock, release, page, cache_control
):
    with write_transaction(session):
        shop_pages.save_shop_page(session, SHOP, "shipping", PageDetails("", "Ireland: €6 per order."), clock())
    path = page.format(batch=release.batch.slug)
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == cache_control
    assert ask_again(client, path, first).status_code == 304


def test_the_feed_carries_no_session_and_may_be_kept_by_shared_caches(client, release):
    first = client.get("/feed.atom")
    assert first.headers["Cache-Control"] == "public, max-age=300, stale-while-revalidate=3600"
    assert "Set-Cookie" not in first.headers
    # Any reader's copy is the same feed: a reader without a cookie gets the 304 too.
    assert ask_again(browser(client.application), "/feed.atom", first).status_code == 304


def test_a_feed_reader_asking_since_the_newest_entry_gets_a_304(client, release):
    first = client.get("/feed.atom")
    newest = max(release.updated_at, release.batch.updated_at).replace(microsecond=0)
    assert first.last_modified == newest
    since = first.headers["Last-Modified"]
    assert client.get("/feed.atom", headers={"If-Modified-Since": since}).status_code == 304
    assert client.get("/feed.atom", headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}).status_code == 200


def test_the_live_counts_are_never_cached(client, release):
    response = client.get(f"/api/releases/{release.slug}")
    assert response.headers["Cache-Control"] == "no-store"


def test_static_files_have_content_hashed_addresses_kept_for_a_year(client, release):
    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    (versioned,) = set(STATIC_URL.findall(page))
    response = client.get(versioned)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    response.close()

    # An address from before a deploy (or none) still gets the file, but revalidated, never kept for a year.
    for stale in ("/static/css/shop.css?v=000000000000", "/static/css/shop.css"):
        response = client.get(stale)
        assert response.status_code == 200
        assert "immutable" not in response.headers.get("Cache-Control", "")
        response.close()
