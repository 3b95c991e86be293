"""Background work on Huey: the hold sweeper, refunds, and the mail outbox.

Storage is Redis when `REDIS_URL` is set (several hosts share one queue) and a SQLite file otherwise, so a new user
needs no extra server. `flask --app wsgi storefront worker` runs the consumer; `make run` starts one.
Every task is safe to run twice and on several workers at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, has_app_context
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab

import config as settings

log = logging.getLogger(__name__)


def make_huey() -> Huey:
    """Build the queue from the environment (tasks are declared at import time, before any app exists)."""
    environment = settings.config_from_environment()
    if environment.HUEY_IMMEDIATE:
        return MemoryHuey("storefront", immediate=True)
    if environment.REDIS_URL:
        return RedisHuey("storefront", url=environment.REDIS_URL)
    Path(environment.HUEY_SQLITE_PATH).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("storefront", filename=environment.HUEY_SQLITE_PATH)


huey = make_huey()
_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Run tasks in this app (the worker command passes its own)."""
    global _worker_app
    _worker_app = app


@contextmanager
def app_context() -> Iterator[Flask]:
    """Run inside the current app (immediate mode, tests) or the worker's own app."""
    global _worker_app
    if has_app_context():
        yield current_app._get_current_object()
        return
    if _worker_app is None:
        from storefront import create_app

        _worker_app = create_app()
    with _worker_app.app_context():
        yield _worker_app


def run_with_session(work):
    from storefront import clock
    from storefront.extensions import db

    with app_context():
        try:
            return work(db.session, clock.now())
        except Exception:
            db.session.rollback()
            raise


@huey.periodic_task(crontab(minute="*"))
def sweep_holds() -> None:
    """End holds whose time has passed (expiring their Stripe session first)."""
    from storefront.payment_flows import sweep_expired_holds

    report = run_with_session(sweep_expired_holds)
    if report.released or report.fulfilled or report.failed:
        log.info("Sweep: %s released, %s fulfilled, %s to retry", report.released, report.fulfilled, report.failed)


@huey.task()
def process_refund(refund_id: int) -> None:
    """Send one recorded refund to the gateway."""
    from storefront.payment_flows import process_refund as send_refund

    run_with_session(lambda session, now: send_refund(session, refund_id, now))
    send_outbox()


@huey.periodic_task(crontab(minute="*"))
def retry_refunds() -> None:
    """Try again every refund the gateway has not accepted yet."""
    from storefront.payment_flows import pending_refund_ids
    from storefront.payment_flows import process_refund as send_refund

    for refund_id in run_with_session(lambda session, now: pending_refund_ids(session)):
        run_with_session(lambda session, now, refund_id=refund_id: send_refund(session, refund_id, now))
    send_outbox()


@huey.task()
def send_outbox() -> None:
    """Send queued mail."""
    from storefront import notifications

    def send(session, now):
        app = current_app
        mailer = notifications.Mailer(app.config["MAIL_URL"], app.config["MAIL_DIR"])
        return notifications.send_pending(session, mailer, app.config["MAIL_FROM"], now)

    run_with_session(send)


@huey.periodic_task(crontab(minute="*"))
def send_outbox_periodically() -> None:
    """Catch mail whose wake-up was lost (a worker restart, a failed SMTP server)."""
    send_outbox.call_local()
