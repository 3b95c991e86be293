"""Benchmark a drop: thousands of buyers reserve a small numbered run at the same moment, through the real web path.

    .venv/bin/python bench/drop.py                     # PostgreSQL at postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/drop.py --database-url sqlite
    .venv/bin/python bench/drop.py --race 300x50         # 300 buyers at once for 50 units

What it does, in order:
1. Makes a database of its own: a fresh schema `bench_<random>` in the PostgreSQL database (connections reach it
   through the URL's `options=-csearch_path=...`), or a fresh SQLite file. Tables come from the models.
2. Creates a release of `--units` units on sale now (real clock), and a second, large release for step 6.
3. Starts gunicorn itself on a free port of 127.0.0.1, with connection pools sized so that
   workers x (pool + overflow) stays under PostgreSQL's max_connections, and waits until it answers.
4. The page, timed (after a short untimed warm-up): every buyer GETs the release page for its session cookie and
   CSRF token (`page_rps`).
5. The drop, timed: all buyers are released at once and POST /releases/<slug>/reserve with `--concurrency`
   requests in flight, while the CPU time of gunicorn, PostgreSQL and the load generator is counted (Linux
   /proc). A hold answers 303 only once its Checkout Session exists on the Stripe simulator, which takes
   `--stripe-latency-ms` to create one, as Stripe does. Then gunicorn is stopped, a hello-world Flask view
   (bench/hello.py) is served on the same gunicorn settings and measured (`hello_rps`, `page_ratio`), the
   database is asked what happened (sold, oversold, duplicate numbers) and the invariant auditor runs.
6. The ceiling: the bare claim SQL (one unit, MATERIALIZED CTE with FOR UPDATE SKIP LOCKED, one claim = one
   transaction = one commit; BEGIN IMMEDIATE on SQLite) from the same number of client connections (fewer if
   max_connections would not allow it; the table says so), directly against the same database, for
   `--sql-seconds`. Those connections plan every claim afresh (plan_cache_mode=force_custom_plan): see
   --sql-plan-cache-mode for why.
7. EXPLAIN (ANALYZE, BUFFERS) of the shop's real claim query (captured from inventory.take_lowest) after those
   claims, and which plan PostgreSQL's plan cache settles on for it: the partial index ix_unit_available must
   carry it (../shared/PERFORMANCE.md, lesson 1).

It prints a short table and, as its last line, one JSON object. The load generator, gunicorn and the database
share this machine's CPUs: the figures are whole-box figures; compare the ratio, not absolute numbers.
This is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import math
import os
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
# A shop with more than one process counts its rate limits in Redis; the in-memory store is each process's own, and
# its expiry pass walks every key every 10 ms (a fifth of a worker's CPU at a 4,000-buyer drop, measured).
DEFAULT_LIMITS_STORAGE = "redis://127.0.0.1:6379/0"
HELLO_ROUNDS = 3

# Keys of the JSON line, in order. The first ones are the contract of issue 3; the rest describe the run.
JSON_KEYS = (
    "units",
    "buyers",
    "sold",
    "oversold",
    "duplicate_numbers",
    "errors",
    "reserve_rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "sql_limit_rps",
    "ratio",
    "workers",
    "threads",
    "concurrency",
    "database",
    "audit_violations",
    "hello_rps",
    "page_rps",
    "page_ratio",
    "time_to_sell_out_s",
    "stripe_latency_ms",
    "sessions_created",
    "thread_ceiling_rps",
    "page_p99_ms",
    "limits_storage",
    "winner_p50_ms",
    "winner_p99_ms",
    "refused_p50_ms",
    "refused_p99_ms",
    "worker_class",
    "pool_size",
    "max_overflow",
    "sql_clients",
    "sql_claims",
    "reserved",
    "refused",
    "status_counts",
    "reserve_seconds",
    "plan_uses_partial_index",
    "claim_plan",
    "cpus",
    "cpu_seconds",
    "reserves_per_cpu_second",
    "server_version",
)

# Connections the bench keeps for itself while gunicorn runs (set-up engine, admin connection) plus a margin.
BENCH_OWN_CONNECTIONS = 4
PER_CUSTOMER_LIMIT = 3
SIMULATOR_API_KEY = "sk_test_bench"
HTTP_TIMEOUT_SECONDS = 120
SQLITE_BUSY_TIMEOUT_SECONDS = 30

# The bare claim, as measured in PERFORMANCE.md: one unit, lowest number first, skipping rows others hold.
POSTGRES_CLAIM_SQL = """
WITH c AS MATERIALIZED (
  SELECT id FROM unit WHERE release_id = %s AND status = 'available'
  ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE unit u SET status = 'held', hold_id = %s, held_until = now() + interval '10 min'
FROM c WHERE u.id = c.id RETURNING u.number
"""
# SQLite has no row locks: BEGIN IMMEDIATE takes the database's one write lock, then the same update runs.
SQLITE_CLAIM_SQL = """
UPDATE unit SET status = 'held', hold_id = ?, held_until = ?
WHERE id = (SELECT id FROM unit WHERE release_id = ? AND status = 'available' ORDER BY number LIMIT 1)
RETURNING number
"""

CSRF_INPUT = re.compile(r"<input\b[^>]*\bname=[\"']csrf_token[\"'][^>]*>", re.IGNORECASE)
INPUT_VALUE = re.compile(r"\bvalue=[\"']([^\"']*)[\"']", re.IGNORECASE)
DRIVER_PARAMETER = re.compile(r"%\((\w+)\)s")


class BenchError(RuntimeError):
    """The bench cannot go on; the message says why and what to check."""


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- Options -------------------------------------------------------------------------------------------------


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


RACE = re.compile(r"(\d+)x(\d+)")


def race(raw: str) -> tuple[int, int]:
    """BUYERSxUNITS, e.g. 300x50: that many buyers at once for that many units."""
    match = RACE.fullmatch(raw.strip())
    if match is None or min(int(match.group(1)), int(match.group(2))) < 1:
        raise argparse.ArgumentTypeError(f"write BUYERSxUNITS, such as 300x50; got {raw!r}")
    return int(match.group(1)), int(match.group(2))


def positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/drop.py",
        description=(
            "Release --buyers buyers at once on a release of --units numbered units, through gunicorn and the real "
            "reserve form, then measure the bare claim SQL on the same database. Prints a table, then one JSON "
            "line. Load generator, gunicorn and database share this machine: compare ratios, not absolutes."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="PostgreSQL database to make a throw-away schema in; or 'sqlite' (a temporary file) or "
        "sqlite:///path/to/new.db (must not exist yet)",
    )
    parser.add_argument("--units", type=positive_int, default=240, help="numbered units in the drop")
    parser.add_argument("--buyers", type=positive_int, default=2000, help="buyers who try at the same moment")
    parser.add_argument("--concurrency", type=positive_int, default=64, help="requests in flight")
    parser.add_argument("--workers", type=positive_int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=positive_int, default=16, help="gunicorn threads per worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument(
        "--quantity-max",
        type=positive_int,
        default=2,
        help=f"each buyer asks for 1..N units (per-customer limit is {PER_CUSTOMER_LIMIT})",
    )
    parser.add_argument("--sql-seconds", type=positive_float, default=5.0, help="duration of the bare-SQL limit")
    parser.add_argument(
        "--sql-units",
        type=positive_int,
        default=None,
        help="units in the bare-SQL release (default: 20,000 per --sql-seconds, at least 10,000)",
    )
    parser.add_argument(
        "--sql-plan-cache-mode",
        choices=("force_custom_plan", "auto", "force_generic_plan"),
        default="force_custom_plan",
        help="PostgreSQL plan_cache_mode of the bare-SQL connections. With 'auto', psycopg's prepared claim can "
        "settle on a generic plan that walks the unique index past every held unit (PERFORMANCE.md, lesson 1) "
        "whenever the statistics say all units are available, as on a fresh database",
    )
    parser.add_argument(
        "--race",
        type=race,
        default=None,
        metavar="BUYERSxUNITS",
        help="shorthand for --buyers and --units, e.g. 300x50 (issue 12's first row: 300 buyers, 50 units)",
    )
    parser.add_argument(
        "--stripe-latency-ms",
        type=non_negative_int,
        default=300,
        help="how long the Stripe simulator takes to create a Checkout Session, as Stripe does (0: at once)",
    )
    parser.add_argument(
        "--hello-requests",
        type=positive_int,
        default=None,
        help="GETs of the hello-world yardstick on the same gunicorn settings (default: --buyers, at least 2,000)",
    )
    parser.add_argument(
        "--limits-storage",
        default=DEFAULT_LIMITS_STORAGE,
        help="where the shop counts its rate limits, as a real shop does: Redis (memory:// if it does not answer)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the buyers' quantities")
    parser.add_argument("--keep", action="store_true", help="keep the schema or SQLite file afterwards")
    arguments = parser.parse_args(argv)
    if arguments.quantity_max > PER_CUSTOMER_LIMIT:
        parser.error(f"--quantity-max cannot exceed the per-customer limit of {PER_CUSTOMER_LIMIT}")
    if arguments.race is not None:
        arguments.buyers, arguments.units = arguments.race
    if arguments.hello_requests is None:
        arguments.hello_requests = max(arguments.buyers, 2000)
    if arguments.sql_units is None:
        arguments.sql_units = max(10_000, math.ceil(20_000 * arguments.sql_seconds))
    return arguments


# --- The database under test ----------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq understands it (no `+driver`)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@dataclass
class Database:
    """Where this run's tables live: a schema of its own in PostgreSQL, or a SQLite file of its own."""

    kind: str
    url: str  # what the app gets as DATABASE_URL
    base_url: str = ""  # PostgreSQL: the database without the search_path option
    schema: str = ""
    sqlite_path: Path | None = None
    keep: bool = False

    @property
    def driver_url(self) -> str:
        return libpq_url(self.url)

    @classmethod
    def create(cls, raw_url: str, workdir: Path, keep: bool) -> Database:
        if raw_url.startswith("postgres"):
            base = libpq_url(raw_url)
            schema = f"bench_{secrets.token_hex(5)}"
            with admin_connection(base) as connection:
                connection.execute(f'CREATE SCHEMA "{schema}"')
            log(f"created schema {schema}")
            return cls("postgresql", with_search_path(base, schema), base_url=base, schema=schema, keep=keep)
        if raw_url in {"sqlite", "sqlite://", "sqlite:///"}:
            path = workdir / "drop.db"
        elif raw_url.startswith("sqlite:///"):
            path = Path(raw_url[len("sqlite:///") :]).resolve()
            if path.exists():
                raise BenchError(f"{path} exists: the bench wants a fresh SQLite file, name one that does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            raise BenchError(f"--database-url must be postgresql://... or sqlite..., got {raw_url!r}")
        if keep and path.parent == workdir:
            path = Path.cwd() / f"bench-{secrets.token_hex(4)}.db"
        return cls("sqlite", f"sqlite:///{path}", sqlite_path=path, keep=keep)

    def drop(self) -> None:
        if self.keep:
            log(f"kept {self.schema or self.sqlite_path} (--keep)")
            return
        if self.kind == "postgresql":
            with admin_connection(self.base_url) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            log(f"dropped schema {self.schema}")
        elif self.sqlite_path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)

    def connection_budget(self) -> tuple[int, int]:
        """PostgreSQL: (max_connections, connections still free for new clients right now)."""
        with admin_connection(self.base_url) as connection:
            max_connections, reserved, in_use = connection.execute(
                "SELECT current_setting('max_connections')::int,"
                " current_setting('superuser_reserved_connections')::int,"
                " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"
            ).fetchone()
        # This admin connection is counted in `in_use` but closes before anyone else connects.
        return max_connections, max_connections - reserved - in_use + 1

    def server_version(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        with admin_connection(self.base_url) as connection:
            return "PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0].split()[0]


def admin_connection(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


# --- The shop, in this process: schema, releases, truth after the run -----------------------------------------


def make_app(database: Database, instance_dir: Path):
    """The shop's app in this process, for set-up and for reading the outcome (never for serving)."""
    sys.path.insert(0, str(PROJECT_DIR))
    from storefront import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database.url,
            "UPLOAD_FOLDER": str(instance_dir / "uploads"),
            "DATABASE_POOL_SIZE": 2,
            "DATABASE_MAX_OVERFLOW": 0,
        }
    )


def create_release(session, database: Database, *, slug: str, units: int, limit: int) -> int:
    """A release of `units` available units, on sale since a minute ago; returns its id."""
    from sqlalchemy import text

    from storefront.clock import utcnow
    from storefront.models import Batch, BatchFact, Product, Release

    product = Product(slug=f"{slug}-product", name="Bench Rye", category="spirits")
    batch = Batch(
        product=product,
        code=f"B-{slug}"[:40],
        slug=f"{slug}-batch",
        title=f"Bench batch {slug}",
        produced_on=date.today(),
        summary="Made by bench/drop.py.",
        story_markdown="A release made by the benchmark.",
        facts=[BatchFact(position=0, label="Cask", value="Ex-bourbon, first fill")],
    )
    release = Release(
        batch=batch,
        slug=slug,
        title=f"Bench run of {units}",
        price_amount=8900,
        currency="EUR",
        total_units=units,
        on_sale_at=utcnow() - timedelta(minutes=1),
        per_customer_limit=limit,
        allow_number_choice=False,
    )
    session.add(release)
    session.flush()
    if database.kind == "postgresql":
        statement = (
            "INSERT INTO unit (release_id, number, status)"
            " SELECT :release_id, g, 'available' FROM generate_series(1, :units) AS g"
        )
    else:
        statement = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :units)"
            " INSERT INTO unit (release_id, number, status) SELECT :release_id, n, 'available' FROM g"
        )
    session.execute(text(statement), {"release_id": release.id, "units": units})
    session.commit()
    return release.id


