"""The producer's announcement pages: preview the exact mail, send it once, and see subscribers and past sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain.subscribers import confirm_subscription, subscribe, unsubscribe
from storefront.models import ActivityEntry, Announcement, OutboxMessage
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.producer.conftest import PRODUCER_EMAIL, csrf_from

SHOP_URL = "https://smallbatch.example"
ON_SALE = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # Thu 2 July 2026, 11:00 in Dublin (IST)


@pytest.fixture
def app_overrides() -> dict:
    return {"SHOP_URL": SHOP_URL}


def add_subscriber(session, email: str, now: datetime, state: str = "confirmed") -> int:
    with write_transaction(session):
        subscriber = subscribe(session, email, now, resend_after=timedelta(minutes=15)).subscriber
        if state in {"confirmed", "unsubscribed"}:
            confirm_subscription(session, subscriber.id, now)
        if state == "unsubscribed":
            unsubscribe(session, subscriber.id, now)
        return subscriber.id


@pytest.fixture
def release(session):
    release = make_release(session, on_sale_at=ON_SALE, units=30, price=8900)
    session.commit()
    return release


@pytest.fixture
def audience(session, clock):
    """Two confirmed subscribers, one waiting to confirm, one gone."""
    add_subscriber(session, "ann@example.ie", clock())
    add_subscriber(session, "bob@example.ie", clock())
    add_subscriber(session, "pending@example.ie", clock(), state="pending")
    add_subscriber(session, "gone@example.ie", clock(), state="unsubscribed")


def preview_path(release) -> str:
    return f"/producer/releases/{release.id}/announce"


def outbox_count(session) -> int:
    session.commit()
    return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_the_preview_shows_the_exact_mail_and_how_many_it_goes_to(app, session, producer_client, release, audience):
    response = producer_client.get(preview_path(release))

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Send to 2 subscribers" in page
    assert f"New release: {release.batch.title}, {release.title}" in page
    assert "€89.00" in page
    assert "Thu 2 July 2026, 11:00 IST" in page
    assert "2026-07-02T10:00:00Z" in page
    assert f"{SHOP_URL}/releases/{release.slug}" in page
    assert f"{SHOP_URL}/batches/{release.batch.slug}" in page
    assert "their own unsubscribe link" in page
    assert f"{release.slug}.ics" in page
    assert 'name="csrf_token"' in page
    assert outbox_count(session) == 0, "previewing sends nothing"


def test_sending_mails_every_confirmed_subscriber_once_and_records_it(app, session, producer_client, release, audience):
    preview = producer_client.get(preview_path(release)).get_data(as_text=True)

    response = producer_client.post(preview_path(release), data={"csrf_token": csrf_from(preview)})

    assert response.status_code == 303
    assert response.headers["Location"] == preview_path(release)
    after = producer_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "on its way to 2 subscribers" in after
    assert f"by {PRODUCER_EMAIL} to 2" in after
    assert "Send to" not in after
    session.commit()
    messages = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [message.recipient for message in messages] == ["ann@example.ie", "bob@example.ie"]
    preview_subject = f"New release: {release.batch.title}, {release.title} (on sale Thu 2 July 2026, 11:00 IST)"
    assert {message.subject for message in messages} == {preview_subject}
    for message in messages:
        unsubscribe_url = message.headers["List-Unsubscribe"].strip("<>")
        assert unsubscribe_url.startswith(f"{SHOP_URL}/unsubscribe/")
        assert unsubscribe_url in message.body
        assert message.attachments[0]["filename"] == f"{release.slug}.ics"
    announcement = session.scalar(select(Announcement))
    assert (announcement.release_id, announcement.recipient_count) == (release.id, 2)
    assert announcement.sent_by_id is not None
    entry = session.scalar(select(ActivityEntry).where(ActivityEntry.action == "announced"))
    assert (entry.actor_email, entry.subject_id) == (PRODUCER_EMAIL, release.id)


def test_a_second_send_says_when_it_went_and_mails_nobody(app, session, producer_client, release, audience, clock):
    token = csrf_from(producer_client.get(preview_path(release)).get_data(as_text=True))
    assert producer_client.post(preview_path(release), data={"csrf_token": token}).status_code == 303
    clock.advance(minutes=2)

    again = producer_client.post(preview_path(release), data={"csrf_token": token})  # a second tab, a double click

    assert again.status_code == 409
    assert "Already sent on Wed 1 July 2026, 10:00 IST to 2 subscribers." in again.get_data(as_text=True)
    assert outbox_count(session) == 2
    assert session.scalar(select(func.count()).select_from(Announcement)) == 1


def test_sending_without_the_form_token_is_refused(app, session, producer_client, release, audience):
    response = producer_client.post(preview_path(release), data={})
    assert response.status_code == 400
    assert outbox_count(session) == 0


def test_a_closed_release_cannot_be_announced(app, session, producer_client, audience, clock):
    closed = make_release(session, on_sale_at=clock() - timedelta(days=2), off_sale_at=clock() - timedelta(days=1))
    session.commit()

    preview = producer_client.get(preview_path(closed))
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "has closed" in page and "Send to" not in page

    response = producer_client.post(
        preview_path(closed), data={"csrf_token": csrf_from(producer_client.get("/logout").get_data(as_text=True))}
    )
    assert response.status_code == 409
    assert "has closed" in response.get_data(as_text=True)
    assert outbox_count(session) == 0


def test_an_on_sale_release_may_be_announced(app, session, producer_client, audience, clock):
    on_sale = make_release(session, on_sale_at=clock() - timedelta(hours=1))
    session.commit()
    preview = producer_client.get(preview_path(on_sale)).get_data(as_text=True)
    assert "On sale now" in preview
    assert producer_client.post(preview_path(on_sale), data={"csrf_token": csrf_from(preview)}).status_code == 303
    assert outbox_count(session) == 2


def test_with_nobody_confirmed_there_is_no_button(app, session, producer_client, release):
    page = producer_client.get(preview_path(release)).get_data(as_text=True)
    assert "no one to send this to" in page and "Send to" not in page


def test_an_unknown_release_is_a_404(producer_client):
    assert producer_client.get("/producer/releases/999/announce").status_code == 404


def test_the_subscribers_page_counts_lists_and_shows_past_announcements(
    app, session, producer_client, release, audience
):
    token = csrf_from(producer_client.get(preview_path(release)).get_data(as_text=True))
    producer_client.post(preview_path(release), data={"csrf_token": token})

    response = producer_client.get("/producer/subscribers")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-count="confirmed">2<' in page
    assert 'data-count="pending">1<' in page
    assert 'data-count="unsubscribed">1<' in page
    for email in ["ann@example.ie", "bob@example.ie", "pending@example.ie", "gone@example.ie"]:
        assert email in page
    assert f'data-announcement="{release.slug}"' in page
    assert release.title in page and PRODUCER_EMAIL in page


def test_the_subscriber_list_is_paginated(app, session, producer_client, clock):
    for number in range(55):
        clock.advance(seconds=1)
        add_subscriber(session, f"reader{number:02d}@example.ie", clock())

    first = producer_client.get("/producer/subscribers").get_data(as_text=True)
    second = producer_client.get("/producer/subscribers?page=2").get_data(as_text=True)

    assert first.count("data-subscriber=") == 50 and "Page 1 of 2" in first
    assert "reader54@example.ie" in first and "reader04@example.ie" not in first
    assert second.count("data-subscriber=") == 5 and "reader00@example.ie" in second
    beyond = producer_client.get("/producer/subscribers?page=9")
    assert beyond.status_code == 200 and "There is no page 9" in beyond.get_data(as_text=True)
    assert producer_client.get("/producer/subscribers?page=-3").status_code == 200
    assert producer_client.get("/producer/subscribers?page=abc").status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_anonymous_visitors_are_sent_to_sign_in(client, release, method):
    for path in ["/producer/subscribers", preview_path(release)]:
        if method == "POST" and path == "/producer/subscribers":
            continue
        data = {"csrf_token": csrf_from(client.get("/login").get_data(as_text=True))} if method == "POST" else None
        response = client.open(path, method=method, data=data)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_customers_are_refused(session, customer_client, release, audience):
    token = csrf_from(customer_client.get("/logout").get_data(as_text=True))
    assert customer_client.get("/producer/subscribers").status_code == 403
    assert customer_client.get(preview_path(release)).status_code == 403
    assert customer_client.post(preview_path(release), data={"csrf_token": token}).status_code == 403
    assert outbox_count(session) == 0
