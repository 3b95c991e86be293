"""Rate limits on reserving (RESERVE_LIMIT_PER_IP, RESERVE_LIMIT_PER_EMAIL): a flood from one client or for one buyer
is answered 429 with Retry-After before the claim, so it takes no units; the release page's form, early access and
an offer's claim share the allowances. On both databases; the Redis case shares counters between two apps.

Flask-Limiter counts on the wall clock in a moving window, so the limits here are small and per hour: no test
waits, and none depends on where in a minute it runs.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import func, select

from config import TestConfig
from storefront import create_app
from storefront.extensions import db
from storefront.models import Release, Unit
from storefront.unit_of_work import write_transaction
from storefront.waitlist import tokens
from tests.conftest import REDIS_URL_FOR_TESTS, STRIPE_TEST_KEY, WEBHOOK_SECRET, redis_or_skip
from tests.domain.test_waitlist import confirmed_waiter, confirmed_waiter_of_product
from tests.factories import make_release
from tests.web.shop.test_reserve import ON_SALE, csrf_token_from, release_page_token, reserve
from tests.web.waitlist.test_offers import (
    answer_offer,
    browser,
    cancel_on_hold_page,
    offer_page_token,
    offers_of,
    sold_out_run,
)

REDIS_URL = REDIS_URL_FOR_TESTS
ANOTHER_CLIENT = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def available_units(session, release: Release) -> int:
    session.commit()
    return session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "available"))


def assert_paused(response, back_path: str, back_label: str = "Back to the release") -> None:
    """A 429 in the shop's voice that says how long to wait and leads back to the form."""
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert "Nothing was reserved" in page
    assert f'href="{back_path}"' in page and back_label in page


# --- Per client -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_IP": "5/hour", "RESERVE_LIMIT_PER_EMAIL": "50/hour"}])
def test_a_flood_from_one_address_is_paused_before_it_takes_any_unit(app, session, client, app_overrides):
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=1)
    session.commit()
    token = release_page_token(client, release)

    answers = [reserve(client, release, token, email=f"bot{number}@example.com") for number in range(40)]

    assert Counter(answer.status_code for answer in answers) == {303: 5, 429: 35}
    assert_paused(answers[-1], f"/releases/{release.slug}")
    assert available_units(session, release) == 15, "the paused requests took nothing"
    buyer = browser(app)
    page = buyer.get(f"/releases/{release.slug}", environ_base=ANOTHER_CLIENT).get_data(as_text=True)
    answer = buyer.post(
        f"/releases/{release.slug}/reserve",
        data={"csrf_token": csrf_token_from(page), "quantity": "1", "email": "ada@example.com"},
        environ_base=ANOTHER_CLIENT,
    )
    assert answer.status_code == 303, "a buyer elsewhere still reserves"
    assert available_units(session, release) == 14


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_IP": "3/hour"}])
def test_an_ipv6_client_is_counted_by_its_network(app, session, client, app_overrides):
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=1)
    session.commit()
    token = release_page_token(client, release)

    # One host cycling through the addresses of its /64, then a neighbour outside it.
    statuses = [
        reserve_from(client, release, token, f"2001:db8:1:2::{number + 1:x}", f"bot{number}@example.com")
        for number in range(5)
    ]
    neighbour = reserve_from(client, release, token, "2001:db8:1:3::1", "ada@example.com")

    assert statuses == [303, 303, 303, 429, 429]
    assert neighbour == 303


def reserve_from(client, release: Release, token: str, address: str, email: str) -> int:
    data = {"csrf_token": token, "quantity": "1", "email": email}
    response = client.post(f"/releases/{release.slug}/reserve", data=data, environ_base={"REMOTE_ADDR": address})
    return response.status_code


# --- Per buyer ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_EMAIL": "3/hour"}])
def test_one_buyer_is_paused_however_the_email_is_typed(app, session, client, app_overrides):
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=2)
    session.commit()
    token = release_page_token(client, release)
    spellings = ["ann@example.com", "Ann+drop@Example.com", " ANN+again@example.com ", "ann+bot@EXAMPLE.com"]

    answers = [reserve(client, release, token, email=email) for email in spellings]

    # Two units (her limit), one refusal that still counted, then the pause.
    assert [answer.status_code for answer in answers] == [303, 303, 409, 429]
    assert_paused(answers[-1], f"/releases/{release.slug}")
    assert available_units(session, release) == 18
    assert reserve(client, release, token, email="bob@example.com").status_code == 303, "another buyer goes on"


def test_the_default_allowance_lets_a_buyer_retry_a_few_times(app, session, client):
    assert (app.config["RESERVE_LIMIT_PER_IP"], app.config["RESERVE_LIMIT_PER_EMAIL"]) == ("60/minute", "10/minute")
    release = make_release(session, units=20, on_sale_at=ON_SALE, limit=1)
    session.commit()
    token = release_page_token(client, release)

    statuses = [reserve(client, release, token, email="ann@example.com").status_code for _ in range(11)]

    assert statuses == [303] + [409] * 9 + [429]


