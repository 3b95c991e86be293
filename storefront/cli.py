"""`flask --app wsgi storefront ...`: the shop's commands."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from storefront import clock
from storefront.extensions import db

storefront_cli = AppGroup("storefront", help="Small Batch commands: demo data, audits, workers.")


@storefront_cli.command("seed-demo")
def seed_demo_command() -> None:
    """Load a demo producer with batches, stories, photos and releases (safe to run again)."""
    from storefront.demo import seed_demo

    created = seed_demo(db.session, current_app.config["UPLOAD_FOLDER"], clock.now())
    db.session.commit()
    if created:
        click.echo(f"Demo data loaded: {', '.join(created)}.")
    else:
        click.echo("Demo data already present; nothing to do.")


@storefront_cli.command("audit")
def audit_command() -> None:
    """Check every stock, hold and order invariant; print each violation and exit 1 if there is any."""
    from storefront.domain.audit import audit

    problems = audit(db.session, clock.now())
    db.session.rollback()
    for problem in problems:
        click.echo(f"VIOLATION {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("Audit clean: no unit sold twice, no release oversold, every hold and order consistent.")
