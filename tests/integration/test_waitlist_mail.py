"""Waitlist double opt-in and unsubscribe end to end: a real HTTP server, and mail through a real SMTP server.

A visitor joins from a page served over HTTP, reads the confirmation the SMTP server received (aiosmtpd, in this
process), follows its link and presses the button with the page's own CSRF token, and sees their place in line.
The one-click unsubscribe a mail provider sends (RFC 8058, read from the List-Unsubscribe header) and the page's
button both take the address off; after that nothing more is delivered to it, though the waitlist mails others.
Tasks run inline (Huey's immediate mode), so each request has sent its mail before it answers.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.models import Hold, HoldStatus, Subscriber, SubscriberStatus, WaitlistEntry, WaitlistStatus
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.helpers import assert_audit_clean, release_committed, status_counts
from tests.integration.smtp import SHOP_URL, Delivery, SmtpServer
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from
from tests.web.waitlist import ON_SALE, sold_out_release

LINK = re.compile(rf"{re.escape(SHOP_URL)}/waitlist/(confirm|unsubscribe)/\S+")
JOIN_FORM = re.compile(r'<form class="waitlist__form" method="post" action="([^"]+)">')


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


class Visitor:
    """A browser without JavaScript: one cookie jar, talking HTTP to the live server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base_url + path, allow_redirects=False, timeout=10)

    def post(self, path: str, data: dict) -> requests.Response:
        return self.http.post(self.base_url + path, data=data, allow_redirects=False, timeout=10)

    def join_from(self, page_path: str, email: str, name: str = "") -> requests.Response:
        """Fill in the waitlist form on a page and send it."""
        page = self.get(page_path)
        assert page.status_code == 200
        form = JOIN_FORM.search(page.text)
        assert form, f"no waitlist form on {page_path}"
        return self.post(
            form.group(1), {"csrf_token": csrf_from(page.text[form.start() :]), "email": email, "name": name}
        )

    def press_button(self, path: str) -> requests.Response:
        """Open a page from a mail link and press its one button, with the CSRF token the page carries."""
        page = self.get(path)
        assert page.status_code == 200, page.text
        return self.post(path, {"csrf_token": csrf_from(page.text)})


def path_of(url: str) -> str:
    assert url.startswith(SHOP_URL + "/"), url
    return urlsplit(url).path


def links_in(delivery: Delivery) -> dict[str, str]:
    """The confirm and unsubscribe paths of a waitlist mail, read from its text."""
    return {match.group(1): path_of(match.group(0)) for match in LINK.finditer(delivery.text)}


def one_click(base_url: str, delivery: Delivery) -> requests.Response:
    """What a mail provider does with List-Unsubscribe-Post: POST the one-click body from its own server."""
    assert delivery.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_path = path_of(delivery.message["List-Unsubscribe"].strip("<>"))
    return requests.post(
        base_url + unsubscribe_path, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10
    )


def received_by(smtp_server: SmtpServer, address: str) -> list[Delivery]:
    return [delivery for delivery in smtp_server.received() if delivery.recipients == [address]]


def entry_status(session, email_key: str) -> set[str]:
    session.commit()
    return set(session.scalars(select(WaitlistEntry.status).where(WaitlistEntry.email_key == email_key)))


def free_one_number(session, release_id: int, now) -> None:
    """A public buyer lets their hold go: one number of the sold-out run comes free."""
    session.commit()
    hold = session.scalar(
        select(Hold)
        .where(Hold.release_id == release_id, Hold.status == HoldStatus.ACTIVE, Hold.for_offer.is_(False))
        .order_by(Hold.id)
        .limit(1)
    )
    release_committed(session, hold, now)


def join_and_confirm(visitor: Visitor, smtp_server: SmtpServer, page_path: str, email: str) -> str:
    """Join from a page and confirm from the delivered mail; the address of the place in line."""
    assert visitor.join_from(page_path, email).status_code == 303
    (confirmation,) = smtp_server.mails_to(email)
    pressed = visitor.press_button(links_in(confirmation)["confirm"])
    assert pressed.status_code == 303, pressed.text
    return pressed.headers["Location"]


