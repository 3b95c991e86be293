"""Rendered release pages and "sold out" answers kept per process (PAGE_CACHE_SECONDS); on both databases.

A kept page is served to a visitor whose session shapes nothing on it, with their own form token and the server's
clock put in: the token must work for their session, the page must never carry one browser's hold, message or
account to another, and it must never outlive the release's next moment (sales opening, closing).
"""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.models import Hold
from storefront.text import iso_utc
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in
from tests.web.shop.test_hold_banner import banner_of, statements
from tests.web.shop.test_reserve import ON_SALE, csrf_token_from, release_page_token, reserve
from tests.web.waitlist.test_offers import browser

AVAILABLE = re.compile(r"data-reserve-bar-available>(\d+)<")
SERVER_NOW = re.compile(r'data-server-now="([^"]+)"')


@pytest.fixture
def app_overrides() -> dict:
    # As a shop runs: the reserve POST's own caches on too.
    return {"PAGE_CACHE_SECONDS": 1, "RELEASE_RULES_CACHE_SECONDS": 2, "SOLD_OUT_CACHE_SECONDS": 1}


@pytest.fixture
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def available_on(response) -> int:
    return int(AVAILABLE.search(response.get_data(as_text=True)).group(1))


def page_of(client, release):
    response = client.get(f"/releases/{release.slug}")
    assert response.status_code == 200
    return response


def test_a_kept_release_page_costs_no_query_and_its_token_works_for_its_own_visitor(
    app, session, clock, on_sale, stripe_sim
):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    path = f"/releases/{release.slug}"  # read here, not while the app's statements are counted
    first, second = browser(app), browser(app)
    first_page = first.get(path).get_data(as_text=True)

    with statements(app) as sent:
        second_page = second.get(path).get_data(as_text=True)

    assert sent == []
    first_token, second_token = csrf_token_from(first_page), csrf_token_from(second_page)
    assert first_token != second_token
    assert "\x1b" not in second_page  # no stand-in left behind
    assert second_page.replace(second_token, "") == first_page.replace(first_token, "")
    # Each token belongs to its own visitor's session: the kept page's form posts, and a copied token does not.
    assert reserve(second, release, second_token, email="second@example.com").status_code == 303
    assert reserve(browser(app), release, second_token, email="third@example.com").status_code == 400


def test_a_kept_page_is_a_second_old_at_most(app, session, client, clock, on_sale, stripe_sim):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    assert available_on(page_of(client, release)) == 10
    buyer = browser(app)
    assert reserve(buyer, release, release_page_token(buyer, release), email="b@example.com").status_code == 303

    assert available_on(page_of(browser(app), release)) == 10  # within the second
    clock.advance(seconds=1)
    assert available_on(page_of(browser(app), release)) == 9


def test_a_kept_countdown_starts_from_the_server_clock_now(app, session, client, clock):
    release = make_release(session, units=5, on_sale_at=ON_SALE)
    session.commit()
    clock.set(ON_SALE - timedelta(minutes=5))
    page_of(client, release)

    clock.advance(seconds=0.5)
    shown = SERVER_NOW.search(page_of(browser(app), release).get_data(as_text=True)).group(1)

    assert shown == iso_utc(clock())


