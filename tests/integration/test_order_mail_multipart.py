"""The buyer's order mails as a mail program receives them: text and HTML (multipart/alternative), with the numbers,
the batch's story, the address as the destination writes it, the total with shipping and the shop's contact.

Payments are real Checkout Sessions on the Stripe simulator; the mails go through the outbox to a real SMTP server
in this process (aiosmtpd) and are parsed back with the email package. Tasks run inline (Huey's immediate mode).
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from storefront import db
from storefront.checkout import flows
from storefront.domain.accounts import create_producer
from storefront.models import Order, OutboxMessage, ShopSettings
from storefront.notifications import build_email
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.smtp import SHOP_URL, Delivery, SmtpServer
from tests.payments import event_for, hold_webhooks, hold_with_checkout, pay, post_event
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
CONTACT = "hello@carlow.example"
HOSTILE_LINE = "<script>alert(1)</script> Flat 2"


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


@pytest.fixture
def release_id(app, session, clock, stripe_sim) -> int:
    """Carlow Rye, 240 numbered bottles at €89.00 with €6.50 shipping; the shop's contact and dispatch time set."""
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
        session.add(ShopSettings(id=1, contact_email=CONTACT, dispatch_time="within 2 working days"))
    batch = make_batch(session)
    batch.title = "Carlow Rye"
    release = make_release(session, batch=batch, units=240, on_sale_at=ON_SALE)
    release.shipping_amount = 650
    session.commit()
    return release.id


def buy(app, client, stripe_sim, release_id: int, now, address: dict, quantity: int = 2) -> str:
    """Hold, pay on the simulator's page and deliver Stripe's signed event; returns the Checkout Session's id."""
    hold = hold_with_checkout(app, release_id, "ann@example.ie", now, quantity=quantity)
    pay(stripe_sim, hold.payment_session_id, name="Ann Byrne", address=address)
    event = event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)
    assert post_event(client, event).status_code == 200
    return hold.payment_session_id


