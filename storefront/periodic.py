"""Periodic work that runs once per period across any number of workers.

Every Huey consumer runs its own scheduler, so each periodic task fires once per minute *per worker*. Before doing
the work, a run claims the period in the database with one conditional UPDATE (or the first INSERT); only the run
that changed the row does the work. The work itself stays safe to run twice (leases, idempotent steps): this only
keeps N workers from doing it N times.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storefront.models import PeriodicRun
from storefront.unit_of_work import write_transaction


def period_start(now: datetime) -> datetime:
    """The minute `now` falls in: the period of every periodic task here (crontab minute="*")."""
    return now.replace(second=0, microsecond=0)


def claim_period(session: Session, name: str, now: datetime) -> bool:
    """Claim this minute's run of task `name`; True for exactly one caller per minute."""
    start = period_start(now)
    with write_transaction(session):
        claimed = session.execute(
            update(PeriodicRun)
            .where(PeriodicRun.name == name, PeriodicRun.period_start < start)
            .values(period_start=start),
            execution_options={"synchronize_session": False},
        ).rowcount
        exists = claimed == 1 or session.get(PeriodicRun, name) is not None
    if exists:
        return claimed == 1
    try:
        with write_transaction(session):
            session.add(PeriodicRun(name=name, period_start=start))
        return True
    except IntegrityError:
        return False  # another worker's first run took it