def test_a_kept_page_never_outlives_the_opening(app, session, client, clock):
    release = make_release(session, units=5, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    clock.set(ON_SALE - timedelta(seconds=0.5))
    assert 'data-countdown="' in page_of(client, release).get_data(as_text=True)

    clock.set(ON_SALE)  # half a second later: the kept page would still be fresh, but sales have opened
    page = page_of(browser(app), release).get_data(as_text=True)

    assert 'data-countdown="' not in page
    assert 'action="/releases/' in page and "/reserve" in page


def test_a_browser_with_a_hold_gets_its_own_page_and_nobody_gets_its_banner(app, session, clock, on_sale, stripe_sim):
    release = make_release(session, units=10, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    holder = browser(app)
    assert reserve(holder, release, release_page_token(holder, release), quantity="2").status_code == 303
    hold = session.scalar(select(Hold))

    for _ in range(2):  # the holder's page is rendered for them each time, never kept for others
        assert hold.token in banner_of(page_of(holder, release))
    assert banner_of(page_of(browser(app), release)) == ""
    assert banner_of(page_of(browser(app), release)) == ""
    assert hold.token in banner_of(page_of(holder, release))


def test_a_signed_in_producer_and_a_waiter_get_their_own_pages(app, session, clock, on_sale):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    producer = browser(app)
    sign_in(producer, PRODUCER_EMAIL)
    assert "Workspace" in page_of(producer, release).get_data(as_text=True)

    anonymous = page_of(browser(app), release).get_data(as_text=True)
    assert "Workspace" not in anonymous
    assert "Sign in" in anonymous
    assert "Workspace" in page_of(producer, release).get_data(as_text=True)
    waiter = browser(app).get(f"/releases/{release.slug}?waiter=not-a-token")
    assert waiter.headers["Cache-Control"] == "private, no-store"


def test_a_pause_reaches_this_process_at_once(app, session, clock, on_sale):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    assert "Paused" not in page_of(browser(app), release).get_data(as_text=True)
    producer = browser(app)
    sign_in(producer, PRODUCER_EMAIL)
    path = f"/producer/releases/{release.id}"
    token = csrf_from(producer.get(path).get_data(as_text=True))
    assert producer.post(f"{path}/pause", data={"csrf_token": token}).status_code == 303

    assert "paused" in page_of(browser(app), release).get_data(as_text=True).lower()


def test_a_kept_sold_out_answer_carries_its_visitors_token(app, session, clock, on_sale, stripe_sim):
    release = make_release(session, units=1, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    winner = browser(app)
    assert reserve(winner, release, release_page_token(winner, release), email="w@example.com").status_code == 303
    late = [browser(app) for _ in range(2)]
    tokens = [release_page_token(visitor, release) for visitor in late]
    first = reserve(late[0], release, tokens[0], email="one@example.com")
    slug = release.slug

    with statements(app) as sent:
        second = late[1].post(
            f"/releases/{slug}/reserve", data={"csrf_token": tokens[1], "quantity": "1", "email": "two@example.com"}
        )

    assert (first.status_code, second.status_code) == (409, 409)
    assert "Sold out" in second.get_data(as_text=True)
    assert sent == []
    # The waitlist form on the kept answer posts from the second visitor's session.
    waitlist_token = csrf_token_from(second.get_data(as_text=True))
    joined = late[1].post(f"/waitlist/releases/{slug}", data={"csrf_token": waitlist_token, "email": "two@example.com"})
    assert joined.status_code in (200, 303), joined.get_data(as_text=True)[:500]


def test_only_some_left_is_never_answered_with_a_kept_sold_out_page(app, session, clock, on_sale, stripe_sim):
    release = make_release(session, units=3, on_sale_at=ON_SALE, allow_number_choice=False, limit=3)
    session.commit()
    first = browser(app)
    assert reserve(first, release, release_page_token(first, release), quantity="2").status_code == 303
    second = browser(app)

    answer = reserve(second, release, release_page_token(second, release), quantity="3", email="b@example.com")

    assert answer.status_code == 409
    assert "Only 1 left" in answer.get_data(as_text=True)


def test_without_the_cache_every_page_is_rendered(app, session, client, clock, on_sale):
    app.config.update(PAGE_CACHE_SECONDS=0)
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    path = f"/releases/{release.slug}"
    client.get(path)

    with statements(app) as sent:
        browser(app).get(path)

    assert sent != []


def test_campaign_tags_on_the_address_still_get_the_kept_page(app, session, client, clock, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    path = f"/releases/{release.slug}"
    client.get(path)

    with statements(app) as sent:
        tagged = browser(app).get(f"{path}?utm_source=newsletter&utm_campaign=rye-7")

    assert tagged.status_code == 200
    assert sent == []


def rendered_and_kept(pages, key, now, release, body) -> None:
    """One request that renders `body` and keeps it, as the views do."""
    with pages.lookup(key, now) as found:
        assert found.body is None
        found.keep(body, release)


def test_one_thread_renders_a_stale_page_while_the_others_serve_the_stale_copy(app, session, clock, on_sale):
    from storefront.shop.page_cache import REFRESH_GRACE, PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1), ("release", release.slug)
    with app.test_request_context("/"):
        rendered_and_kept(pages, key, clock(), release, "<p>the page</p>")
        clock.advance(seconds=1)

        with pages.lookup(key, clock()) as renderer:
            assert renderer.body is None  # the first to see it stale renders it again
            with pages.lookup(key, clock()) as other:
                assert other.body == "<p>the page</p>"  # the others serve the stale copy meanwhile
            clock.advance(seconds=REFRESH_GRACE.total_seconds())
            with pages.lookup(key, clock()) as late:
                assert late.body is None  # too stale to serve, and that render is overdue: this one renders
                late.keep("<p>the new page</p>", release)
        with pages.lookup(key, clock()) as after:
            assert after.body == "<p>the new page</p>"


def test_a_render_that_fails_drops_the_kept_page(app, session, clock, on_sale):
    from storefront.shop.page_cache import PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1), ("release", release.slug)
    with app.test_request_context("/"):
        rendered_and_kept(pages, key, clock(), release, "<p>the old page</p>")
        clock.advance(seconds=1)
        with pytest.raises(LookupError), pages.lookup(key, clock()) as renderer:
            assert renderer.body is None
            raise LookupError("renamed meanwhile: 404")

        with pages.lookup(key, clock()) as next_one:
            assert next_one.body is None  # not the old page again


def test_a_stale_copy_is_never_served_past_the_opening(app, session, clock):
    from storefront.shop.page_cache import PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1, wait_seconds=0.01), ("release", release.slug)
    clock.set(ON_SALE - timedelta(seconds=0.5))
    with app.test_request_context("/"):
        rendered_and_kept(pages, key, clock(), release, "<p>counting down</p>")
        clock.set(ON_SALE)

        with pages.lookup(key, clock()) as renderer:
            assert renderer.body is None
            with pages.lookup(key, clock()) as other:
                # No copy may be shown now; the render under way is waited for (here it never lands: this test's
                # own thread holds it), then this request renders too.
                assert other.body is None


def test_threads_wait_for_the_one_render_of_a_missing_page(app, session, clock, on_sale):
    import threading

    from storefront.shop.page_cache import PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key, now = PageCache(1), ("release", release.slug), clock()
    rendering, release_render = threading.Event(), threading.Event()
    served: list[str | None] = []

    def renderer() -> None:
        with app.test_request_context("/"), pages.lookup(key, now) as found:
            assert found.body is None
            rendering.set()
            release_render.wait(5)
            found.keep("<p>rendered once</p>", release)

    def waiter() -> None:
        with app.test_request_context("/"), pages.lookup(key, now) as found:
            served.append(found.body)

    first = threading.Thread(target=renderer)
    first.start()
    assert rendering.wait(5)
    others = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in others:
        thread.start()
    release_render.set()
    for thread in [first, *others]:
        thread.join(5)

    assert served == ["<p>rendered once</p>"] * 3


def test_the_countdowns_server_time_is_replaced_whatever_it_was_rendered_with(app, session, clock):
    from storefront.shop.page_cache import PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1), ("release", release.slug)
    clock.set(ON_SALE - timedelta(minutes=5))
    with app.test_request_context("/"):
        # Rendered a few microseconds after the lookup's own time, as a real clock would.
        rendered_and_kept(pages, key, clock(), release, '<p data-server-now="2026-07-01T09:55:00.000123Z">x</p>')
        clock.advance(seconds=0.25)
        with pages.lookup(key, clock()) as found:
            assert found.body == f'<p data-server-now="{iso_utc(clock())}">x</p>'


