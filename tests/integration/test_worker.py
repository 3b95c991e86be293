"""The real task worker: `flask --app wsgi storefront worker` in a process of its own, fed through the real queue.

The test plays the web process: it queues a mail in the outbox, commits, and enqueues `send_outbox` on the same
Huey storage (a SQLite file, or Redis) under the same queue name. The worker must pick it up and write the mail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from huey import Huey, RedisHuey, SqliteHuey

from config import TestConfig
from storefront import create_app, notifications, tasks
from storefront.extensions import db
from tests.conftest import REDIS_URL_FOR_TESTS, redis_or_skip

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
FLASK = PROJECT / ".venv" / "bin" / "flask"
REDIS_URL = REDIS_URL_FOR_TESTS
MAIL_WAIT_SECONDS = 30
# Settings of the test process that must not leak into the worker's environment.
NOT_INHERITED = ("HUEY_IMMEDIATE", "REDIS_URL", "MAIL_URL", "DATABASE_URL", "STOREFRONT_ENV")


def worker_environment(tmp_path: Path, redis_url: str = "") -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    environment.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'shop.db'}",
        HUEY_SQLITE_PATH=str(tmp_path / "huey.db"),
        MAIL_DIR=str(tmp_path / "mail"),
        INSTANCE_PATH=str(tmp_path / "instance"),
        SECRET_KEY="worker-test-secret",
        STOREFRONT_ENV="development",
        PYTHONUNBUFFERED="1",  # the worker's output reaches its log while it runs
    )
    if redis_url:
        environment["REDIS_URL"] = redis_url
    return environment


@contextmanager
def queue_for(environment: dict[str, str]) -> Iterator[Huey]:
    """The queue the worker reads, as the web process would build it: same name "storefront", same storage."""
    if environment.get("REDIS_URL"):
        queue = RedisHuey("storefront", url=environment["REDIS_URL"])
    else:
        queue = SqliteHuey("storefront", filename=environment["HUEY_SQLITE_PATH"])
    try:
        yield queue
    finally:
        queue.storage.close()
        if isinstance(queue, RedisHuey):
            queue.storage.pool.disconnect()


def queue_a_mail(database_url: str) -> int:
    """Create the shop's schema and queue one mail in its outbox, committed; returns the message id."""
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, SHOP_URL="http://shop.test")
    with app.app_context():
        db.create_all()
        message = notifications.queue_mail(
            db.session,
            "worker@example.com",
            "refund_sent",
            order=SimpleNamespace(reference="SB-WORKER"),
            refund=SimpleNamespace(amount=8900, currency="EUR"),
        )
        db.session.commit()
        message_id = message.id
        db.session.remove()
        db.engine.dispose()
    return message_id


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    """Start `flask storefront worker` with an environment; always stopped (SIGINT, then killed) at the end."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(environment: dict[str, str]) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(FLASK), "--app", "wsgi", "storefront", "worker"],
                cwd=PROJECT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started.append((process, log))
        return process, log

    yield start
    for process, _log in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Huey's consumer finishes its running tasks and exits
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for_mail(mail_dir: Path, worker: subprocess.Popen, log: Path) -> list[Path]:
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while time.monotonic() < deadline:
        files = sorted(mail_dir.glob("*.eml"))
        if files:
            return files
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode}:\n{log.read_text()}")
        time.sleep(0.2)  # waiting for another process, not for time to pass in the shop
    pytest.fail(f"no mail in {mail_dir} after {MAIL_WAIT_SECONDS} s; worker output:\n{log.read_text()}")


def check_worker_sends_queued_mail(tmp_path: Path, start_worker, environment: dict[str, str]) -> None:
    message_id = queue_a_mail(environment["DATABASE_URL"])
    worker, log = start_worker(environment)
    with queue_for(environment) as queue:
        # Enqueue exactly what the shop enqueues: the task registered as storefront.tasks.send_outbox.
        send_outbox = queue.task()(tasks.send_outbox.func)
        send_outbox()

        (mail,) = wait_for_mail(tmp_path / "mail", worker, log)
        deadline = time.monotonic() + 10
        while queue.pending_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.pending_count() == 0, "the worker left the task in the queue"
        queue_name = type(queue).__name__
    assert mail.name.endswith(f"-{message_id}.eml")
    text = mail.read_text()
    assert "To: worker@example.com" in text
    assert "Subject: Refund sent for order SB-WORKER" in text
    assert worker.poll() is None, f"the worker stopped:\n{log.read_text()}"
    assert f"Worker on {queue_name}" in log.read_text()


def test_the_worker_sends_queued_mail_from_the_sqlite_queue(tmp_path: Path, start_worker):
    check_worker_sends_queued_mail(tmp_path, start_worker, worker_environment(tmp_path))


@pytest.fixture
def redis_db() -> Iterator[str]:
    """Redis database 15, empty before and after; skipped when Redis does not answer (failed on CI)."""
    client = redis_or_skip("the worker's queue in Redis")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


def test_the_worker_sends_queued_mail_from_the_redis_queue(tmp_path: Path, start_worker, redis_db: str):
    check_worker_sends_queued_mail(tmp_path, start_worker, worker_environment(tmp_path, redis_url=redis_db))
