"""Refunds under real concurrency: threads in this process and two real worker processes sending the same refunds.

Five paid orders (real payments on the simulator) each get a refund, whose first attempt fails (Stripe is down),
so all five wait out a backoff. Then the backoff ends for all of them at once, and the simulator is made slow on
refunds so that attempts overlap on the network: two `flask storefront worker` processes, fed through the real
queue (a SQLite file, or Redis), start on two of the refunds; as soon as one holds a lease, eight threads (each
with its own app context and database session) call `process_refund` for every refund in an order of their own,
while the workers get a `process_refund` task for every refund and a `retry_refunds` run each. Whatever the
interleaving, each refund is sent once: one more lease, one refund at the gateway, one "Refund sent" mail, and the
auditor stays clean.

The shop's clock is frozen at the real time, so the workers (on the real clock) and the threads agree on what is
due. Threads start together at a barrier; only the workers, other processes, are waited for, by polling with a
deadline.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from storefront import tasks
from storefront.checkout import flows
from storefront.clock import utcnow
from storefront.extensions import db
from storefront.models import Order, OutboxMessage, PeriodicRun, Refund
from storefront.payments import gateway
from storefront.unit_of_work import write_transaction
from tests.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRET, redis_or_skip
from tests.domain.test_refunds import add_fault, gateway_refunds, refund_for_a_paid_order
from tests.factories import make_release
from tests.integration.helpers import assert_audit_clean, run_concurrently, unexpected
from tests.integration.test_worker import FLASK, PROJECT, REDIS_URL, queue_for, worker_environment

pytestmark = pytest.mark.slow

REFUNDS = 5
THREADS = 8
WORKERS = 2
PRODUCER = "producer@example.com"
GATEWAY_DELAY = 0.5
# The workers are other processes: they are waited for (polling, with a deadline), never slept on.
WAIT_SECONDS = 60


@pytest.fixture
def app_overrides():
    return {"PRODUCER_EMAIL": PRODUCER, "DATABASE_POOL_SIZE": THREADS + 2}


@pytest.fixture(params=["sqlite-queue", "redis-queue"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The workers' queue: a SQLite file ("") or Redis database 15, emptied before and after."""
    if request.param == "sqlite-queue":
        yield ""
        return
    client = redis_or_skip("the workers' queue in Redis")
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def start_workers(app, tmp_path: Path, stripe_sim, redis_url: str) -> Iterator:
    """Start two `flask storefront worker` processes on the test's database and simulator; stopped at the end."""
    environment = worker_environment(tmp_path, redis_url=redis_url)
    environment.update(
        DATABASE_URL=str(app.config["SQLALCHEMY_DATABASE_URI"]),
        MAIL_DIR=app.config["MAIL_DIR"],
        STRIPE_SECRET_KEY=STRIPE_TEST_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_sim.url,
        PRODUCER_EMAIL=PRODUCER,
        SHOP_URL="http://shop.test",
    )
    started: list[tuple[subprocess.Popen, Path]] = []

    def start() -> tuple[dict[str, str], list[tuple[subprocess.Popen, Path]]]:
        for number in range(WORKERS):
            log = tmp_path / f"worker-{number}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [str(FLASK), "--app", "wsgi", "storefront", "worker", "--threads", "2"],
                    cwd=PROJECT,
                    env=environment,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            started.append((process, log))
        return environment, started

    try:
        yield start
    finally:
        stop(started)