def test_double_opt_in_then_one_click_unsubscribe_through_real_mail(app, session, clock, live_server, smtp_server):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    ann = Visitor(live_server.url)

    joined = ann.join_from(page_path, "ann@example.ie", name="Ann")

    assert (joined.status_code, joined.headers["Location"]) == (303, "/waitlist/check-your-inbox")
    assert "Check your inbox" in ann.get("/waitlist/check-your-inbox").text
    (confirmation,) = smtp_server.mails_to("ann@example.ie")
    message = confirmation.message
    assert message["Subject"] == f"Please confirm your place on the waitlist: {release.title}"
    assert confirmation.text.startswith("Hello Ann,")
    links = links_in(confirmation)
    assert set(links) == {"confirm", "unsubscribe"}
    assert message["List-Unsubscribe"] == f"<{SHOP_URL}{links['unsubscribe']}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.PENDING}

    # The link opens a page with a button; only pressing it (with the page's CSRF token) confirms.
    page = ann.get(links["confirm"])
    assert page.status_code == 200 and "Yes, keep my place" in page.text
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.PENDING}
    pressed = ann.post(links["confirm"], {"csrf_token": csrf_from(page.text)})
    assert pressed.status_code == 303
    place = pressed.headers["Location"]
    assert place.startswith(f"/releases/{release.slug}?waiter=") and place.endswith("#waitlist")
    assert "You are 1st in line" in ann.get(place).text
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.CONFIRMED}

    clock.advance(seconds=10)
    bob_place = join_and_confirm(Visitor(live_server.url), smtp_server, page_path, "bob@example.ie")
    assert "You are 2nd in line" in requests.get(live_server.url + bob_place, timeout=10).text

    # Ann's mail provider unsubscribes her with one click, from its own server: no cookies, no CSRF token.
    response = one_click(live_server.url, confirmation)
    assert response.status_code == 200 and "You are off the waitlists" in response.text
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.UNSUBSCRIBED}
    assert "You are 1st in line" in requests.get(live_server.url + bob_place, timeout=10).text

    # A number comes free: bob, now first, gets the offer by mail; ann gets nothing more.
    free_one_number(session, release.id, clock())
    (offer_mail,) = smtp_server.mails_to("bob@example.ie", count=2)[1:]
    assert offer_mail.message["Subject"].startswith("No. 1 of ")
    assert offer_mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received_by(smtp_server, "ann@example.ie") == [confirmation]
    assert "You are 1st in line" not in ann.get(place).text
    assert_audit_clean(session, clock())


def test_leaving_with_the_pages_button_stops_every_waitlist_mail(app, session, clock, live_server, smtp_server):
    batch = make_batch(session)
    session.commit()
    story_path = f"/batches/{batch.slug}"
    ann = Visitor(live_server.url)
    join_and_confirm(ann, smtp_server, story_path, "ann@example.ie")
    join_and_confirm(Visitor(live_server.url), smtp_server, story_path, "bob@example.ie")
    (confirmation,) = received_by(smtp_server, "ann@example.ie")
    confirmed_page = ann.get(links_in(confirmation)["confirm"]).text
    assert "You are on the waitlist" in confirmed_page

    # The unsubscribe link in the mail's text opens a page; its button (with the page's token) takes her off.
    unsubscribe_path = links_in(confirmation)["unsubscribe"]
    page = ann.get(unsubscribe_path)
    assert page.status_code == 200 and "Leave the waitlists" in page.text
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.CONFIRMED}
    left = ann.post(unsubscribe_path, {"csrf_token": csrf_from(page.text)})
    assert (left.status_code, left.headers["Location"]) == (303, unsubscribe_path)
    assert "You are off the waitlists" in ann.get(unsubscribe_path).text
    assert entry_status(session, "ann@example.ie") == {WaitlistStatus.UNSUBSCRIBED}

    # The maker announces the product's next release: the waiter still on the list hears of it, ann does not.
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
        session.add(
            Subscriber(
                email="reader@example.ie",
                email_key="reader@example.ie",
                status=SubscriberStatus.CONFIRMED,
                created_at=clock(),
                confirmed_at=clock(),
            )
        )
    release = make_release(session, batch=batch, on_sale_at=ON_SALE + timedelta(days=7))
    release_id = release.id
    session.commit()
    producer = Visitor(live_server.url)
    login = producer.get("/login")
    signed_in = producer.post(
        "/login", {"csrf_token": csrf_from(login.text), "email": PRODUCER_EMAIL, "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    announce_path = f"/producer/releases/{release_id}/announce"
    announce_page = producer.get(announce_path)
    assert producer.post(announce_path, {"csrf_token": csrf_from(announce_page.text)}).status_code == 303

    (announcement,) = smtp_server.mails_to("bob@example.ie", count=2)[1:]
    assert announcement.message["Subject"].startswith("New release")
    assert len(smtp_server.mails_to("reader@example.ie")) == 1
    assert received_by(smtp_server, "ann@example.ie") == [confirmation]
    assert status_counts(session, release_id)["available"] == 10
