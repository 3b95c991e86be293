"""Gunicorn settings for serving the shop: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make serve` runs).

Every value comes from the environment (and `.env`), with defaults chosen by measurement (../shared/PERFORMANCE.md,
README "Running a drop"): a winner's request waits about 300 ms on Stripe after its claim has committed, so the
server needs many threads that can wait, not many processes. On a 2-core machine with a 300 ms Stripe, 4 sync
workers managed 12.8 requests/s while 2 gthread workers of 64 threads managed 364 (ceiling 128 / 0.3 s = 427).

  HOST, PORT                       where to listen (127.0.0.1:5000, as make run; 0.0.0.0 behind a remote load balancer)
  WEB_CONCURRENCY                  worker processes (default: the CPU cores this process may use; Python runs one
                                   thread at a time per process, so more processes than cores buy nothing)
  WEB_THREADS                      threads per worker (64): requests one worker can have waiting on Stripe
  DATABASE_POOL_SIZE,              each worker's connections (default: derived from WEB_THREADS, see pool_sizes);
  DATABASE_MAX_OVERFLOW            workers x (pool + overflow) is checked against PostgreSQL's max_connections
  DATABASE_CONNECTION_CHECK        refuse (default) | warn | off: what to do when they do not fit (off behind
                                   pgbouncer, whose max_client_conn is then the limit)
  GUNICORN_ACCESS_LOG              empty (default: no access log, it costs CPU on the hot path), "-" for stdout,
                                   or a file
  GUNICORN_LOG_LEVEL               info
  GUNICORN_KEEPALIVE               seconds an idle keep-alive connection stays open (5); keep it above the load
                                   balancer's idle timeout for its connections to this server
  GUNICORN_GRACEFUL_TIMEOUT        seconds a stopping worker may finish its requests (default: the longest a
                                   reservation may wait on Stripe, so no buyer with a fresh hold is cut off)
  GUNICORN_CONTROL_SOCKET          path of gunicorn's control socket (off by default: two servers on one host would
                                   share the default path)

The app itself reads DATABASE_POOL_SIZE and DATABASE_MAX_OVERFLOW (config.py): the master sets them (derived when
unset) when it starts, and the workers it forks inherit them. Nothing here imports the app.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from dotenv import dotenv_values

PROJECT_DIR = Path(__file__).resolve().parent
# What the app will see: the environment first, `.env` for what it leaves unset (as config.py loads it).
SETTINGS = {**dotenv_values(PROJECT_DIR / ".env"), **os.environ}

DEFAULT_THREADS = 64
CONNECTION_CHECKS = ("refuse", "warn", "off")


def setting(name: str, default: str = "") -> str:
    value = SETTINGS.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def positive_int(name: str, default: int) -> int:
    """Read a whole number of at least 1, failing loudly on anything else."""
    raw = setting(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise RuntimeError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pool_sizes(threads: int) -> tuple[int, int]:
    """Each worker's database pool and overflow for `threads` threads.

    A thread holds a connection only between its first query and its last commit: the reserve POST gives it back
    before calling Stripe, where a winner spends most of its time. One process runs one thread's Python at a time,
    and PostgreSQL's claim throughput peaks at 4 to 16 clients and falls at 64 (PERFORMANCE.md), so a quarter of the
    threads is plenty; a thread that finds the pool empty waits for a connection as it would for the interpreter.
    """
    pool = max(2, math.ceil(threads / 4))
    return pool, max(1, math.ceil(threads / 8))


def non_negative_int(name: str, default: int) -> int:
    """Read a whole number of at least 0 (SQLAlchemy reads a negative overflow as "no limit")."""
    raw = setting(name, str(default))
    if not raw.isdigit():
        raise RuntimeError(f"{name} must be a whole number of at least 0, got {raw!r}")
    return int(raw)


def database_pool(threads: int) -> tuple[int, int]:
    """The pool and overflow each worker uses: DATABASE_POOL_SIZE and DATABASE_MAX_OVERFLOW, else pool_sizes()."""
    derived_pool, derived_overflow = pool_sizes(threads)
    return positive_int("DATABASE_POOL_SIZE", derived_pool), non_negative_int("DATABASE_MAX_OVERFLOW", derived_overflow)


def stripe_wait_seconds() -> int:
    """The longest a reservation waits on Stripe: every attempt timing out, plus the SDK's backoff (0.5 s, 1 s)."""
    timeout = positive_int("STRIPE_TIMEOUT_SECONDS", 10)
    retries = max(0, int(setting("STRIPE_CHECKOUT_RETRIES", "2")))
    return timeout * (retries + 1) + 2 * retries


workers = positive_int("WEB_CONCURRENCY", available_cores())
worker_class = "gthread"
threads = positive_int("WEB_THREADS", DEFAULT_THREADS)
bind = [f"{setting('HOST', '127.0.0.1')}:{positive_int('PORT', 5000)}"]

