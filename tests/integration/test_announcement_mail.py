"""Subscribing and announcing through the outbox, delivered to a real SMTP server in this process (aiosmtpd).

A visitor signs up on the home page, confirms from the link in the mail the SMTP server received, the producer
announces a release, and the announcement arrives with its calendar file and its List-Unsubscribe headers; the
one-click unsubscribe a mail provider would send (RFC 8058) then stops the next announcement. Tasks run inline
(Huey's immediate mode), so each request has sent its mail before it answers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar

from storefront.domain.accounts import create_producer
from storefront.models import OutboxMessage
from storefront.notifications import build_email
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.smtp import SHOP_URL, Delivery, SmtpServer
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in

ON_SALE = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # the day after the test clock's start
LINK = re.compile(rf"{re.escape(SHOP_URL)}(/subscribe/confirm/\S+|/unsubscribe/\S+)")


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


def path_of(url: str) -> str:
    assert url.startswith(SHOP_URL + "/"), url
    return urlsplit(url).path


def links_in(delivery: Delivery) -> dict[str, str]:
    found = {}
    for path in LINK.findall(delivery.body):
        found["confirm" if path.startswith("/subscribe/") else "unsubscribe"] = path
    return found


def plain_text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def sign_up_and_confirm(client, smtp_server: SmtpServer, email: str) -> None:
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/subscribe", data={"csrf_token": token, "email": email}).status_code == 303
    confirmation = smtp_server.received()[-1]
    assert confirmation.recipients == [email]
    confirm_path = links_in(confirmation)["confirm"]
    page = client.get(confirm_path).get_data(as_text=True)
    assert client.post(confirm_path, data={"csrf_token": csrf_from(page)}).status_code == 303


def announce(producer_client, release_id: int):
    path = f"/producer/releases/{release_id}/announce"
    token = csrf_from(producer_client.get(path).get_data(as_text=True))
    return producer_client.post(path, data={"csrf_token": token})


def test_an_announcement_reaches_a_confirmed_subscriber_with_its_calendar_file(
    app, session, client, clock, smtp_server
):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    release = make_release(session, on_sale_at=ON_SALE, units=30)
    later = make_release(session, on_sale_at=ON_SALE)
    release_id, slug, batch_slug, later_id = release.id, release.slug, release.batch.slug, later.id
    session.commit()

    sign_up_and_confirm(client, smtp_server, "reader@example.ie")
    (confirmation,) = smtp_server.received()
    assert confirmation.message["List-Unsubscribe"] == f"<{SHOP_URL}{links_in(confirmation)['unsubscribe']}>"
    assert confirmation.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The producer signs in (in the same browser: the shop starts a fresh session for them) and announces.
    sign_in(client, PRODUCER_EMAIL)
    assert announce(client, release_id).status_code == 303

    confirmation, delivery = smtp_server.received()
    message = delivery.message
    assert delivery.recipients == ["reader@example.ie"]
    assert message["Subject"].startswith("New release: ")
    assert message.get_content_type() == "multipart/mixed"

    body = plain_text_of(message)
    assert f"{SHOP_URL}/releases/{slug}" in body
    assert f"{SHOP_URL}/batches/{batch_slug}" in body
    assert "€89.00" in body
    assert "Thu 2 July 2026, 11:00 IST" in body and "2026-07-02T10:00:00Z" in body
    unsubscribe_url = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url in body
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "PUBLISH"
    assert attachment.get_filename() == f"{slug}.ics"
    calendar = Calendar.from_ical(attachment.get_content())
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == ON_SALE
    assert str(event["UID"]).startswith(f"release-{release_id}@")
    assert str(event["URL"]) == f"{SHOP_URL}/releases/{slug}"
    assert attachment.get_content().replace("\r\n", "\n") == client.get(f"/releases/{slug}/calendar.ics").get_data(
        as_text=True
    ).replace("\r\n", "\n"), "the attachment and the page's link are the same file"

    # The mail provider's one-click unsubscribe: a POST from its own server, no cookies, no form token.
    provider = app.test_client()
    response = provider.post(path_of(unsubscribe_url), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200

    sign_up_and_confirm(client, smtp_server, "other@example.ie")
    assert announce(client, later_id).status_code == 303
    assert [delivery.recipients for delivery in smtp_server.received()[3:]] == [["other@example.ie"]]


def test_a_long_unsubscribe_address_stays_one_readable_header_line(app):
    """Folded at 78 characters, the address would be written as RFC 2047 encoded words that providers ignore."""
    url = f"{SHOP_URL}/unsubscribe/{'A' * 150}"
    message = OutboxMessage(
        id=7,
        recipient="reader@example.ie",
        subject="New release: Rye",
        body="Hello\n",
        headers={"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        attachments=[{"filename": "rye.ics", "content_type": "text/calendar; method=PUBLISH", "content": "X\r\n"}],
    )

    raw = bytes(build_email(message, "Small Batch <shop@localhost>"))

    assert f"\nList-Unsubscribe: <{url}>\n".encode() in raw
    assert b"\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n" in raw
    assert b"=?utf-8?" not in raw
