"""Two app servers, one database: the deployment README's "Deploying" draws, on one machine.

Two separate gunicorn servers, each started with the project's gunicorn.conf.py on a port of its own, share one
PostgreSQL schema and one Redis, as two hosts behind a load balancer would. Buyers are real HTTP clients with a
cookie jar each: they load the release page from one server and post its reserve form (with its CSRF token) to the
other, as a load balancer without sticky sessions may send them. Every winner's Checkout Session is opened on the
Stripe simulator, which answers after 300 ms as Stripe does. Rate limits count in Redis, so an allowance used up on
one server is used up on the other. The clock is the real one here: the releases opened a minute ago.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from config import TestConfig
from storefront import create_app
from storefront.extensions import db
from storefront.models import Hold, Unit
from tests.conftest import REDIS_URL_FOR_TESTS, STRIPE_TEST_KEY, WEBHOOK_SECRET, redis_or_skip, with_search_path
from tests.factories import make_release
from tests.integration.helpers import assert_audit_clean, free_port
from tests.integration.test_gunicorn import CHECKOUT_PATH, CSRF_INPUT, wait_until_serving
from tests.payments import sim_post

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
BIN = PROJECT / ".venv" / "bin"
BUYERS, UNITS, IN_FLIGHT = 200, 80, 32
# Each server as gunicorn.conf.py makes it, only smaller: this machine is shared with the rest of the suite.
WORKERS, THREADS = 2, 8
# Small allowances, so the test can use one up; per IP they are huge, as every buyer here comes from 127.0.0.1. The
# odd numbers keep these counters apart from any other test's in the same Redis.
PER_BUYER_LIMIT = 3
PER_IP_LIMIT = "100003/minute"
STRIPE_LATENCY_SECONDS = 0.3


@dataclass
class Shop:
    database_url: str
    servers: tuple[str, str]
    race_slug: str
    limit_slug: str


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The Redis the servers share (REDIS_URL_FOR_TESTS, database 15 by default); skipped when none answers."""
    redis_or_skip("two servers share their rate limits through Redis").close()
    return REDIS_URL_FOR_TESTS