def analyze(session) -> None:
    """Fresh planner statistics, as autovacuum would have them for units created before the drop."""
    from sqlalchemy import text

    session.execute(text("ANALYZE unit, hold, release"))  # only our tables: never lock other schemas
    session.commit()


@dataclass
class Truth:
    claimed: int  # units held or sold in the drop release
    live_hold_quantity: int  # what the live holds say they hold
    duplicate_numbers: int
    audit: list[str]


def read_truth(app, release_id: int) -> Truth:
    """Ask the database what the drop did; run the auditor."""
    from sqlalchemy import text

    from storefront.clock import utcnow
    from storefront.domain.audit import audit
    from storefront.extensions import db

    with app.app_context():
        session = db.session
        claimed = session.scalar(
            text("SELECT count(*) FROM unit WHERE release_id = :r AND status IN ('held', 'sold')"), {"r": release_id}
        )
        live = session.scalar(
            text("SELECT coalesce(sum(quantity), 0) FROM hold WHERE release_id = :r AND status = 'active'"),
            {"r": release_id},
        )
        # A number is duplicated if two unit rows carry it, or if its unit sits in one hold and another's order.
        duplicated_rows = session.scalar(
            text(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM unit WHERE release_id = :r"
                " GROUP BY number HAVING count(*) > 1) AS d"
            ),
            {"r": release_id},
        )
        crossed = session.scalar(
            text(
                'SELECT count(*) FROM unit JOIN "order" o ON o.id = unit.order_id WHERE unit.release_id = :r'
                " AND unit.hold_id IS NOT NULL AND o.hold_id IS NOT NULL AND o.hold_id <> unit.hold_id"
            ),
            {"r": release_id},
        )
        problems = audit(session, utcnow())
        session.rollback()
    return Truth(int(claimed), int(live), int(duplicated_rows) + int(crossed), problems)