# --- Requests that never count --------------------------------------------------------------------------------


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_IP": "2/hour"}])
def test_a_reserve_without_the_form_token_is_refused_with_a_way_back(app, session, client, app_overrides):
    release = make_release(session, units=5, on_sale_at=ON_SALE)
    session.commit()
    path = f"/releases/{release.slug}/reserve"

    answers = [
        client.post(path, data={"quantity": "1", "email": "bot@example.com"}),
        client.post(path, data={"csrf_token": "forged", "quantity": "1", "email": "bot@example.com"}),
        client.post(path, data=b"\xff\xfe", content_type="application/octet-stream"),
        client.post(path, json={"quantity": 1, "email": "bot@example.com"}),
    ]

    for answer in answers:
        assert answer.status_code == 400
        page = answer.get_data(as_text=True)
        assert "Please try that again" in page and f'href="/releases/{release.slug}"' in page
    assert available_units(session, release) == 5
    token = release_page_token(client, release)
    assert reserve(client, release, token).status_code == 303, "refused before the limits: nothing counted"


# --- Every way to reserve shares the allowances ---------------------------------------------------------------


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_IP": "3/hour"}])
def test_claiming_offers_draws_on_the_same_allowance_per_client(app, session, client, app_overrides):
    release = make_release(session, units=5, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)

    answers = [client.post(f"/waitlist/offers/guess{number}/claim", data={"csrf_token": token}) for number in range(3)]
    paused = client.post("/waitlist/offers/guess9/claim", data={"csrf_token": token})

    assert [answer.status_code for answer in answers] == [404] * 3
    assert_paused(paused, "/waitlist/offers/guess9", "Back to your offer")
    assert_paused(reserve(client, release, token), f"/releases/{release.slug}")


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_EMAIL": "2/hour"}])
def test_early_access_and_the_release_page_share_the_allowance_per_buyer(app, session, client, clock, app_overrides):
    early_access, on_sale = ON_SALE - timedelta(hours=1), ON_SALE + timedelta(hours=1)
    release = make_release(session, units=10, on_sale_at=on_sale, limit=2)
    with write_transaction(session):
        session.get(Release, release.id).early_access_at = early_access
    clock.set(early_access - timedelta(days=1))
    entry = confirmed_waiter_of_product(session, release, "Ann@Example.com", clock())
    clock.set(early_access + timedelta(minutes=1))
    with app.test_request_context():
        path = urlsplit(tokens.early_access_url(entry.id, release.id)).path
    early_token = csrf_token_from(client.get(path).get_data(as_text=True))

    first = client.post(path, data={"csrf_token": early_token, "quantity": "1"})
    # Not on sale to everyone yet: refused, and counted for the same buyer.
    public = reserve(client, release, release_page_token(client, release), email="ann+public@example.com")
    second = client.post(path, data={"csrf_token": early_token, "quantity": "1"})

    assert (first.status_code, public.status_code) == (303, 409)
    assert_paused(second, path, "Back to early access")
    assert available_units(session, release) == 9


@pytest.mark.parametrize("app_overrides", [{"RESERVE_LIMIT_PER_EMAIL": "2/hour"}])
def test_an_offer_claim_and_the_release_page_share_the_allowance_per_buyer(
    app, session, client, clock, stripe_sim, app_overrides
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    confirmed_waiter(session, release, "Ann@Example.com", clock())
    assert cancel_on_hold_page(browser(app), carls_hold).status_code == 303
    (offer,) = offers_of(session, release.id)
    path = f"/waitlist/offers/{offer.token}"

    # Sold out to everyone else: refused, and counted for Ann.
    public = reserve(client, release, release_page_token(client, release), email="ann+public@example.com")
    token = offer_page_token(client, path)
    claimed = answer_offer(client, path, "claim", token)
    again = answer_offer(client, path, "claim", token)

    assert (public.status_code, claimed.status_code) == (409, 303)
    assert_paused(again, path, "Back to your offer")


# --- Shared through Redis -------------------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis_or_skip("two apps share their counts through Redis")
    yield client
    client.close()


def test_two_app_servers_share_the_counts_through_redis(
    app, session, database_url, tmp_path: Path, clock, stripe_sim, redis_client
):
    run = uuid.uuid4().hex[:12]
    email, address = f"ann-{run}@example.com", f"2001:db8:{run[:4]}:{run[4:8]}::1"
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "MAIL_DIR": str(tmp_path / "mail"),
        "CLOCK": clock,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_sim.url,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RESERVE_LIMIT_PER_EMAIL": "2/hour",
    }
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=5)
    session.commit()
    try:
        answers = []
        # Each app is a server of its own: building the second drops every count the first kept in memory.
        for attempts in (2, 1):
            server = create_app(TestConfig, **settings)
            buyer = server.test_client()  # its requests run in contexts of their own, not the test's
            page = buyer.get(f"/releases/{release.slug}", environ_base={"REMOTE_ADDR": address})
            data = {"csrf_token": csrf_token_from(page.get_data(as_text=True)), "quantity": "1", "email": email}
            for _attempt in range(attempts):
                answer = buyer.post(
                    f"/releases/{release.slug}/reserve", data=data, environ_base={"REMOTE_ADDR": address}
                )
                answers.append(answer)
            with server.app_context():
                db.engine.dispose()

        assert [answer.status_code for answer in answers] == [303, 303, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0
        assert available_units(session, release) == 8
        assert redis_client.keys(f"*{run}*"), "the counts live in Redis"
    finally:
        for key in redis_client.scan_iter(f"*{run}*"):
            redis_client.delete(key)


def test_page_views_skip_the_limiters_app_wide_check_and_forms_keep_theirs(app):
    from storefront.extensions import limiter

    hooks = app.before_request_funcs[None]
    assert limiter._check_request_limit not in hooks  # wrapped: page views skip it (storefront.create_app)
    assert any(hook.__name__ == "check_unless_reading" for hook in hooks)
    # The limits themselves live on the POST views and are checked there (the tests above hit them).