@pytest.fixture(scope="module")
def shop_schema(postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """A schema of its own with two releases on sale since a minute ago; yields (database url, race slug, limit
    slug)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = with_search_path(postgres_url, schema)
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=url)
    try:
        with app.app_context():
            db.create_all()
            opened = datetime.now(UTC) - timedelta(minutes=1)
            race = make_release(db.session, units=UNITS, limit=3, on_sale_at=opened)
            plenty = make_release(db.session, units=20, limit=PER_BUYER_LIMIT + 1, on_sale_at=opened)
            slugs = race.slug, plenty.slug
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        yield url, *slugs
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def server_environment(database_url: str, redis_url: str, stripe_api_base: str, port: int, instance: Path) -> dict:
    environment = {
        key: value
        for key, value in os.environ.items()
        # Sized by gunicorn.conf.py from the threads, and counting in Redis because REDIS_URL says so.
        if key not in {"DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW", "RATELIMIT_STORAGE_URI"}
    }
    return {
        **environment,
        "STOREFRONT_ENV": "development",  # production refuses the simulator and a http:// SHOP_URL
        "SECRET_KEY": "two-servers-one-secret",  # every host signs sessions with the same key
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HUEY_IMMEDIATE": "1",
        "INSTANCE_PATH": str(instance),
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_api_base,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(WORKERS),
        "WEB_THREADS": str(THREADS),
        "RESERVE_LIMIT_PER_IP": PER_IP_LIMIT,
        "RESERVE_LIMIT_PER_EMAIL": f"{PER_BUYER_LIMIT}/minute",
        "LOGIN_LIMIT_PER_IP": PER_IP_LIMIT,
        "LOGIN_LIMIT_PER_EMAIL": f"{PER_BUYER_LIMIT}/minute",
    }


@pytest.fixture(scope="module")
def shop(shop_schema, redis_url: str, stripe_sim_server, tmp_path_factory) -> Iterator[Shop]:
    """Servers A and B: two gunicorn masters with gunicorn.conf.py, one schema, one Redis, one Stripe simulator."""
    database_url, race_slug, limit_slug = shop_schema
    logs = tmp_path_factory.mktemp("two-servers")
    started: list[tuple[subprocess.Popen, Path]] = []
    urls = []
    try:
        for name in ("a", "b"):
            port, log = free_port(), logs / f"gunicorn-{name}.log"
            environment = server_environment(database_url, redis_url, stripe_sim_server.url, port, logs / name)
            with log.open("w") as log_file:
                server = subprocess.Popen(
                    [BIN / "gunicorn", "-c", PROJECT / "gunicorn.conf.py", "wsgi:app"],
                    cwd=PROJECT,
                    env=environment,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            started.append((server, log))
            urls.append(f"http://127.0.0.1:{port}")
        for (server, log), url in zip(started, urls, strict=True):
            wait_until_serving(server, f"{url}/releases/{race_slug}", log)
            # Sized from the threads by gunicorn.conf.py, and checked against max_connections before listening.
            assert f"{WORKERS} workers x {THREADS} threads, database pool 2 + overflow 1 per worker" in log.read_text()
        yield Shop(database_url, (urls[0], urls[1]), race_slug, limit_slug)
    finally:
        for server, _ in started:
            server.terminate()
        for server, _ in started:
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


class Buyer:
    """One person in a browser of their own, whose requests the load balancer may send to either server."""

    def __init__(self, email: str, quantity: int) -> None:
        self.email, self.quantity = email, quantity
        self.browser = requests.Session()
        self.csrf_token = ""

    def open_page(self, url: str) -> None:
        # A fresh connection for the post: gunicorn closes idle keep-alive connections after a few seconds.
        page = self.browser.get(url, headers={"Connection": "close"}, timeout=60)
        page.raise_for_status()
        match = CSRF_INPUT.search(page.text)
        assert match, f"{url} has no form with a csrf_token:\n{page.text[:3000]}"
        self.csrf_token = match.group(1) or match.group(2)

    def reserve(self, server: str, slug: str) -> requests.Response:
        return self.browser.post(
            f"{server}/releases/{slug}/reserve",
            data={"csrf_token": self.csrf_token, "quantity": str(self.quantity), "email": self.email},
            allow_redirects=False,
            timeout=60,
        )

    def sign_in(self, server: str) -> requests.Response:
        return self.browser.post(
            f"{server}/login",
            data={"csrf_token": self.csrf_token, "email": self.email, "password": "not the password"},
            allow_redirects=False,
            timeout=60,
        )


def read_stock(database_url: str) -> tuple[list, list]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            holds = connection.execute(
                sa.select(Hold.id, Hold.release_id, Hold.payment_session_id, Hold.quantity, Hold.status)
            ).all()
            units = connection.execute(sa.select(Unit.release_id, Unit.number, Unit.status, Unit.hold_id)).all()
    finally:
        engine.dispose()
    return holds, units


def release_id_of(database_url: str, slug: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT id FROM release WHERE slug = :slug"), {"slug": slug}).scalar_one()
    finally:
        engine.dispose()


def test_one_release_sells_once_through_two_servers(shop: Shop, stripe_sim):
    # Stripe takes 300 ms to open each Checkout Session: winners wait on it, with no database connection held.
    sim_post(
        stripe_sim,
        "/_sim/faults",
        {"method": "POST", "path": "/v1/checkout/sessions", "delay_seconds": STRIPE_LATENCY_SECONDS, "count": None},
    )
    rng = random.Random("two-servers")
    wants = [rng.randint(1, 3) for _ in range(BUYERS)]
    buyers = [Buyer(f"race-{uuid.uuid4().hex[:8]}-{i}@example.com", want) for i, want in enumerate(wants)]
    server_a, server_b = shop.servers
    # Half load the page from A and post to B, half the other way round: a session cookie and a CSRF token made by
    # one host are good on the other (no sticky sessions needed).
    routes = [(server_a, server_b) if i % 2 == 0 else (server_b, server_a) for i in range(BUYERS)]
    try:
        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            # Everyone has the page open before the rush...
            list(pool.map(lambda b, r: b.open_page(f"{r[0]}/releases/{shop.race_slug}"), buyers, routes))
            # ...then they all press Reserve.
            answers = list(pool.map(lambda b, r: b.reserve(r[1], shop.race_slug), buyers, routes))
    finally:
        for buyer in buyers:
            buyer.browser.close()

    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {303, 409}, [
        (a.status_code, a.text[:2000]) for a in answers if a.status_code not in {303, 409}
    ]
    assert statuses[409] > 0, "more buyers than units, yet nobody was told it sold out"
    winners_by_server = Counter(
        route[1] for route, answer in zip(routes, answers, strict=True) if answer.status_code == 303
    )
    assert set(winners_by_server) == {server_a, server_b}, "one server sold everything: the other was not racing"
    sessions = {}
    for want, answer in zip(wants, answers, strict=True):
        if answer.status_code == 303:
            location = answer.headers["Location"]
            match = CHECKOUT_PATH.match(urlsplit(location).path)
            assert location.startswith(stripe_sim.url) and match, location
            sessions[match.group(1)] = want

    race_id = release_id_of(shop.database_url, shop.race_slug)
    holds, units = read_stock(shop.database_url)
    holds = [hold for hold in holds if hold.release_id == race_id]
    units = [unit for unit in units if unit.release_id == race_id]
    assert {hold.payment_session_id: hold.quantity for hold in holds} == sessions, "a checkout without its hold"
    assert {hold.status for hold in holds} == {"active"}
    # Nothing oversold, nothing left over, and no number twice.
    assert Counter(unit.status for unit in units) == {"held": UNITS}
    assert sorted(unit.number for unit in units) == list(range(1, UNITS + 1))
    assert {hold.id: hold.quantity for hold in holds} == dict(Counter(unit.hold_id for unit in units))
    assert sum(sessions.values()) == UNITS

    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=shop.database_url)
    with app.app_context():
        try:
            assert_audit_clean(db.session, datetime.now(UTC))
        finally:
            db.session.remove()
            db.engine.dispose()


def test_a_reserve_allowance_used_up_on_one_server_is_used_up_on_the_other(shop: Shop, stripe_sim):
    server_a, server_b = shop.servers
    buyer = Buyer(f"limit-{uuid.uuid4().hex[:8]}@example.com", 1)
    buyer.open_page(f"{server_a}/releases/{shop.limit_slug}")
    try:
        on_a = [buyer.reserve(server_a, shop.limit_slug).status_code for _ in range(PER_BUYER_LIMIT)]
        over = buyer.reserve(server_b, shop.limit_slug)
    finally:
        buyer.browser.close()

    assert on_a == [303] * PER_BUYER_LIMIT
    # Server B has never seen this buyer, yet knows the allowance is gone: the count lives in Redis.
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) > 0
    # The release allows one unit more, so only the limit can have refused it: and it took nothing.
    limit_id = release_id_of(shop.database_url, shop.limit_slug)
    holds, units = read_stock(shop.database_url)
    assert sum(hold.quantity for hold in holds if hold.release_id == limit_id) == PER_BUYER_LIMIT
    assert Counter(unit.status for unit in units if unit.release_id == limit_id)["held"] == PER_BUYER_LIMIT


def test_failed_sign_ins_on_one_server_count_on_the_other(shop: Shop):
    server_a, server_b = shop.servers
    visitor = Buyer(f"guess-{uuid.uuid4().hex[:8]}@example.com", 1)
    visitor.open_page(f"{server_b}/login")
    try:
        on_a = [visitor.sign_in(server_a).status_code for _ in range(PER_BUYER_LIMIT)]
        over = visitor.sign_in(server_b)
    finally:
        visitor.browser.close()

    assert on_a == [200] * PER_BUYER_LIMIT  # "those do not match an account", each counted
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) > 0


def test_a_server_whose_pools_cannot_fit_in_postgresql_refuses_to_start(postgres_url: str, tmp_path):
    environment = server_environment(postgres_url, "", "", free_port(), tmp_path / "instance")
    # 40 workers x (16 + 8) connections: far beyond any max_connections a test database has.
    environment["WEB_CONCURRENCY"], environment["WEB_THREADS"] = "40", "64"
    started = subprocess.run(
        [BIN / "gunicorn", "-c", PROJECT / "gunicorn.conf.py", "wsgi:app"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode == 1
    assert "Refusing to start: this server may open 960 database connections" in started.stderr
    assert "max_connections" in started.stderr
    assert "Booting worker" not in started.stderr, "it refused after serving"
