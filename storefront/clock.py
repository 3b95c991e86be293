"""The shop's idea of "now": timezone-aware UTC, replaceable in tests through the app's CLOCK setting."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, has_app_context


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def now() -> datetime:
    """Return "now" for the running app: its CLOCK when one is configured (tests), else the real time."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")
        if clock is not None:
            return clock()
    return utcnow()
