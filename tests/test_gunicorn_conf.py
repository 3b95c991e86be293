"""gunicorn.conf.py: the production server's sizes come from the environment, and its pools from its threads."""

from __future__ import annotations

import logging
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
SIZING = (
    "WEB_CONCURRENCY",
    "WEB_THREADS",
    "HOST",
    "PORT",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "DATABASE_CONNECTION_CHECK",
    "GUNICORN_ACCESS_LOG",
    "GUNICORN_CONTROL_SOCKET",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "STRIPE_TIMEOUT_SECONDS",
    "STRIPE_CHECKOUT_RETRIES",
)


@pytest.fixture
def load_conf(monkeypatch):
    """Read gunicorn.conf.py as gunicorn does, under the given environment; on_starting's changes are undone."""
    for name in SIZING:
        monkeypatch.delenv(name, raising=False)
    # Only the environment given here: not a `.env` this checkout may have.
    monkeypatch.setattr("dotenv.dotenv_values", lambda *args, **kwargs: {})

    def load(**environment: str) -> dict:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        # on_starting sets these for the workers it forks: let monkeypatch put them back afterwards.
        monkeypatch.setenv("DATABASE_POOL_SIZE", os.environ.get("DATABASE_POOL_SIZE", ""))
        monkeypatch.setenv("DATABASE_MAX_OVERFLOW", os.environ.get("DATABASE_MAX_OVERFLOW", ""))
        return runpy.run_path(str(CONF))

    return load


class FakeArbiter:
    """What on_starting is handed: gunicorn's resolved settings (command line over the file) and its log."""

    def __init__(self, conf: dict, **overrides: int) -> None:
        self.cfg = SimpleNamespace(**{"workers": conf["workers"], "threads": conf["threads"], **overrides})
        self.log = logging.getLogger("test.gunicorn")


def test_threaded_workers_sized_for_a_path_that_waits_on_stripe(load_conf):
    conf = load_conf(HOST="0.0.0.0", PORT="9000")  # noqa: S104 - a server behind a load balancer listens so

    assert conf["worker_class"] == "gthread"
    assert conf["threads"] == 64
    assert conf["workers"] == len(os.sched_getaffinity(0))
    assert conf["bind"] == ["0.0.0.0:9000"]  # noqa: S104
    assert conf["accesslog"] is None
    assert conf["control_socket_disable"] is True
    # Long enough for a reservation whose three Stripe attempts all time out (10 s each, 0.5 s and 1 s between).
    assert conf["graceful_timeout"] >= 3 * 10 + 1.5


def test_the_pool_follows_the_threads_unless_set(load_conf, caplog):
    conf = load_conf(WEB_CONCURRENCY="2", WEB_THREADS="64", DATABASE_URL="sqlite:///shop.db")
    caplog.set_level(logging.INFO, "test.gunicorn")
    conf["on_starting"](FakeArbiter(conf))
    # The workers inherit these from the master.
    assert (os.environ["DATABASE_POOL_SIZE"], os.environ["DATABASE_MAX_OVERFLOW"]) == ("16", "8")
    assert "2 workers x 64 threads, database pool 16 + overflow 8 per worker (48 connections at most)" in caplog.text

    conf = load_conf(DATABASE_POOL_SIZE="5", DATABASE_MAX_OVERFLOW="0")
    # `gunicorn --threads 8` on the command line wins over the file: the log says what really runs.
    conf["on_starting"](FakeArbiter(conf, threads=8))
    assert (os.environ["DATABASE_POOL_SIZE"], os.environ["DATABASE_MAX_OVERFLOW"]) == ("5", "0")


@pytest.mark.parametrize(
    ("name", "value"),
    [("WEB_THREADS", "0"), ("WEB_CONCURRENCY", "two"), ("DATABASE_CONNECTION_CHECK", "maybe")],
)
def test_a_setting_that_makes_no_sense_stops_the_server(load_conf, name, value):
    with pytest.raises(RuntimeError, match=name):
        load_conf(**{name: value})


def test_a_negative_overflow_is_refused_not_read_as_no_limit(load_conf):
    conf = load_conf(DATABASE_MAX_OVERFLOW="-1")
    with pytest.raises(RuntimeError, match="DATABASE_MAX_OVERFLOW"):
        conf["on_starting"](FakeArbiter(conf))


def test_connections_are_refused_when_they_never_fit_and_warned_about_when_others_crowd_them(load_conf):
    problem = load_conf()["connection_problem"]
    assert problem(needed=96, max_connections=100, reserved=3, open_now=0) is None
    kind, why = problem(needed=98, max_connections=100, reserved=3, open_now=0)
    assert kind == "refuse" and "98" in why and "97" in why
    kind, why = problem(needed=90, max_connections=100, reserved=3, open_now=10)
    assert kind == "warn" and "10 are open already" in why


@pytest.mark.parametrize(
    ("url", "conninfo"),
    [
        ("postgresql+psycopg://shop@db:5432/shop", "postgresql://shop@db:5432/shop"),
        ("postgres://shop@db/shop?sslmode=require", "postgresql://shop@db/shop?sslmode=require"),
        ("sqlite:////var/shop.db", None),
        ("", None),
    ],
)
def test_only_a_postgresql_database_is_checked(load_conf, url, conninfo):
    assert load_conf()["postgres_conninfo"](url) == conninfo
