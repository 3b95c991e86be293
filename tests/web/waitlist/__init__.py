"""Joining, confirming and leaving waitlists through the buyer's pages; the helpers both test modules share."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storefront.models import OutboxMessage, Release, WaitlistEntry
from tests.factories import make_release
from tests.integration.helpers import claim_committed
from tests.web.producer.conftest import csrf_from

SHOP_URL = "https://smallbatch.example"
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # an hour after the test clock starts
LINK = re.compile(rf"{re.escape(SHOP_URL)}/waitlist/(confirm|unsubscribe)/([A-Za-z0-9_.\-]+)")
JOIN_FORM = re.compile(r'<form class="waitlist__form" method="post" action="([^"]+)">')


def upcoming_release(session, units: int = 3, **terms) -> Release:
    """A release that goes on sale at ON_SALE (an hour after the test clock starts), unless told otherwise."""
    terms.setdefault("on_sale_at", ON_SALE)
    release = make_release(session, units=units, **terms)
    session.commit()
    return release


def sold_out_release(session, clock, units: int = 2, **terms) -> Release:
    """A release on sale for a minute whose every number is held by a public buyer (for two hours, so tests can
    move the clock without the numbers coming free)."""
    release = upcoming_release(session, units=units, **terms)
    clock.set(ON_SALE + timedelta(minutes=1))
    for number in range(units):
        claim_committed(session, release.id, 1, f"buyer{number}@example.com", clock(), hold_for=timedelta(hours=2))
    return release


def join_form_on(client, page_path: str) -> tuple[str, str]:
    """The waitlist form's action and CSRF token, as the page at `page_path` shows them."""
    page = client.get(page_path)
    assert page.status_code == 200, page.status_code
    text = page.get_data(as_text=True)
    match = JOIN_FORM.search(text)
    assert match, f"no waitlist form on {page_path}"
    return match.group(1), csrf_from(text[match.start() :])


def join(client, page_path: str, email: str, name: str = ""):
    """Fill in the waitlist form of the page at `page_path` and send it, as a visitor would."""
    action, token = join_form_on(client, page_path)
    return client.post(action, data={"csrf_token": token, "email": email, "name": name})


def mails(session) -> list[OutboxMessage]:
    """Every mail the shop has queued, oldest first."""
    session.commit()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def mails_to(session, email: str) -> list[OutboxMessage]:
    return [message for message in mails(session) if message.recipient == email]


def links_in(message: OutboxMessage) -> dict[str, str]:
    """The confirm and unsubscribe paths in a waitlist mail, keyed by kind."""
    return {kind: f"/waitlist/{kind}/{token}" for kind, token in LINK.findall(message.body)}


def entries_of(session, email_key: str) -> list[WaitlistEntry]:
    """Every waitlist entry of one mailbox, fresh from the database."""
    session.commit()
    query = select(WaitlistEntry).where(WaitlistEntry.email_key == email_key).order_by(WaitlistEntry.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def entry_of(session, email_key: str) -> WaitlistEntry:
    (entry,) = entries_of(session, email_key)
    return entry


def press_button(client, path: str):
    """Open a page from a mail link and press its one button (a form with only its CSRF token)."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})


def join_and_confirm(client, session, page_path: str, email: str):
    """Join from a page, then confirm from the mail; returns the confirmation's answer (a 303 to the place)."""
    assert join(client, page_path, email).status_code == 303
    confirm_path = links_in(mails_to(session, email)[-1])["confirm"]
    response = press_button(client, confirm_path)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response
