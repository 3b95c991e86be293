"""The shop's own clock face: SHOP_TIMEZONE, in which the producer enters and reads every time (stored in UTC)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app

from storefront.text import local_datetime_text


def shop_zone() -> ZoneInfo:
    """The producer's time zone (SHOP_TIMEZONE; create_app refuses a name that is not a zone)."""
    return ZoneInfo(current_app.config["SHOP_TIMEZONE"])


def shop_time(moment: datetime | None) -> str:
    """A stored UTC moment as the producer reads it: "Wed 1 July 2026, 11:00 IST"; empty for None."""
    if moment is None:
        return ""
    return local_datetime_text(moment, shop_zone())