# --- gunicorn -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_command(arguments: argparse.Namespace, port: int, application: str = "wsgi:app") -> list[str]:
    """gunicorn with the run's worker settings; `hello:app` is the yardstick in bench/ (bench/hello.py)."""
    executable = Path(sys.executable).parent / "gunicorn"
    launcher = [str(executable)] if executable.exists() else [sys.executable, "-m", "gunicorn"]
    return [
        *launcher,
        # The project's own settings (gunicorn.conf.py: warm-up, pool sizing and its check); the run's own
        # options below override what they name.
        "--config",
        str(PROJECT_DIR / "gunicorn.conf.py"),
        "--workers",
        str(arguments.workers),
        "--worker-class",
        arguments.worker_class,
        "--threads",
        str(arguments.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "10",
        "--pythonpath",
        str(PROJECT_DIR / "bench"),
        application,
    ]


class Service:
    """A server the bench starts (gunicorn, the Stripe simulator), in a process group of its own."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self, probe_path: str, ready_statuses: tuple[int, ...], timeout: float = 60.0) -> None:
        log(f"starting {self.name}: {Path(self.command[0]).name} {' '.join(self.command[1:])}")
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", probe_path)
                status = connection.getresponse().status
                connection.close()
                if status in ready_statuses:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer {probe_path} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within 20 s; killing its process group")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {self.name} log)"


def set_stripe_latency(simulator_port: int, milliseconds: int) -> None:
    """Make the simulator take `milliseconds` to create every Checkout Session, as Stripe's API does."""
    if milliseconds <= 0:
        return
    spec = {"method": "POST", "path": "/v1/checkout/sessions", "delay_seconds": milliseconds / 1000, "count": None}
    connection = http.client.HTTPConnection("127.0.0.1", simulator_port, timeout=10)
    try:
        connection.request("POST", "/_sim/faults", body=json.dumps(spec), headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise BenchError(f"the simulator refused the latency setting ({response.status}): {answer[:300]!r}")


def stripe_simulator_command(port: int, shop_port: int, webhook_secret: str) -> list[str]:
    """The shop's own Stripe simulator: every successful reservation opens a Checkout Session on it."""
    from storefront.devserver import simulator_command

    webhook_url = f"http://127.0.0.1:{shop_port}/stripe/webhook"
    return simulator_command(port, webhook_url, webhook_secret, api_key=SIMULATOR_API_KEY)


# --- Where the CPU time goes -----------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_table() -> dict[int, tuple[int, str, float]]:
    """Every visible process: pid -> (parent pid, command name, CPU seconds used so far). Linux only; else {}."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def machine_ticks() -> tuple[int, int, int]:
    """CPU ticks of the whole machine since boot, from /proc/stat: (processes, busy, total); zeros where none.

    `processes` is user + nice + system time, what processes are charged; `busy` adds interrupts and steal.
    """
    try:
        values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return 0, 0, 0
    idle = values[3] + values[4]
    return values[0] + values[1] + values[2], sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds that each service, PostgreSQL (when local) and the load generator use from start() to stop()."""

    def __init__(self, services: dict[str, int], postgres: bool) -> None:
        self.services = services  # name -> pid of a process the bench started; its children count with it
        self.postgres = postgres  # SQLite runs inside gunicorn's processes: there is no database process

    def groups(self) -> dict[str, float]:
        table = process_table()
        owner = {}
        for name, root in self.services.items():
            owner[root] = name
            owner.update({pid: name for pid, (parent, _, _) in table.items() if parent == root})
        used = dict.fromkeys([*self.services, *(["database"] if self.postgres else [])], 0.0)
        for pid, (_, command, seconds) in table.items():
            if pid in owner:
                used[owner[pid]] += seconds
            elif self.postgres and command.startswith("postgres"):
                used["database"] += seconds
        times = os.times()
        used["load_generator"] = times.user + times.system
        return used

    def start(self) -> None:
        self.before = self.groups()
        self.ticks_before = machine_ticks()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        after = self.groups()
        processes, busy, total = machine_ticks()
        wall = time.perf_counter() - self.started
        # A process that exits between the two readings takes its CPU time with it: never report less than 0.
        report: dict[str, Any] = {name: round(max(0.0, after[name] - self.before[name]), 2) for name in after}
        report["wall"] = round(wall, 2)
        processes_before, busy_before, total_before = self.ticks_before
        if total > total_before:
            report["busy_pct"] = round(100 * (busy - busy_before) / (total - total_before), 1)
            # Anything else running on the machine (another test suite...) takes CPU from the run: say how much.
            charged = (processes - processes_before) / CLOCK_TICKS
            report["other"] = round(max(0.0, charged - sum(after[name] - self.before[name] for name in after)), 2)
        return report


def pool_sizes(database: Database, workers: int, threads: int) -> tuple[int, int]:
    """Pool and overflow per gunicorn worker, so workers x (pool + overflow) fits in max_connections."""
    if database.kind != "postgresql":
        return 5, 10  # SQLAlchemy's defaults; SQLite has no connection limit
    max_connections, free = database.connection_budget()
    per_worker = (free - BENCH_OWN_CONNECTIONS) // workers
    if per_worker < 1:
        raise BenchError(
            f"PostgreSQL has {free} of {max_connections} connections free: not enough for {workers} workers"
        )
    # A gthread worker runs at most `threads` requests at once, each with at most one connection.
    pool = min(threads, per_worker)
    overflow = min(max(per_worker - pool, 0), 2)
    if pool < threads:
        log(f"pool capped at {pool} per worker (threads {threads}): {free} connections free of {max_connections}")
    return pool, overflow


# --- The load generator ---------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection; a stale keep-alive connection is reopened once, a fresh one never."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        for attempt in (1, 2):
            fresh = self.connection is None
            if fresh:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_SECONDS)
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                # The server closed an idle keep-alive connection before reading this request: safe to resend.
                if fresh or attempt == 2:
                    raise
                self.reconnects += 1
                continue
            if response.will_close:
                self.close()
            return response, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass
class Buyer:
    email: str
    quantity: int
    address: str = "127.0.0.1"  # the client address the shop sees (X-Forwarded-For through PROXY_FIX)
    cookie: str = ""
    csrf_token: str = ""


@dataclass
class Outcome:
    status: int | None  # None: no HTTP answer (an exception)
    milliseconds: float
    finished_at: float
    quantity: int
    detail: str = ""
    location: str = ""  # where a 303 sends the buyer: the simulator's pay page once the session exists


def run_in_threads(port: int, count: int, work, items: list) -> None:
    """Run `work(client, item)` over `items` from `count` threads, each with its own connection."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    failures: list[BaseException] = []

    def worker(client: Client) -> None:
        try:
            while not failures:  # one failure stops every thread: the run cannot go on
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                work(client, item)
        except BaseException as error:
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(Client(port),), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def warm_up(port: int, path: str, requests: int, concurrency: int) -> None:
    """GET `path` a few times from every connection, untimed: workers import lazily and fill their caches."""

    def visit(client: Client, _index: int) -> None:
        response, _ = client.request("GET", path)
        if response.status != 200:
            raise BenchError(f"GET {path} answered {response.status} during the warm-up")

    run_in_threads(port, min(concurrency, requests), visit, list(range(requests)))


@dataclass
class Phase:
    """A timed phase of GETs: how many, over how long, and each one's time."""

    requests: int
    seconds: float
    milliseconds: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def timed_gets(port: int, items: list, concurrency: int, visit) -> Phase:
    """Run `visit(client, item)` (one GET each) over `items` from `concurrency` connections, timing each."""
    times: list[float] = []

    def timed(client: Client, item) -> None:
        started = time.perf_counter()
        visit(client, item)
        times.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    run_in_threads(port, min(concurrency, len(items)), timed, items)
    return Phase(len(items), time.perf_counter() - started, sorted(times))


def hello_phase(port: int, requests: int, concurrency: int) -> Phase:
    """GET the hello-world view `requests` times: the ceiling of a Flask view on these gunicorn settings."""

    def visit(client: Client, _index: int) -> None:
        response, _ = client.request("GET", "/")
        if response.status != 200:
            raise BenchError(f"the hello-world view answered {response.status}")

    return timed_gets(port, list(range(requests)), concurrency, visit)


def page_phase(port: int, buyers: list[Buyer], release_path: str, concurrency: int) -> Phase:
    """Every buyer opens the release page, timed: its session cookie and CSRF token come from there."""

    def visit(client: Client, buyer: Buyer) -> None:
        response, body = client.request("GET", release_path, headers={"X-Forwarded-For": buyer.address})
        if response.status != 200:
            raise BenchError(f"GET {release_path} answered {response.status}")
        cookies = [header.split(";", 1)[0] for header in response.headers.get_all("Set-Cookie") or []]
        token_input = CSRF_INPUT.search(body.decode("utf-8", errors="replace"))
        value = INPUT_VALUE.search(token_input.group(0)) if token_input else None
        if not cookies or value is None:
            raise BenchError(
                f"GET {release_path} has no reserve form with a csrf_token (or set no session cookie): "
                "is POST /releases/<slug>/reserve in place yet?"
            )
        buyer.cookie = "; ".join(cookies)
        buyer.csrf_token = html.unescape(value.group(1))

    return timed_gets(port, buyers, concurrency, visit)


def drop(
    port: int, buyers: list[Buyer], reserve_path: str, concurrency: int, meter: CpuMeter
) -> tuple[list[Outcome], float, int, dict, float]:
    """Release every buyer at once; return each POST's outcome, the wall time of the phase, reconnects, the CPU
    used, and when the phase started (perf_counter)."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for buyer in buyers:
        pending.put(buyer)
    outcomes: list[Outcome] = []
    clients = [Client(port) for _ in range(min(concurrency, len(buyers)))]
    ready = threading.Barrier(len(clients) + 1)
    go = threading.Event()

    def post(client: Client) -> None:
        ready.wait()
        go.wait()
        try:
            while True:
                try:
                    buyer = pending.get_nowait()
                except queue.Empty:
                    return
                body = urlencode({"csrf_token": buyer.csrf_token, "quantity": buyer.quantity, "email": buyer.email})
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": buyer.cookie,
                    "X-Forwarded-For": buyer.address,
                }
                started = time.perf_counter()
                location = ""
                try:
                    response, data = client.request("POST", reserve_path, body=body, headers=headers)
                    status, detail = response.status, ""
                    location = response.headers.get("Location", "")
                    if status not in (303, 409):
                        detail = page_problem(data)
                except Exception as error:
                    status, detail = None, repr(error)
                finished = time.perf_counter()
                milliseconds = (finished - started) * 1000
                outcomes.append(Outcome(status, milliseconds, finished, buyer.quantity, detail, location))
        finally:
            client.close()

    threads = [threading.Thread(target=post, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    ready.wait()
    meter.start()
    started = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    cpu = meter.stop()
    wall = max(outcome.finished_at for outcome in outcomes) - started
    return outcomes, wall, sum(client.reconnects for client in clients), cpu, started


def time_to_sell_out(outcomes: list[Outcome], started: float, units: int) -> float | None:
    """Seconds from the start of the drop until the answers given had promised every unit; None if they never did."""
    promised = 0
    for outcome in sorted((outcome for outcome in outcomes if outcome.status == 303), key=lambda o: o.finished_at):
        promised += outcome.quantity
        if promised >= units:
            return outcome.finished_at - started
    return None


def page_problem(body: bytes) -> str:
    """The gist of an error page: the text of its alert (a form problem), else of its main heading."""
    page = body.decode("utf-8", errors="replace")
    start = max(page.find('role="alert"'), page.find("<h1"), 0)
    text = re.sub(r"<[^>]+>", " ", page[start : start + 2000])
    return " ".join(html.unescape(text).split())[:300]


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- The ceiling: the bare claim SQL --------------------------------------------------------------------------


@dataclass
class SqlLimit:
    clients: int
    claims: int
    seconds: float
    drained: bool
    errors: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.claims / self.seconds if self.seconds > 0 else 0.0


def make_claim_holds(app, release_id: int, count: int) -> list[int]:
    """One hold per client connection for the bare claims to point at (the unit's hold_id is a foreign key)."""
    from storefront.clock import utcnow
    from storefront.extensions import db
    from storefront.models import Hold, HoldStatus

    now = utcnow()
    with app.app_context():
        holds = [
            Hold(
                release_id=release_id,
                buyer_email=f"sql-client-{index}@bench.example.com",
                buyer_key=f"sql-client-{index}@bench.example.com",
                quantity=1,
                status=HoldStatus.ACTIVE,
                created_at=now,
                expires_at=now + timedelta(hours=1),
            )
            for index in range(count)
        ]
        db.session.add_all(holds)
        db.session.commit()
        return [hold.id for hold in holds]


def settle_claim_holds(app, release_id: int) -> None:
    """Make the bare-SQL holds consistent with the units they got, so a kept database audits clean."""
    from sqlalchemy import text

    from storefront.extensions import db

    with app.app_context():
        count = "(SELECT count(*) FROM unit WHERE unit.hold_id = hold.id)"
        db.session.execute(
            text(f"DELETE FROM hold WHERE release_id = :r AND {count} = 0"),
            {"r": release_id},
        )
        db.session.execute(text(f"UPDATE hold SET quantity = {count} WHERE release_id = :r"), {"r": release_id})
        db.session.commit()


def measure_sql_limit(
    database: Database, release_id: int, hold_ids: list[int], seconds: float, plan_cache_mode: str
) -> SqlLimit:
    """Claim one unit per transaction from every connection at once until time is up or the units run out."""
    clients = len(hold_ids)
    connections = [open_claim_connection(database, plan_cache_mode) for _ in range(clients)]
    counts = [0] * clients
    ended = [0.0] * clients
    errors: list[str] = []
    drained = threading.Event()
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    deadline_holder = [0.0]

    def loop(index: int) -> None:
        connection = connections[index]
        claim = claim_function(database, connection, release_id, hold_ids[index])
        ready.wait()
        go.wait()
        deadline = deadline_holder[0]
        claims = 0
        try:
            while time.perf_counter() < deadline and not drained.is_set():
                if claim():
                    claims += 1
                else:
                    drained.set()
        except Exception as error:
            errors.append(repr(error))
        finally:
            counts[index] = claims
            ended[index] = time.perf_counter()
            connection.close()

    threads = [threading.Thread(target=loop, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    deadline_holder[0] = started + seconds
    go.set()
    for thread in threads:
        thread.join()
    return SqlLimit(clients, sum(counts), max(ended) - started, drained.is_set(), errors)


def open_claim_connection(database: Database, plan_cache_mode: str):
    if database.kind == "postgresql":
        import psycopg

        connection = psycopg.connect(database.driver_url)
        connection.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        connection.commit()
        return connection
    connection = sqlite3.connect(
        database.sqlite_path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    # The same settings the shop's engine uses (storefront/database.py).
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def claim_function(database: Database, connection, release_id: int, hold_id: int):
    """A function that claims one unit in one transaction and commits; returns False when none is left."""
    if database.kind == "postgresql":

        def claim_postgresql() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(POSTGRES_CLAIM_SQL, (release_id, hold_id))
                row = cursor.fetchone()
            connection.commit()
            return row is not None

        return claim_postgresql

    def claim_sqlite() -> bool:
        held_until = (datetime.now(UTC) + timedelta(minutes=10)).replace(tzinfo=None).isoformat(sep=" ")
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = connection.execute(SQLITE_CLAIM_SQL, (hold_id, held_until, release_id)).fetchall()
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return bool(rows)

    return claim_sqlite


# --- The plan of the shop's real claim query ------------------------------------------------------------------


@dataclass
class Plan:
    title: str
    lines: list[str]
    runs: bool = True  # False: shown for information, not the plan the shop's connections execute

    @property
    def uses_partial_index(self) -> bool:
        return any("ix_unit_available" in line for line in self.lines)


@dataclass
class ClaimPlans:
    plans: list[Plan]
    # PostgreSQL: which plan the plan cache settles on for the claim statement on a long-lived connection,
    # after psycopg has prepared it ("custom" or "generic"), as counted in pg_prepared_statements.
    cache_choice: str = ""

    @property
    def uses_partial_index(self) -> bool:
        executed = [plan for plan in self.plans if plan.runs]
        return bool(executed) and all(plan.uses_partial_index for plan in executed)


# Executions of the claim statement before reading the plan cache's choice: psycopg prepares a statement on its
# 5th execution, and PostgreSQL weighs a generic plan against custom ones after 5 executions of a prepared one.
PLAN_CACHE_PROBES = 15


def explain_real_claim(app, database: Database, release_id: int) -> ClaimPlans:
    """Run the shop's own claim (inventory.take_lowest) once, capture its SQL, and EXPLAIN it; all rolled back.

    On PostgreSQL: the plan for these parameter values, which plan the plan cache settles on when a pooled
    connection runs the statement again and again (as gunicorn's do), and, for information, the generic plan.
    """
    from sqlalchemy import event

    from storefront.clock import utcnow
    from storefront.database import SQLITE_IMMEDIATE
    from storefront.domain.inventory import take_lowest
    from storefront.extensions import db
    from storefront.models import Hold, HoldStatus

    captured: list[tuple[str, Any]] = []

    def capture(_connection, _cursor, statement, parameters, _context, _executemany) -> None:
        if "candidates" in statement and not captured:
            captured.append((statement, parameters))

    now = utcnow()
    result = ClaimPlans([])
    with app.app_context():
        session = db.session
        engine = db.engine
        try:
            # The claim's own locking, as write_transaction begins it; rolled back below instead of committed.
            session.connection(execution_options={SQLITE_IMMEDIATE: database.kind == "sqlite"})
            hold = Hold(
                release_id=release_id,
                buyer_email="explain@bench.example.com",
                buyer_key="explain@bench.example.com",
                quantity=PLAN_CACHE_PROBES + 2,
                status=HoldStatus.ACTIVE,
                created_at=now,
                expires_at=now + timedelta(minutes=10),
            )
            session.add(hold)
            session.flush()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                take_lowest(session, release_id, 1, hold)
            finally:
                event.remove(engine, "before_cursor_execute", capture)
            if not captured:
                raise BenchError("could not capture the claim statement of inventory.take_lowest")
            statement, parameters = captured[0]
            connection = session.connection()
            if database.kind == "postgresql":
                rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                result.plans.append(Plan("custom plan (these parameter values)", [row[0] for row in rows]))
                result.cache_choice = plan_cache_choice(connection, statement, parameters)
                generic = explain_generic(connection, statement, parameters)
                result.plans.append(Plan("generic plan (forced)", generic, runs=result.cache_choice == "generic"))
            else:
                rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                result.plans.append(Plan("SQLite query plan", [row[-1] for row in rows]))
        finally:
            session.rollback()
            session.remove()
    return result


def plan_cache_choice(connection, statement: str, parameters: dict) -> str:
    """Run the statement prepared, as a pooled connection does all drop long; say which plan PostgreSQL chose."""
    raw = connection.connection.dbapi_connection
    for _ in range(PLAN_CACHE_PROBES):
        raw.execute(statement, parameters, prepare=True).fetchall()
    row = raw.execute(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE '%candidates%' ORDER BY generic_plans + custom_plans DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return "unknown"
    generic_plans, custom_plans = row
    log(f"plan cache, claim statement run {PLAN_CACHE_PROBES} times: {generic_plans} generic, {custom_plans} custom")
    return "generic" if generic_plans > 0 else "custom"


def explain_generic(connection, statement: str, parameters: dict) -> list[str]:
    """EXPLAIN ANALYZE the statement as a prepared statement forced onto its generic plan."""
    from psycopg import sql

    names: list[str] = []

    def positional(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = DRIVER_PARAMETER.sub(positional, statement)
    raw = connection.connection.dbapi_connection
    values = [str(parameters[name]) if isinstance(parameters[name], str) else parameters[name] for name in names]
    arguments = ", ".join(sql.Literal(value).as_string(raw) for value in values)
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    connection.exec_driver_sql(f"PREPARE bench_claim AS {prepared}")
    explain = f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim({arguments})"
    lines = [row[0] for row in connection.exec_driver_sql(explain)]
    connection.exec_driver_sql("DEALLOCATE bench_claim")
    return lines


# --- The run --------------------------------------------------------------------------------------------------


def make_buyers(count: int, quantity_max: int, seed: int) -> list[Buyer]:
    chooser = random.Random(seed)
    return [
        Buyer(f"buyer-{index}@bench.example.com", chooser.randint(1, quantity_max), buyer_address(index))
        for index in range(count)
    ]


def buyer_address(index: int) -> str:
    """Each buyer's own IPv4 address in 10.0.0.0/8, so the shop's per-client limits count them as they would."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


def limits_storage(url: str) -> str:
    """The rate-limit storage to run the shop with: `url` if it answers (Redis), else each process's memory."""
    if not url.startswith(("redis://", "rediss://")):
        return url
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as error:
        log(f"rate limits: {url} does not answer ({error}); counting in each process's memory instead")
        return "memory://"
    return url


def shop_environment(
    database: Database,
    instance_dir: Path,
    pool: int,
    overflow: int,
    port: int,
    simulator_port: int,
    limits_url: str = "memory://",
) -> dict[str, str]:
    """The environment of gunicorn and the simulator: this run's database, pools, and test payments only."""
    env = dict(os.environ)
    env.update(
        {
            # Whatever keys this shell has, the bench pays through the simulator, never through Stripe.
            "STRIPE_SECRET_KEY": SIMULATOR_API_KEY,
            "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
            "STRIPE_API_BASE": f"http://127.0.0.1:{simulator_port}",
            "SHOP_URL": f"http://127.0.0.1:{port}",
            "DATABASE_URL": database.url,
            "SECRET_KEY": secrets.token_hex(32),  # one key for every worker, so any worker accepts any token
            "STOREFRONT_ENV": "development",
            "DATABASE_POOL_SIZE": str(pool),
            "DATABASE_MAX_OVERFLOW": str(overflow),
            "INSTANCE_PATH": str(instance_dir),
            "UPLOAD_FOLDER": str(instance_dir / "uploads"),
            "PYTHONUNBUFFERED": "1",
            # Buyers all connect from 127.0.0.1 here, each naming their own address in X-Forwarded-For as a load
            # balancer would: the reserve limits (their defaults, 60 a minute per client, 10 per buyer) count each
            # buyer apart, as in a real drop, and cost what they cost there.
            "PROXY_FIX": "1",
            "RATELIMIT_STORAGE_URI": limits_url,
            # This run's own counters, whatever else the Redis holds.
            "RATELIMIT_KEY_PREFIX": f"bench-{secrets.token_hex(4)}",
        }
    )
    return env


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="smallbatch-bench-"))
    instance_dir = workdir / "instance"
    instance_dir.mkdir()
    # Read by config.py when it is imported: no development key file is written into the project's instance/.
    os.environ["INSTANCE_PATH"] = str(instance_dir)
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))
    os.environ["STOREFRONT_ENV"] = "development"

    database = Database.create(arguments.database_url, workdir, arguments.keep)
    gunicorn: Service | None = None
    simulator: Service | None = None
    app = None
    try:
        app = make_app(database, instance_dir)
        from storefront.extensions import db

        suffix = secrets.token_hex(3)
        with app.app_context():
            db.create_all()
            drop_release = create_release(
                db.session, database, slug=f"bench-drop-{suffix}", units=arguments.units, limit=PER_CUSTOMER_LIMIT
            )
            sql_release = create_release(
                db.session,
                database,
                slug=f"bench-sql-{suffix}",
                units=arguments.sql_units,
                limit=arguments.sql_units,
            )
            if database.kind == "postgresql":
                analyze(db.session)
            db.session.remove()
            db.engine.dispose()
        release_path = f"/releases/bench-drop-{suffix}"
        log(f"release of {arguments.units} units at {release_path}; {arguments.sql_units} units for the SQL limit")

        pool, overflow = pool_sizes(database, arguments.workers, arguments.threads)
        port, simulator_port = free_port(), free_port()
        limits_url = limits_storage(arguments.limits_storage)
        env = shop_environment(database, instance_dir, pool, overflow, port, simulator_port, limits_url)
        simulator = Service(
            "the Stripe simulator",
            stripe_simulator_command(simulator_port, port, env["STRIPE_WEBHOOK_SECRET"]),
            env,
            workdir / "stripe-sim.log",
            simulator_port,
        )
        simulator.start("/", ready_statuses=tuple(range(200, 500)))
        set_stripe_latency(simulator_port, arguments.stripe_latency_ms)
        gunicorn = Service("gunicorn", gunicorn_command(arguments, port), env, workdir / "gunicorn.log", port)
        gunicorn.start(release_path, ready_statuses=(200,))

        buyers = make_buyers(arguments.buyers, arguments.quantity_max, arguments.seed)
        warm_up(port, release_path, 2 * arguments.concurrency, arguments.concurrency)
        log(f"page: {len(buyers)} buyers open the release page for a session and a CSRF token (timed)")
        pages = page_phase(port, buyers, release_path, arguments.concurrency)
        log(f"page phase took {pages.seconds:.1f} s ({pages.rps:.0f} GET/s); releasing every buyer at once")
        meter = CpuMeter(
            {"gunicorn": gunicorn.process.pid, "payments": simulator.process.pid}, database.kind == "postgresql"
        )
        outcomes, wall, reconnects, cpu, drop_started = drop(
            port, buyers, release_path + "/reserve", arguments.concurrency, meter
        )
        gunicorn.stop()
        simulator.stop()
        server_log = gunicorn.log_tail(15)

        # The yardstick, on the same gunicorn settings, once the shop has stopped: a hello-world Flask view.
        hello_port = free_port()
        hello = Service(
            "hello-world gunicorn",
            gunicorn_command(arguments, hello_port, "hello:app"),
            env,
            workdir / "hello.log",
            hello_port,
        )
        gunicorn = hello  # stopped in `finally` like the shop's
        hello.start("/", ready_statuses=(200,))
        warm_up(hello_port, "/", 2 * arguments.concurrency, arguments.concurrency)
        # The best of a few rounds: the yardstick is what the machine can do, and a round slowed by something else
        # (PostgreSQL vacuuming after the drop) would flatter the page's ratio.
        rounds = [hello_phase(hello_port, arguments.hello_requests, arguments.concurrency) for _ in range(HELLO_ROUNDS)]
        hello.stop()
        hellos = max(rounds, key=lambda phase: phase.rps)
        log(
            f"hello-world: {HELLO_ROUNDS} rounds of {hellos.requests} GETs: "
            + ", ".join(f"{phase.rps:.0f}" for phase in rounds)
            + f" GET/s; the best, {hellos.rps:.0f}, is the yardstick"
        )

        truth = read_truth(app, drop_release)

        with app.app_context():
            db.engine.dispose()
        if database.kind == "postgresql":
            _, free = database.connection_budget()
            sql_clients = max(1, min(arguments.concurrency, free - BENCH_OWN_CONNECTIONS))
        else:
            sql_clients = arguments.concurrency
        if sql_clients < arguments.concurrency:
            log(f"bare-SQL clients capped at {sql_clients} (max_connections); asked for {arguments.concurrency}")
        hold_ids = make_claim_holds(app, sql_release, sql_clients)
        with app.app_context():
            db.engine.dispose()
        log(f"bare claim SQL: {sql_clients} connections for {arguments.sql_seconds:g} s")
        limit = measure_sql_limit(database, sql_release, hold_ids, arguments.sql_seconds, arguments.sql_plan_cache_mode)
        plans = explain_real_claim(app, database, sql_release)
        settle_claim_holds(app, sql_release)
        server_version = database.server_version()
    finally:
        for service in (gunicorn, simulator):
            if service is not None:
                service.stop()
        if app is not None:
            from storefront.extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        try:
            database.drop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    statuses = Counter("exception" if outcome.status is None else str(outcome.status) for outcome in outcomes)
    failed = [outcome for outcome in outcomes if outcome.status not in (303, 409)]
    granted = sum(outcome.quantity for outcome in outcomes if outcome.status == 303)
    latencies = sorted(outcome.milliseconds for outcome in outcomes)
    winner_latencies = sorted(outcome.milliseconds for outcome in outcomes if outcome.status == 303)
    refused_latencies = sorted(outcome.milliseconds for outcome in outcomes if outcome.status == 409)
    reserve_rps = len(outcomes) / wall if wall > 0 else 0.0
    pay_page = f"http://127.0.0.1:{simulator_port}/"
    sold_out_after = time_to_sell_out(outcomes, drop_started, arguments.units)
    result = {
        "units": arguments.units,
        "buyers": arguments.buyers,
        "sold": truth.claimed,
        # The run is oversold if the unit rows, the live holds or the answers given promise more than exist.
        "oversold": max(0, max(truth.claimed, truth.live_hold_quantity, granted) - arguments.units),
        "duplicate_numbers": truth.duplicate_numbers,
        "errors": len(failed),
        "reserve_rps": round(reserve_rps, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "sql_limit_rps": round(limit.rps, 1),
        "ratio": round(reserve_rps / limit.rps, 3) if limit.rps else None,
        "workers": arguments.workers,
        "threads": arguments.threads,
        "concurrency": arguments.concurrency,
        "database": database.kind,
        "audit_violations": len(truth.audit),
        "hello_rps": round(hellos.rps, 1),
        "page_rps": round(pages.rps, 1),
        "page_ratio": round(pages.rps / hellos.rps, 3) if hellos.rps else None,
        "time_to_sell_out_s": round(sold_out_after, 3) if sold_out_after is not None else None,
        "stripe_latency_ms": arguments.stripe_latency_ms,
        # A 303 to the simulator's pay page: the claim committed and the Checkout Session exists.
        "sessions_created": sum(1 for o in outcomes if o.status == 303 and o.location.startswith(pay_page)),
        # What the threads could do if every request only waited on Stripe: threads x workers / latency.
        "thread_ceiling_rps": round(arguments.workers * arguments.threads * 1000 / arguments.stripe_latency_ms, 1)
        if arguments.stripe_latency_ms
        else None,
        "page_p99_ms": round(percentile(pages.milliseconds, 99), 1),
        "limits_storage": limits_url.split(":", 1)[0],
        # Winners wait on Stripe; the refused should not wait behind them.
        "winner_p50_ms": round(percentile(winner_latencies, 50), 1),
        "winner_p99_ms": round(percentile(winner_latencies, 99), 1),
        "refused_p50_ms": round(percentile(refused_latencies, 50), 1),
        "refused_p99_ms": round(percentile(refused_latencies, 99), 1),
        "worker_class": arguments.worker_class,
        "pool_size": pool,
        "max_overflow": overflow,
        "sql_clients": limit.clients,
        "sql_claims": limit.claims,
        "reserved": statuses.get("303", 0),
        "refused": statuses.get("409", 0),
        "status_counts": dict(sorted(statuses.items())),
        "reserve_seconds": round(wall, 3),
        "plan_uses_partial_index": plans.uses_partial_index,
        "claim_plan": plans.cache_choice or None,
        "cpus": os.cpu_count(),
        "cpu_seconds": cpu,
        # Robust to a shared machine: reservations per CPU second spent by the stack (all but `other`).
        "reserves_per_cpu_second": round(len(outcomes) / stack_seconds, 1)
        if (stack_seconds := stack_cpu(cpu))
        else None,
        "server_version": server_version,
    }
    print_table(arguments, result, truth, limit, plans, failed, reconnects, server_log)
    return result


def stack_cpu(cpu: dict[str, Any]) -> float:
    """CPU seconds the drop's own processes used: gunicorn, simulator, database, load generator."""
    return sum(cpu.get(name, 0.0) for name in ("gunicorn", "payments", "database", "load_generator"))


def print_table(
    arguments, result, truth: Truth, limit: SqlLimit, plans: ClaimPlans, failed, reconnects, server_log
) -> None:
    out = sys.stdout
    width = 24

    def row(label: str, value: str) -> None:
        print(f"  {label:<{width}} {value}", file=out)

    print(f"Drop bench: {result['server_version']}, {result['cpus']} CPUs", file=out)
    row(
        "gunicorn",
        f"{arguments.workers} x {arguments.worker_class} x {arguments.threads} threads, "
        f"pool {result['pool_size']} + overflow {result['max_overflow']} per worker",
    )
    row("drop", f"{arguments.units} units, {arguments.buyers} buyers asking 1..{arguments.quantity_max} each")
    row("in flight", f"{arguments.concurrency} requests")
    row("Stripe latency", f"{arguments.stripe_latency_ms} ms per Checkout Session (simulator)")
    row(
        "release page GETs",
        f"{result['page_rps']:,.1f} req/s (p99 {result['page_p99_ms']} ms); hello-world view "
        f"{result['hello_rps']:,.1f} req/s; page ratio {result['page_ratio']}",
    )
    row(
        "reserve POSTs",
        f"{result['reserve_rps']:,.1f} req/s ({arguments.buyers} in {result['reserve_seconds']:.2f} s)",
    )
    row("latency", f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms")
    row(
        "  of which",
        f"held p50 {result['winner_p50_ms']} / p99 {result['winner_p99_ms']} ms, "
        f"refused p50 {result['refused_p50_ms']} / p99 {result['refused_p99_ms']} ms",
    )
    row(
        "sold out after",
        "never" if result["time_to_sell_out_s"] is None else f"{result['time_to_sell_out_s']} s",
    )
    row("Checkout Sessions", f"{result['sessions_created']} created (303 to the simulator's pay page)")
    row("answers", ", ".join(f"{status} x {count}" for status, count in result["status_counts"].items()))
    if reconnects:
        row("keep-alive reconnects", str(reconnects))
    row("sold or held", f"{result['sold']} of {arguments.units} (live holds say {truth.live_hold_quantity})")
    row("oversold", str(result["oversold"]))
    row("duplicate numbers", str(result["duplicate_numbers"]))
    row("errors", str(result["errors"]))
    row("audit violations", str(result["audit_violations"]))
    drained = ", release drained" if limit.drained else ""
    row(
        "bare claim SQL",
        f"{result['sql_limit_rps']:,.1f} claims/s ({limit.claims} claims, {limit.clients} connections, "
        f"{limit.seconds:.2f} s{drained})",
    )
    cpu = result["cpu_seconds"]
    row(
        "CPU during the POSTs",
        f"gunicorn {cpu['gunicorn']} s, "
        + (f"database {cpu['database']} s, " if "database" in cpu else "database (SQLite) inside gunicorn, ")
        + f"Stripe simulator {cpu['payments']} s, "
        f"load generator {cpu['load_generator']} s in {cpu['wall']} s wall; machine {cpu.get('busy_pct', '?')}% busy",
    )
    row(
        "per CPU second",
        f"{result['reserves_per_cpu_second']} reservations (x {result['cpus']} CPUs = what this box could do alone)",
    )
    if cpu.get("other", 0) > 0.1 * cpu["wall"]:
        print(
            f"  WARNING: other processes used {cpu['other']} CPU s during the POSTs: this run shared the machine.",
            file=out,
        )
    row("ratio reserve / SQL", str(result["ratio"]))
    if database_is_postgresql(result):
        row("bare SQL plan cache", arguments.sql_plan_cache_mode)
    print(
        "  note: the load generator (Python threads), gunicorn and the database share these CPUs; "
        "figures are whole-box figures.",
        file=out,
    )
    if limit.clients < arguments.concurrency:
        print(f"  note: bare SQL ran from {limit.clients} connections, capped by max_connections.", file=out)
    for problem in truth.audit[:20]:
        print(f"  VIOLATION {problem}", file=out)
    for error in limit.errors[:5]:
        print(f"  bare SQL error: {error}", file=out)
    for outcome in failed[:5]:
        print(f"  error: status {outcome.status}: {outcome.detail[:200]!r}", file=out)
    if failed and server_log.strip():
        print("  gunicorn log (tail):", file=out)
        for line in server_log.splitlines():
            print(f"    {line}", file=out)
    if plans.cache_choice:
        print(f"  plan cache: a pooled connection runs the real claim with a {plans.cache_choice} plan", file=out)
    for plan in plans.plans:
        mark = "uses ix_unit_available" if plan.uses_partial_index else "DOES NOT USE ix_unit_available"
        if not plan.runs:
            mark += " (not the plan the shop runs)"
        print(f"Real claim query after {limit.claims} claims, {plan.title}: {mark}", file=out)
        for line in plan.lines:
            print(f"    {line}", file=out)


def database_is_postgresql(result: dict) -> bool:
    return result["database"] == "postgresql"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        result = run(arguments)
    except BenchError as error:
        print(f"bench/drop.py: {error}", file=sys.stderr)
        return 2
    print(json.dumps({key: result[key] for key in JSON_KEYS}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
