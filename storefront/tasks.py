"""Background work on Huey: the hold sweeper, refunds, waitlist offers, and the mail outbox.

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
from storefront import clock, wakeups

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
    from storefront.extensions import db

    with app_context():
        try:
            return work(db.session, clock.now())
        except Exception:
            db.session.rollback()
            raise


def run_with_gateway(work):
    """Run `work(session, gateway, now)` in the app, with the app's payment gateway."""
    from storefront.payments import gateway

    return run_with_session(lambda session, now: work(session, gateway(), now))


def once_per_period(name: str, work) -> None:
    """Run a periodic task's work only if this run claims the current minute: every consumer's scheduler fires
    periodic tasks, so with N workers each would otherwise run N times a minute."""
    from storefront.periodic import claim_period

    if run_with_session(lambda session, now: claim_period(session, name, now)):
        work()


@huey.periodic_task(crontab(minute="*"))
def sweep_holds() -> None:
    """End holds whose time has passed (closing their Stripe session first), and cancels waiting on Stripe."""
    from storefront.checkout.flows import sweep_holds as sweep

    def run() -> None:
        report = run_with_gateway(lambda session, gateway, now: sweep(session, gateway, now, clock.now))
        if report.released or report.fulfilled or report.failed:
            log.info("Sweep: %s released, %s fulfilled, %s to retry", report.released, report.fulfilled, report.failed)

    once_per_period("sweep_holds", run)


@huey.task()
def process_refund(refund_id: int) -> None:
    """Make an attempt at one recorded refund (a no-op if another worker holds it or it is not due)."""
    from storefront.checkout.flows import process_refund as send_refund

    run_with_gateway(lambda session, gateway, now: send_refund(session, gateway, refund_id, now))


@huey.periodic_task(crontab(minute="*"))
def retry_refunds() -> None:
    """Try again every refund that is due: waiting out its backoff, or abandoned by a worker that died."""
    from storefront.checkout.flows import retry_due_refunds

    once_per_period(
        "retry_refunds",
        lambda: run_with_gateway(lambda session, gateway, now: retry_due_refunds(session, gateway, now, clock.now)),
    )


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
    once_per_period("send_outbox", send_outbox.call_local)


@huey.task()
def notify_offers() -> None:
    """Mail the waitlist offers just made, starting each one's time as its mail is queued."""
    from storefront.waitlist.mailings import notify_offers as notify

    run_with_session(lambda session, now: notify(session, now, clock.now))


@huey.periodic_task(crontab(minute="*"))
def notify_offers_periodically() -> None:
    """Catch offers whose wake-up was lost (a worker restart): an unmailed offer's time has not started."""
    once_per_period("notify_offers", notify_offers.call_local)


@wakeups.offers_made.connect
def wake_offer_mailer(_sender=None, **_kwargs) -> None:
    notify_offers()


@wakeups.mail_queued.connect
def wake_mail_sender(_sender=None, **_kwargs) -> None:
    send_outbox()


@wakeups.refund_queued.connect
def wake_refund_sender(refund_id: int, **_kwargs) -> None:
    process_refund(refund_id)
