"""Calendar files (.ics, RFC 5545) for a release's drop: attached to its announcement and linked from its page.

The same release always gives the same event UID, so a buyer who adds it twice (from the mail, then from the page)
gets one event that a later copy updates, not two.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from storefront.models import Release
from storefront.text import format_money

CONTENT_TYPE = "text/calendar; method=PUBLISH"
# The drop is a moment, not a meeting: a short event at on-sale time is what people want in their calendar.
DROP_DURATION = timedelta(minutes=30)


def release_event_uid(release: Release, shop_url: str) -> str:
    """A UID stable per release and unique to this shop: "release-17@shop.example"."""
    return f"release-{release.id}@{urlsplit(shop_url).hostname or 'localhost'}"


def calendar_filename(release: Release) -> str:
    return f"{release.slug}.ics"


def release_calendar(release: Release, *, release_url: str, shop_name: str, shop_url: str) -> str:
    """Return the .ics text of one event at the release's on-sale time, linking to its page."""
    batch = release.batch
    calendar = Calendar()
    calendar.add("prodid", f"-//{shop_name}//Release calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")

    event = Event()
    event.add("uid", release_event_uid(release, shop_url))
    # When this description of the event last changed (RFC 5545 asks for DTSTAMP); stable for an unchanged release.
    event.add("dtstamp", release.updated_at.astimezone(UTC))
    event.add("dtstart", release.on_sale_at.astimezone(UTC))
    event.add("duration", DROP_DURATION)
    event.add("summary", f"{batch.title}: {release.title} goes on sale")
    event.add(
        "description",
        f"{release.title} from batch {batch.code}, {format_money(release.price_amount, release.currency)}, "
        f"a numbered run of {release.total_units}. Reserve your number: {release_url}",
    )
    event.add("url", release_url)
    event.add("location", release_url)
    event.add("transp", "TRANSPARENT")  # a reminder, not a meeting: it does not make anyone look busy
    calendar.add_component(event)
    return calendar.to_ical().decode("utf-8")
