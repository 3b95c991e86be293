"""The activity log: every change a producer makes is recorded in the same transaction as the change itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
