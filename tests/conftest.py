"""Shared fixtures: a clean database per test on SQLite and PostgreSQL, a controllable clock, a live server.

PostgreSQL runs when TEST_DATABASE_URL is set (each test gets a schema of its own in that database). Without it
the PostgreSQL cases are skipped with a reason; with REQUIRE_POSTGRES=1 a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient
from werkzeug.serving import make_server

# Tasks run inline in tests (Huey's immediate mode); the worker process itself has a test of its own.
os.environ.setdefault("HUEY_IMMEDIATE", "1")

from config import TestConfig, normalise_database_url  # noqa: E402
from storefront import create_app  # noqa: E402
from storefront.extensions import db  # noqa: E402
from storefront.stripe_sim import SimulatorServer  # noqa: E402

REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES", "") in {"1", "true", "yes"}
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The Redis tests may use (database 15 by default: its other users' keys are left alone).
REDIS_URL_FOR_TESTS = os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/15")


def redis_or_skip(why: str):
    """A client of the tests' Redis; the test is skipped when it does not answer (and fails on CI, which starts it)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL_FOR_TESTS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        if IN_CI:
            pytest.fail(f"CI starts Redis, yet {REDIS_URL_FOR_TESTS} does not answer: {error}")
        pytest.skip(f"{why}; Redis at {REDIS_URL_FOR_TESTS} does not answer: {error}")
    return client


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


class FrozenClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment


# --- PostgreSQL -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The base PostgreSQL URL, checked once per run; skips (or fails, when required) if it is unusable."""
    raw = os.environ.get("TEST_DATABASE_URL", "")
    if not raw:
        if REQUIRE_POSTGRES:
            pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    url = normalise_database_url(raw)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        if REQUIRE_POSTGRES:
            pytest.fail(f"REQUIRE_POSTGRES=1 but PostgreSQL at {raw} does not answer: {error}")
        pytest.skip(f"PostgreSQL at {raw} does not answer: {error.orig}")
    finally:
        engine.dispose()
    return url


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema; dropped after the test."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(postgres_url, schema)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- The app on either database --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 7, 1, 9, 0, tzinfo=UTC))


WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"
STRIPE_TEST_KEY = "sk_test_suite"


@pytest.fixture(scope="session")
def stripe_sim_server() -> Iterator[SimulatorServer]:
    """The project's Stripe simulator on 127.0.0.1, shared by the run and reset before each test."""
    # Headed with the shop's name, as Stripe's page is with the account's business name.
    server = SimulatorServer(webhook_secret=WEBHOOK_SECRET, business_name=TestConfig.SHOP_NAME).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_sim(stripe_sim_server: SimulatorServer) -> SimulatorServer:
    """A clean simulator: no sessions, events, faults or webhook settings from earlier tests."""
    requests.post(f"{stripe_sim_server.url}/_sim/reset", timeout=5).raise_for_status()
    return stripe_sim_server


@pytest.fixture
def app_overrides() -> dict:
    """Extra settings for the `app` fixture; override in a module to change them."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FrozenClock, app_overrides: dict, stripe_sim: SimulatorServer):
    """The shop on a clean database whose schema comes from the models, paying through the simulator."""
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "UPLOAD_FOLDER": str(tmp_path / "uploads"),
        "MAIL_DIR": str(tmp_path / "mail"),
        "CLOCK": clock,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe_sim.url,
        "STRIPE_TIMEOUT_SECONDS": 2,
        **app_overrides,
    }
    application = create_app(TestConfig, **settings)
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def session(app):
    """The app's scoped session, inside an app context."""
    with app.app_context():
        yield db.session
        db.session.rollback()


class ShopClient(FlaskClient):
    """A test client whose requests start their own transaction, as a real request would.

    Flask reuses the test's app context (and so its database session) for requests made inside it; without this,
    a transaction the test left open would leak into the request and the request's writes would be invisible to
    the test's stale snapshot on SQLite.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            db.session.commit()
        response = super().open(*args, **kwargs)
        if has_app_context():
            db.session.commit()
        return response


@pytest.fixture
def client(app):
    app.test_client_class = ShopClient
    return app.test_client()


# --- A real server and a real browser ----------------------------------------------------------------------------


class LiveServer:
    def __init__(self, app, port: int = 0) -> None:
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


def chromium_or_skip() -> str:
    if shutil.which(CHROMIUM) or Path(CHROMIUM).exists():
        return CHROMIUM
    if IN_CI:
        pytest.fail(f"CI=true but Chromium is not installed at {CHROMIUM} (.ci/run installs Debian's chromium)")
    pytest.skip(f"Chromium not found at {CHROMIUM}; install Debian's chromium to run browser tests")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium (Playwright's own download does not work here) with a quiet network."""
    return {
        **browser_type_launch_args,
        "executable_path": chromium_or_skip(),
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }
