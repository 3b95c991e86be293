"""The activity log: every change a producer makes is recorded in the same transaction as the change itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.models import ActivityEntry


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in account (id and address), or the shop itself (CLI, demo loader): id None."""

    id: int | None
    email: str

    @classmethod
    def of(cls, user: object | None) -> Actor:
        """The actor for a User (or anything with .id and .email); the shop itself for None."""
        if user is None:
            return SHOP
        return cls(id=getattr(user, "id", None), email=getattr(user, "email", ""))


SHOP = Actor(id=None, email="")


def record_activity(
    session: Session,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: int | None,
    summary: str,
    now: datetime,
) -> ActivityEntry:
    """Add one line to the activity log; rolled back with the change it describes."""
    require_write_transaction(session)
    entry = ActivityEntry(
        occurred_at=now,
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        summary=summary[:500],
    )
    session.add(entry)
    session.flush()
    return entry


# --- Reading the log (the producer's activity page and dashboard) -------------------------------------------------

ACTIVITY_PAGE_SIZE = 50


@dataclass(frozen=True)
class ActivityPage:
    """One page of the log, newest first, and whether there are newer and older entries to page to."""

    entries: list[ActivityEntry]
    has_newer: bool
    has_older: bool


def list_activity(
    session: Session,
    *,
    before_id: int | None = None,
    after_id: int | None = None,
    subject_type: str | None = None,
    limit: int = ACTIVITY_PAGE_SIZE,
) -> ActivityPage:
    """Return up to `limit` entries, newest first: the newest, those older than `before_id`, or newer than `after_id`.

    Keyset paging on the id (entries are numbered in the order they were written), so a page costs the same
    however deep into the log it is, and an entry written meanwhile does not shift the next page.
    """
    query = select(ActivityEntry)
    if subject_type:
        query = query.where(ActivityEntry.subject_type == subject_type)
    if after_id is not None:
        rows = list(
            session.scalars(query.where(ActivityEntry.id > after_id).order_by(ActivityEntry.id).limit(limit + 1))
        )
        if len(rows) > limit:
            entries = list(reversed(rows[:limit]))
            has_older = entries_exist(session, query, ActivityEntry.id <= after_id)
            return ActivityPage(entries, has_newer=True, has_older=has_older)
        # Paging back reached the newest entries: show the first page, full, as a fresh visit would.
        return list_activity(session, subject_type=subject_type, limit=limit)
    page_query = query if before_id is None else query.where(ActivityEntry.id < before_id)
    rows = list(session.scalars(page_query.order_by(ActivityEntry.id.desc()).limit(limit + 1)))
    entries = rows[:limit]
    has_newer = before_id is not None and entries_exist(session, query, ActivityEntry.id >= before_id)
    return ActivityPage(entries, has_newer=has_newer, has_older=len(rows) > limit)


def entries_exist(session: Session, query: Select, condition: ColumnElement[bool]) -> bool:
    """True if the (filtered) log has an entry matching `condition`."""
    return session.scalar(query.where(condition).with_only_columns(ActivityEntry.id).limit(1)) is not None


def latest_activity(session: Session, limit: int = 5) -> list[ActivityEntry]:
    """The newest `limit` entries of the log."""
    return list(session.scalars(select(ActivityEntry).order_by(ActivityEntry.id.desc()).limit(limit)))


def activity_subject_types(session: Session) -> list[str]:
    """The kinds of things the log mentions (release, batch, ...), to filter by."""
    return list(session.scalars(select(ActivityEntry.subject_type).distinct().order_by(ActivityEntry.subject_type)))