connection_check = setting("DATABASE_CONNECTION_CHECK", "refuse").lower()
if connection_check not in CONNECTION_CHECKS:
    raise RuntimeError(f"DATABASE_CONNECTION_CHECK must be one of {', '.join(CONNECTION_CHECKS)}")

# The access log is a write per request in the worker that serves it: off unless asked for.
accesslog = setting("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = setting("GUNICORN_LOG_LEVEL", "info")
keepalive = positive_int("GUNICORN_KEEPALIVE", 5)
# A buyer whose claim committed is waiting for their payment page: let a restart finish that wait.
graceful_timeout = positive_int("GUNICORN_GRACEFUL_TIMEOUT", stripe_wait_seconds() + 5)
# gthread workers answer the master's heartbeat from their main thread, so a slow request never trips this.
timeout = 30
control_socket = setting("GUNICORN_CONTROL_SOCKET")
control_socket_disable = not control_socket
# The workers' heartbeat files: in memory, as containers often have a slow or overlay /tmp.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - gunicorn's own advice
proc_name = "small-batch"


def postgres_conninfo(database_url: str) -> str | None:
    """The libpq address of DATABASE_URL when it names PostgreSQL (in any spelling config.py accepts), else None."""
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme.split("+")[0] not in ("postgres", "postgresql"):
        return None
    return f"postgresql://{rest}"


def connection_problem(needed: int, max_connections: int, reserved: int, open_now: int) -> tuple[str, str] | None:
    """Whether `needed` connections fit in the server: ("refuse", why) when they never can, ("warn", why) when they
    do not beside the connections already open (other hosts, the task worker, psql), else None."""
    usable = max_connections - reserved
    if needed > usable:
        return "refuse", (
            f"this server may open {needed} database connections but PostgreSQL accepts {usable} "
            f"(max_connections {max_connections} - superuser_reserved_connections {reserved})"
        )
    if needed + open_now > usable:
        return "warn", (
            f"this server may open {needed} database connections and {open_now} are open already: "
            f"together more than the {usable} PostgreSQL accepts"
        )
    return None


def read_connection_limits(conninfo: str) -> tuple[int, int, int]:
    """PostgreSQL's max_connections, superuser_reserved_connections and the client connections open now."""
    import psycopg  # here, not at the top: a SQLite shop never needs it

    with psycopg.connect(conninfo, connect_timeout=5, autocommit=True) as connection:
        max_connections = int(connection.execute("SHOW max_connections").fetchone()[0])
        reserved = int(connection.execute("SHOW superuser_reserved_connections").fetchone()[0])
        open_now = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()[0]
    return max_connections, reserved, open_now - 1  # not this check's own


def on_starting(server) -> None:
    """Say how the server is sized, and check its connections fit in PostgreSQL before it listens."""
    # From gunicorn's own settings: command-line options (-w, --threads) override this file.
    worker_count, thread_count = server.cfg.workers, server.cfg.threads
    pool, overflow = database_pool(thread_count)
    # The workers are forked from this process and inherit its environment; config.py reads these there.
    os.environ["DATABASE_POOL_SIZE"], os.environ["DATABASE_MAX_OVERFLOW"] = str(pool), str(overflow)
    needed = worker_count * (pool + overflow)
    server.log.info(
        "Small Batch: %d workers x %d threads, database pool %d + overflow %d per worker (%d connections at most)",
        worker_count,
        thread_count,
        pool,
        overflow,
        needed,
    )
    conninfo = postgres_conninfo(setting("DATABASE_URL"))
    if conninfo is None or connection_check == "off":
        return
    try:
        limits = read_connection_limits(conninfo)
    except Exception as error:  # a database that is down now may be up before the first buyer
        server.log.warning("Could not check PostgreSQL's max_connections: %s", error)
        return
    problem = connection_problem(needed, *limits)
    if problem is None:
        return
    kind, why = problem
    advice = (
        "Lower WEB_CONCURRENCY, DATABASE_POOL_SIZE or DATABASE_MAX_OVERFLOW, raise max_connections, or put pgbouncer "
        "in front (README, Deploying)"
    )
    if kind == "refuse" and connection_check == "refuse":
        # A drop would find out as "too many clients" errors at its busiest second: better now.
        raise RuntimeError(f"Refusing to start: {why}. {advice}, or set DATABASE_CONNECTION_CHECK=warn.")
    server.log.warning("%s. %s.", why[0].upper() + why[1:], advice)


def post_worker_init(worker) -> None:
    """Compile the templates and import what loads lazily before this worker takes a request (storefront/warm.py):
    otherwise the first burst of a drop does it once in every thread that meets it."""
    app = worker.wsgi
    if getattr(app, "jinja_env", None) is None:  # not a Flask app
        return
    from storefront.warm import warm_up

    seconds = warm_up(app)
    worker.log.info("Small Batch: worker %s warmed up in %.2f s", worker.pid, seconds)