def stop(started: list[tuple[subprocess.Popen, Path]]) -> None:
    """SIGINT each worker (Huey's consumer finishes its running tasks, then exits); kill one that hangs."""
    for process, _log in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process, _log in started:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until(condition, what: str, started: list[tuple[subprocess.Popen, Path]], interval: float = 0.1) -> None:
    """Poll another process's progress until `condition()` holds; fail with the workers' output otherwise."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        for process, log in started:
            if process.poll() is not None:
                pytest.fail(f"a worker exited with {process.returncode}:\n{log.read_text()}")
        time.sleep(interval)  # waiting for other processes, not for time to pass in the shop
    logs = "\n".join(f"--- {log.name}\n{log.read_text()}" for _process, log in started)
    pytest.fail(f"{what} not done after {WAIT_SECONDS} s; worker output:\n{logs}")


def read_fresh(session, query):
    session.commit()  # a new transaction: on SQLite (WAL) an old read would show an old snapshot
    result = query()
    session.commit()
    return result


def refunds_settled(session) -> bool:
    """Every refund succeeded and every queued mail went out."""
    statuses = read_fresh(session, lambda: set(session.scalars(select(Refund.status))))
    unsent = read_fresh(
        session,
        lambda: session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))),
    )
    return statuses == {"succeeded"} and unsent == 0


def mail_subjects(mail_dir: Path) -> list[str]:
    return [message_from_bytes(path.read_bytes())["Subject"] for path in sorted(mail_dir.glob("*.eml"))]


def test_each_refund_is_sent_once_by_threads_and_two_worker_processes(app, session, clock, stripe_sim, start_workers):
    clock.set(utcnow().replace(microsecond=0))  # the workers' clock is the real one
    release = make_release(session, units=REFUNDS, on_sale_at=clock() - timedelta(minutes=1), limit=1)
    session.commit()
    refund_ids = [
        refund_for_a_paid_order(app, session, stripe_sim, release.id, clock(), email=f"buyer{n}@example.com")
        for n in range(REFUNDS)
    ]
    first_for_workers = refund_ids[:2]
    # Stripe was down for each refund's first attempt: every refund waits out its backoff.
    add_fault(stripe_sim, 503, count=REFUNDS, error={"type": "api_error", "message": "Stripe is down."})
    for refund_id in refund_ids:
        assert flows.process_refund(session, gateway(), refund_id, clock()).status == "pending"
    session.commit()
    # The workers start only now, when no refund is due (a consumer runs its periodic tasks as it starts).
    environment, started = start_workers()
    # Each thread's connection is open before the race (as in a running shop), so no thread starts late.
    assert unexpected(run_concurrently(app, [lambda: db.session.execute(select(1)).all()] * THREADS)) == []

    def sender(seed: int):
        order = random.Random(seed).sample(refund_ids, len(refund_ids))

        def send_every_refund() -> list[int]:
            """Attempt each refund once, in this thread's own order; return those this thread leased."""
            return [
                refund_id
                for refund_id in order
                if flows.process_refund(db.session, gateway(), refund_id, clock()) is not None
            ]

        return send_every_refund

    with queue_for(environment) as queue:
        # Exactly what the shop enqueues: the tasks registered as storefront.tasks.process_refund / retry_refunds.
        process_refund = queue.task()(tasks.process_refund.func)
        retry_refunds = queue.task()(tasks.retry_refunds.func)

        def wake_the_workers() -> list[int]:
            """What the web process and every worker's scheduler do: a task per refund, a periodic retry each."""
            for _worker in range(WORKERS):
                retry_refunds()
                for refund_id in refund_ids:
                    process_refund(refund_id)
            return []

        def workers_started() -> bool:
            """Both consumers run, and the periodic tasks each runs as it starts are done."""
            return (
                all("Worker on" in log.read_text() for _process, log in started)
                and read_fresh(session, lambda: session.get(PeriodicRun, "retry_refunds")) is not None
                and queue.pending_count() == 0
            )

        def a_worker_leased_one() -> bool:
            return (
                read_fresh(
                    session,
                    lambda: session.scalar(
                        select(func.count()).where(Refund.id.in_(first_for_workers), Refund.attempts > 1)
                    ),
                )
                > 0
            )

        # A consumer runs its periodic tasks as it starts: let those runs pass before any refund is due.
        wait_until(workers_started, "the workers' start", started)
        # Slow on the network, not failing: every refund request waits before it is answered, so an attempt holds
        # its lease while the others try.
        add_fault(stripe_sim, delay=GATEWAY_DELAY, count=REFUNDS * (THREADS + 2 * WORKERS + 2))
        # The backoff ends now for every refund at once. The workers start on two of them; the threads and more
        # worker tasks set off together once a worker holds one.
        with write_transaction(session):
            session.execute(update(Refund).values(next_attempt_at=clock()))
        for refund_id in first_for_workers:
            process_refund(refund_id)
        wait_until(a_worker_leased_one, "a worker's first lease", started, interval=0.02)
        outcomes = run_concurrently(app, [sender(seed) for seed in range(THREADS)] + [wake_the_workers])

        wait_until(lambda: queue.pending_count() == 0, "the queued tasks", started)
        wait_until(lambda: refunds_settled(session), "every refund and its mail", started)
    stop(started)  # and let every task a worker was running finish
    worker_output = "\n".join(log.read_text() for _process, log in started)

    assert unexpected(outcomes) == []
    assert "Traceback" not in worker_output, worker_output
    leased_by_threads = Counter(refund_id for outcome in outcomes for refund_id in outcome.value)
    assert all(count == 1 for count in leased_by_threads.values()), (
        f"threads leased a refund twice: {leased_by_threads}"
    )
    leased_by_workers = set(refund_ids) - set(leased_by_threads)
    assert leased_by_workers & set(first_for_workers), "a worker process sent a refund"

    refunds = read_fresh(session, lambda: session.scalars(select(Refund).order_by(Refund.id)).all())
    assert [(refund.status, refund.attempts, refund.last_error) for refund in refunds] == [("succeeded", 2, "")] * len(
        refund_ids
    ), "after the failed first attempt, each refund was leased once more, and that attempt succeeded"

    made = gateway_refunds(stripe_sim)
    assert Counter(refund["payment_intent"] for refund in made) == Counter(
        {refund.payment_intent_id: 1 for refund in refunds}
    ), "the gateway made one refund per payment"
    assert sorted(refund["id"] for refund in made) == sorted(refund.gateway_refund_id for refund in refunds)

    orders = read_fresh(session, lambda: session.scalars(select(Order).order_by(Order.id)).all())
    assert [order.status for order in orders] == ["refunded"] * REFUNDS
    refund_mails = read_fresh(
        session,
        lambda: Counter(
            session.scalars(select(OutboxMessage.subject).where(OutboxMessage.subject.startswith("Refund sent")))
        ),
    )
    assert refund_mails == Counter({f"Refund sent for order {order.reference}": 1 for order in orders})
    delivered = Counter(subject for subject in mail_subjects(Path(app.config["MAIL_DIR"])) if "Refund" in subject)
    assert delivered == refund_mails, "each refund mail was delivered once"
    to_producer = read_fresh(
        session, lambda: session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == PRODUCER)).all()
    )
    assert to_producer == [], "nobody was asked to look at refunds that went through"
    assert_audit_clean(session, clock())
