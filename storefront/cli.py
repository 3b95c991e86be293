"""`flask --app wsgi storefront ...`: the shop's commands."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from storefront import clock
from storefront.extensions import db
from storefront.unit_of_work import end_read, write_transaction

storefront_cli = AppGroup("storefront", help="Small Batch commands: demo data, audits, workers.")


@storefront_cli.command("seed-demo")
def seed_demo_command() -> None:
    """Load a demo producer with batches, stories, photos and releases (safe to run again)."""
    from storefront.demo import DEMO_PRODUCER_EMAIL, DEMO_PRODUCER_PASSWORD, seed_demo, seed_demo_people

    production = current_app.config.get("ENV_NAME") == "production"
    with write_transaction(db.session):
        created = seed_demo(db.session, current_app.config["UPLOAD_FOLDER"], clock.now())
        # A known password on a public shop would hand its workspace to anyone who read the README.
        if not production:
            created += seed_demo_people(db.session, clock.now())
    if created:
        click.echo(f"Demo data loaded: {', '.join(created)}.")
    else:
        click.echo("Demo data already present; nothing to do.")
    if production:
        click.echo(
            "No demo producer account or subscribers in production (STOREFRONT_ENV=production): "
            "create your account with `flask --app wsgi storefront create-producer EMAIL`."
        )
    else:
        click.echo(f"Demo producer: sign in at /login as {DEMO_PRODUCER_EMAIL} with password {DEMO_PRODUCER_PASSWORD}")


@storefront_cli.command("create-producer")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create_producer_command(email: str, password_stdin: bool) -> None:
    """Create a producer account that can sign in at /login (asks for the password twice)."""
    from sqlalchemy.exc import IntegrityError

    from storefront.domain.accounts import AccountError, create_producer

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with write_transaction(db.session):
            user = create_producer(db.session, email, password, clock.now())
            created = user.email
    except AccountError as error:
        raise click.ClickException(error.message) from error
    except IntegrityError as error:
        # Two commands raced for the same address: the unique constraint kept one account.
        raise click.ClickException(f"There is already an account for {email.strip().lower()}.") from error
    click.echo(f"Producer {created} created; they can sign in at /login.")


@storefront_cli.command("audit")
def audit_command() -> None:
    """Check every stock, hold and order invariant; print each violation and exit 1 if there is any."""
    from storefront.domain.audit import audit

    problems = audit(db.session, clock.now())
    end_read(db.session)
    for problem in problems:
        click.echo(f"VIOLATION {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("Audit clean: no unit sold twice, no release oversold, every hold and order consistent.")


@storefront_cli.command("refunds")
@click.option("--retry", "retry_id", type=int, default=None, help="Try a failed refund again (fresh 3-day window).")
def refunds_command(retry_id: int | None) -> None:
    """List money that needs a person: failed or waiting refunds, and payments matched to no hold."""
    from sqlalchemy import select

    from storefront.checkout.flows import wake_refund
    from storefront.domain.refunds import retry_failed_refund
    from storefront.models import Refund, RefundStatus, UnmatchedPayment
    from storefront.text import format_money

    if retry_id is not None:
        try:
            with write_transaction(db.session):
                retry_failed_refund(db.session, retry_id, clock.now())
                wake_refund(db.session, retry_id)
        except ValueError as error:
            raise click.ClickException(f"Refund {retry_id}: {error}") from error
        click.echo(f"Refund {retry_id} queued again.")
        return
    refunds = db.session.scalars(
        select(Refund).where(Refund.status != RefundStatus.SUCCEEDED).order_by(Refund.created_at)
    ).all()
    for refund in refunds:
        target = (
            f"order {refund.order.reference}" if refund.order else f"unmatched payment {refund.unmatched_payment_id}"
        )
        click.echo(
            f"refund {refund.id}  {refund.status:<9} {format_money(refund.amount, refund.currency):>12}  {target}  "
            f"attempts {refund.attempts}  next {refund.next_attempt_at or '-'}  {refund.last_error}"
        )
    unmatched = db.session.scalars(select(UnmatchedPayment).order_by(UnmatchedPayment.created_at)).all()
    for payment in unmatched:
        states = ", ".join(refund.status for refund in payment.refunds) or "no refund"
        click.echo(
            f"unmatched {payment.id}  {format_money(payment.amount, payment.currency):>12}  "
            f"{payment.checkout_session_id}  refund: {states}  {payment.reason}"
        )
    end_read(db.session)
    if not refunds and not unmatched:
        click.echo("No refund is waiting or failed, and every payment matched its hold.")


@storefront_cli.command("worker")
@click.option("--threads", default=2, show_default=True, help="Worker threads in this consumer.")
def worker_command(threads: int) -> None:
    """Run the Huey consumer: hold sweeper, refunds, mail (Redis if REDIS_URL is set, else SQLite)."""
    from storefront import tasks

    tasks.use_app(current_app._get_current_object())
    click.echo(f"Worker on {type(tasks.huey).__name__} with {threads} threads; Ctrl-C to stop.")
    consumer = tasks.huey.create_consumer(workers=threads, worker_type="thread", periodic=True)
    consumer.run()


@storefront_cli.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--sim-port", default=12111, show_default=True, type=int, help="Port of the Stripe simulator.")
def dev_command(host: str, port: int, sim_port: int) -> None:
    """Serve the shop with a worker beside it, and the Stripe simulator when no STRIPE_SECRET_KEY is set."""
    from storefront.devserver import run_dev

    raise SystemExit(run_dev(host, port, sim_port))


@storefront_cli.command("stripe-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--webhook-url", default="http://127.0.0.1:5000/stripe/webhook", show_default=True)
@click.option("--webhook-secret", envvar="STRIPE_WEBHOOK_SECRET", required=True, help="Signs webhook events.")
@click.option("--api-key", "api_keys", multiple=True, help="Accept only these secret keys (default: any sk_test_).")
@click.option("--public-url", default=None, help="Base of the hosted checkout page URLs.")
@click.option("--business-name", default=None, help="The name heading the pay page (default: SHOP_NAME).")
def stripe_sim_command(host, port, webhook_url, webhook_secret, api_keys, public_url, business_name) -> None:
    """Serve the Stripe simulator: Checkout Sessions, refunds, a hosted pay page and signed webhooks."""
    from storefront.stripe_sim import run_simulator

    run_simulator(
        host,
        port,
        webhook_url,
        webhook_secret,
        api_keys=set(api_keys) or None,
        public_url=public_url,
        # Stripe's page is headed by the account's business name: the shop's own, as buyers know it.
        business_name=business_name or current_app.config["SHOP_NAME"],
    )