def test_a_render_begun_before_a_producers_change_is_not_kept_after_it(app, session, clock, on_sale):
    from storefront.shop.page_cache import PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1), ("release", release.slug)
    with app.test_request_context("/"):
        with pages.lookup(key, clock()) as found:
            pages.forget(release.id)  # the producer paused it while this page was being rendered
            found.keep("<p>on sale, before the pause</p>", release)
        with pages.lookup(key, clock()) as after:
            assert after.body is None


def test_a_flashed_message_is_never_kept_for_others(app, session, clock, on_sale):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    path = f"/releases/{release.slug}"
    message = "Removed bob@example.com from the list."
    producer = browser(app)
    sign_in(producer, PRODUCER_EMAIL)
    with producer.session_transaction() as cookie:
        cookie["_flashes"] = [("success", message)]

    # The producer's client changed: Flask-Login signs them out while the page renders, and the flash is shown.
    shown = producer.get(path, environ_overrides={"REMOTE_ADDR": "203.0.113.7"}).get_data(as_text=True)
    assert message in shown

    for _ in range(2):
        assert message not in browser(app).get(path).get_data(as_text=True)


@pytest.fixture
def limiter_back_on():
    """Flask-Limiter keeps RATELIMIT_ENABLED=False on its one global limiter for every app made after: undo it."""
    from storefront.extensions import limiter

    yield
    limiter.enabled = True


@pytest.mark.parametrize("app_overrides", [{"PAGE_CACHE_SECONDS": 1, "RATELIMIT_ENABLED": False}])
def test_the_shop_starts_and_serves_with_rate_limits_off(limiter_back_on, app, session, client, clock, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    assert page_of(client, release).status_code == 200


def test_an_overtaken_render_neither_drops_nor_overwrites_the_newer_page(app, session, clock, on_sale):
    from storefront.shop.page_cache import REFRESH_GRACE, PageCache

    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    pages, key = PageCache(1), ("release", release.slug)
    with app.test_request_context("/"):
        rendered_and_kept(pages, key, clock(), release, "<p>first</p>")
        clock.advance(seconds=1)
        with pages.lookup(key, clock()) as slow, pytest.raises(LookupError):
            assert slow.body is None
            clock.advance(seconds=REFRESH_GRACE.total_seconds())
            with pages.lookup(key, clock()) as quick:
                assert quick.body is None  # the slow render is overdue: this one takes over
                quick.keep("<p>quick</p>", release)
            slow.keep("<p>slow, begun earlier</p>", release)  # lands late: not over the newer page
            raise LookupError("and then the slow one fails")  # its failure does not drop the newer page

        with pages.lookup(key, clock()) as after:
            assert after.body == "<p>quick</p>"


def test_a_refusal_waits_for_a_render_without_holding_a_connection(app, session, clock, on_sale, stripe_sim):
    from storefront.extensions import db
    from storefront.shop import page_cache as module

    release = make_release(session, units=1, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    winner = browser(app)
    assert reserve(winner, release, release_page_token(winner, release), email="w@example.com").status_code == 303
    seen: list[bool] = []
    original = module.PageCache.find

    def find(self, found):
        seen.append(db.session().in_transaction())
        return original(self, found)

    module.PageCache.find = find
    try:
        late = browser(app)
        assert reserve(late, release, release_page_token(late, release), email="l@example.com").status_code == 409
    finally:
        module.PageCache.find = original
    assert seen == [False, False]  # the release page's lookup, then the refusal's: neither inside a transaction