class VisibleText(HTMLParser):
    """The text a reader sees in an HTML mail, one entry per line (a <br> or the end of a block ends a line)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines, self.current, self.hrefs = [], "", []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href"))
        if tag in {"br", "p", "li", "tr", "h1", "h2", "td"}:
            self.end_line()

    def handle_endtag(self, tag):
        if tag in {"p", "li", "tr", "h1", "h2", "td", "title"}:
            self.end_line()

    def handle_data(self, data):
        self.current += data

    def end_line(self):
        if self.current.strip():
            self.lines.append(" ".join(self.current.split()))
        self.current = ""


def visible(html: str) -> VisibleText:
    parser = VisibleText()
    parser.feed(html)
    parser.end_line()
    return parser


def parts(delivery: Delivery) -> tuple[str, VisibleText]:
    """Check the mail is text then HTML, both UTF-8; return the text and what the HTML shows."""
    message = delivery.message
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    return delivery.text, visible(delivery.html)


def test_the_confirmation_is_text_and_html_with_numbers_story_address_total_and_contact(
    app, session, client, clock, stripe_sim, smtp_server, release_id
):
    address = {
        "line1": "1 Quay Street",
        "line2": HOSTILE_LINE,
        "city": "Galway",
        "postal_code": "H91 XK2C",
        "country": "IE",
    }
    buy(app, client, stripe_sim, release_id, clock(), address)

    (delivery,) = smtp_server.received()
    text, html = parts(delivery)
    story_url = f"{SHOP_URL}/batches/{story_slug(session)}"
    address_lines = ["Ann Byrne", "1 Quay Street", HOSTILE_LINE, "Galway", "H91 XK2C", "Ireland"]

    assert "Shipping to:\n" + "".join(f"  {line}\n" for line in address_lines) in text
    for expected in ("No. 1 of 240", "No. 2 of 240", "Carlow Rye", story_url, CONTACT, "2 × €89.00: €178.00"):
        assert expected in text, expected
    assert "Shipping: €6.50\nPaid: €184.50" in text
    assert "We pack your order and send it within 2 working days." in text
    assert "We will email you when it ships, with its tracking details." in text

    start = html.lines.index("Shipping to")
    assert html.lines[start + 1 : start + 1 + len(address_lines)] == address_lines
    for expected in ("No. 1 of 240", "No. 2 of 240", "Shipping", "€6.50", "€184.50", "What happens next"):
        assert expected in html.lines, expected
    assert story_url in html.hrefs and f"mailto:{CONTACT}" in html.hrefs
    assert html.lines[0] == delivery.message["Subject"] and html.lines[1] == "Small Batch"
    # The buyer's own text is text in the HTML part: escaped, never markup.
    assert "<script>" not in delivery.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in delivery.html


def story_slug(session) -> str:
    session.commit()
    return session.scalar(select(Order)).release.batch.slug


def test_the_shipping_mail_is_text_and_html_with_tracking_address_numbers_and_contact(
    app, session, client, clock, stripe_sim, smtp_server, release_id
):
    address = {"line1": "Hauptstraße 5", "city": "Berlin", "postal_code": "10115", "country": "DE"}
    buy(app, client, stripe_sim, release_id, clock(), address, quantity=1)
    session.commit()
    order = session.scalar(select(Order))
    clock.advance(days=1)
    sign_in(client, PRODUCER_EMAIL)
    order_page = client.get(f"/producer/orders/{order.id}").get_data(as_text=True)
    shipped = client.post(
        f"/producer/orders/{order.id}/shipped",
        data={"csrf_token": csrf_from(order_page), "carrier": "ups", "tracking_number": "1Z999AA10123456784"},
    )
    assert shipped.status_code == 303

    _confirmation, delivery = smtp_server.received()
    text, html = parts(delivery)
    tracking_url = "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    for expected in ("No. 1 of 240", "Carrier: UPS", "Tracking number: 1Z999AA10123456784", tracking_url, CONTACT):
        assert expected in text, expected
    assert "Shipping to:\n  Ann Byrne\n  Hauptstraße 5\n  10115 Berlin\n  Germany\n" in text
    start = html.lines.index("Shipping to")
    assert html.lines[start + 1 : start + 5] == ["Ann Byrne", "Hauptstraße 5", "10115 Berlin", "Germany"]
    assert "1Z999AA10123456784" in html.lines and "No. 1 of 240" in html.lines
    assert tracking_url in html.hrefs and f"mailto:{CONTACT}" in html.hrefs


@pytest.mark.parametrize("bob_takes_number_one", [False, True], ids=["numbers still free", "numbers gone"])
def test_a_late_payment_says_instead_only_when_its_numbers_changed(
    app, session, client, clock, stripe_sim, smtp_server, release_id, bob_takes_number_one
):
    hold = hold_with_checkout(app, release_id, "ann@example.ie", clock())
    pay(stripe_sim, hold.payment_session_id, name="Ann Byrne", address={"line1": "1 Quay St", "country": "IE"})
    completed = event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)
    # The shop ended the hold before the payment's news arrived (a lost race with the sweeper).
    with write_transaction(db.session):
        flows.finish_ending(db.session, hold.id, "expired", clock())
    if bob_takes_number_one:
        hold_with_checkout(app, release_id, "bob@example.com", clock(), number=1)

    assert post_event(client, completed).status_code == 200

    (delivery,) = smtp_server.mails_to("ann@example.ie")
    text, html = parts(delivery)
    html_text = " ".join(html.lines)
    if bob_takes_number_one:
        assert "No. 2 of 240" in text
        for body in (" ".join(text.split()), html_text):
            assert "gave you the numbers above instead" in body
    else:
        assert "No. 1 of 240" in text
        for body in (" ".join(text.split()), html_text):
            assert "instead" not in body
            assert "The numbers were still free, and they are yours." in body


def test_an_html_mail_with_an_attachment_is_mixed_around_the_alternative_and_keeps_its_headers():
    message = OutboxMessage(
        id=7,
        recipient="ann@example.ie",
        subject="Ölfass No. 3 — on sale soon",
        body="Plain words, ünïcode.\n",
        html_body="<p>Plain words, ünïcode.</p>\n",
        headers={"List-Unsubscribe": "<https://smallbatch.example/unsubscribe/abc>"},
        attachments=[{"filename": "drop.ics", "content_type": "text/calendar; method=PUBLISH", "content": "BEGIN:X"}],
    )
    parsed = email.message_from_bytes(
        bytes(build_email(message, "Small Batch <shop@localhost>")), policy=email.policy.default
    )

    assert parsed.get_content_type() == "multipart/mixed"
    alternative, calendar = parsed.iter_parts()
    assert [part.get_content_type() for part in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert parsed.get_body(preferencelist=("plain",)).get_content() == "Plain words, ünïcode.\n"
    assert parsed.get_body(preferencelist=("html",)).get_content() == "<p>Plain words, ünïcode.</p>\n"
    assert (calendar.get_content_type(), calendar.get_filename()) == ("text/calendar", "drop.ics")
    assert parsed["List-Unsubscribe"] == "<https://smallbatch.example/unsubscribe/abc>"
    assert parsed["Subject"] == "Ölfass No. 3 — on sale soon"


def test_a_text_only_mail_stays_a_single_text_part():
    message = OutboxMessage(id=8, recipient="ann@example.ie", subject="Refund", body="Refunded.\n", html_body="")
    parsed = email.message_from_bytes(
        bytes(build_email(message, "Small Batch <shop@localhost>")), policy=email.policy.default
    )
    assert (parsed.get_content_type(), parsed.get_content()) == ("text/plain", "Refunded.\n")
