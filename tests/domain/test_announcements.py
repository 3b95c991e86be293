"""Announcing a release: once per release, one mail per confirmed subscriber, never to anyone else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.database import NoWriteTransaction
from storefront.domain.activity import Actor
from storefront.domain.announcements import (
    UNSUBSCRIBE_LINK,
    AlreadyAnnounced,
    AnnouncementMail,
    NoSubscribers,
    NotAnnounceable,
    UnknownRelease,
    announce_release,
    list_announcements,
)
from storefront.domain.inventory import Buyer, claim
from storefront.domain.subscribers import confirm_subscription, subscribe, unsubscribe
from storefront.extensions import db
from storefront.models import ActivityEntry, Announcement, OutboxMessage
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import run_concurrently

ON_SALE = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # the clock starts the day before
ACTOR = Actor(id=None, email="ann@distillery.ie")
ATTACHMENT = {"filename": "drop.ics", "content_type": "text/calendar; method=PUBLISH", "content": "BEGIN:VCALENDAR"}


def mail() -> AnnouncementMail:
    return AnnouncementMail(
        subject="New release: Rye",
        body=f"Reserve your number.\nUnsubscribe: {UNSUBSCRIBE_LINK}\n",
        attachments=(ATTACHMENT,),
        unsubscribe_url=lambda subscriber_id: f"https://shop.example/unsubscribe/token-{subscriber_id}",
    )


def add_subscriber(session, email: str, now: datetime, state: str = "confirmed") -> int:
    with write_transaction(session):
        subscriber = subscribe(session, email, now, resend_after=timedelta(minutes=15)).subscriber
        if state in {"confirmed", "unsubscribed"}:
            confirm_subscription(session, subscriber.id, now)
        if state == "unsubscribed":
            unsubscribe(session, subscriber.id, now)
        return subscriber.id


def announce(session, release_id: int, now: datetime) -> Announcement:
    with write_transaction(session):
        return announce_release(session, release_id, now, ACTOR, mail())


def outbox(session) -> list[OutboxMessage]:
    session.commit()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def announcements(session) -> int:
    return session.scalar(select(func.count()).select_from(Announcement))


@pytest.fixture
def release_id(session) -> int:
    release_id = make_release(session, on_sale_at=ON_SALE, units=5).id
    session.commit()
    return release_id


def test_only_confirmed_subscribers_get_the_announcement_each_with_their_own_link(session, clock, release_id):
    ann = add_subscriber(session, "ann@example.ie", clock())
    bob = add_subscriber(session, "Bob@Example.ie", clock())
    add_subscriber(session, "pending@example.ie", clock(), state="pending")
    add_subscriber(session, "gone@example.ie", clock(), state="unsubscribed")

    announcement = announce(session, release_id, clock())

    assert (announcement.recipient_count, announcement.sent_at, announcement.subject) == (2, clock(), mail().subject)
    messages = outbox(session)
    assert [message.recipient for message in messages] == ["ann@example.ie", "Bob@Example.ie"]
    for message, subscriber_id in zip(messages, [ann, bob], strict=True):
        link = f"https://shop.example/unsubscribe/token-{subscriber_id}"
        assert message.subject == "New release: Rye"
        assert message.body == f"Reserve your number.\nUnsubscribe: {link}\n"
        assert message.headers == {
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert message.attachments == [ATTACHMENT]
        assert message.created_at == clock()


def test_the_announcement_is_recorded_with_who_when_and_an_activity_line(session, clock, release_id):
    add_subscriber(session, "ann@example.ie", clock())

    announce(session, release_id, clock())

    (past,) = list_announcements(session)
    assert (past.release.id, past.announcement.recipient_count, past.announcement.sent_at) == (release_id, 1, clock())
    entry = session.scalar(select(ActivityEntry).where(ActivityEntry.action == "announced"))
    assert (entry.subject_type, entry.subject_id, entry.actor_email, entry.occurred_at) == (
        "release",
        release_id,
        "ann@distillery.ie",
        clock(),
    )
    assert "1 subscriber" in entry.summary


def test_a_release_is_announced_once(session, clock, release_id):
    add_subscriber(session, "ann@example.ie", clock())
    announce(session, release_id, clock())
    sent_at = clock()
    clock.advance(minutes=3)
    add_subscriber(session, "late@example.ie", clock())

    with pytest.raises(AlreadyAnnounced) as refusal:
        announce(session, release_id, clock())

    assert (refusal.value.sent_at, refusal.value.recipient_count) == (sent_at, 1)
    assert "already announced on 01 July 2026 at 09:00 UTC to 1 subscriber" in refusal.value.message
    assert announcements(session) == 1
    assert len(outbox(session)) == 1


def test_unsubscribed_addresses_are_never_mailed_again(session, clock):
    gone = add_subscriber(session, "gone@example.ie", clock())
    add_subscriber(session, "ann@example.ie", clock())
    first = make_release(session, on_sale_at=ON_SALE).id
    second = make_release(session, on_sale_at=ON_SALE).id
    announce(session, first, clock())
    with write_transaction(session):
        unsubscribe(session, gone, clock())

    announce(session, second, clock())

    recipients = [message.recipient for message in outbox(session)]
    assert recipients == ["gone@example.ie", "ann@example.ie", "ann@example.ie"]


def test_an_upcoming_or_on_sale_release_may_be_announced(session, clock, release_id):
    add_subscriber(session, "ann@example.ie", clock())
    announce(session, release_id, clock())  # upcoming

    on_sale = make_release(session, on_sale_at=clock() - timedelta(hours=1)).id
    announce(session, on_sale, clock())
    assert announcements(session) == 2


def test_a_closed_release_is_refused(session, clock):
    add_subscriber(session, "ann@example.ie", clock())
    closed = make_release(session, on_sale_at=clock() - timedelta(days=2), off_sale_at=clock() - timedelta(days=1)).id

    with pytest.raises(NotAnnounceable, match="closed"):
        announce(session, closed, clock())
    assert announcements(session) == 0
    assert outbox(session) == []


def test_a_sold_out_release_is_refused(session, clock):
    add_subscriber(session, "ann@example.ie", clock())
    sold_out = make_release(session, on_sale_at=clock() - timedelta(hours=1), units=1).id
    with write_transaction(session):
        claim(session, sold_out, 1, Buyer("bob@example.ie", "bob@example.ie"), clock(), hold_for=timedelta(hours=1))

    with pytest.raises(NotAnnounceable, match="sold out"):
        announce(session, sold_out, clock())
    assert announcements(session) == 0


def test_with_no_confirmed_subscriber_nothing_is_recorded(session, clock, release_id):
    add_subscriber(session, "pending@example.ie", clock(), state="pending")

    with pytest.raises(NoSubscribers):
        announce(session, release_id, clock())

    assert announcements(session) == 0
    assert outbox(session) == []
    add_subscriber(session, "ann@example.ie", clock())
    assert announce(session, release_id, clock()).recipient_count == 1  # still possible once someone confirms


def test_an_unknown_release_is_refused(session, clock):
    add_subscriber(session, "ann@example.ie", clock())
    with pytest.raises(UnknownRelease):
        announce(session, 999, clock())


def test_announcing_needs_a_write_transaction(session, clock, release_id):
    with pytest.raises(NoWriteTransaction):
        announce_release(session, release_id, clock(), ACTOR, mail())


def test_a_long_list_is_inserted_in_chunks(session, clock, release_id, monkeypatch):
    monkeypatch.setattr("storefront.domain.announcements.INSERT_CHUNK", 7)
    for number in range(30):
        add_subscriber(session, f"reader{number}@example.ie", clock())

    assert announce(session, release_id, clock()).recipient_count == 30

    assert sorted(message.recipient for message in outbox(session)) == sorted(
        f"reader{number}@example.ie" for number in range(30)
    )


def test_concurrent_announcements_send_once(app, session, clock, backend):
    """Several producers' requests at once (two tabs, a double click): one announcement, one mail per subscriber."""
    for number in range(5):
        add_subscriber(session, f"reader{number}@example.ie", clock())
    rounds, racers = (5, 6) if backend == "postgresql" else (2, 3)
    for _ in range(rounds):
        release_id = make_release(session, on_sale_at=ON_SALE).id
        session.commit()

        def attempt(release_id=release_id):
            with write_transaction(db.session):
                return announce_release(db.session, release_id, clock(), ACTOR, mail()).recipient_count

        outcomes = run_concurrently(app, [attempt] * racers)

        winners = [outcome.value for outcome in outcomes if outcome.error is None]
        losers = [outcome.error for outcome in outcomes if outcome.error is not None]
        assert winners == [5], [outcome.trace for outcome in outcomes]
        assert all(isinstance(error, AlreadyAnnounced) and error.recipient_count == 5 for error in losers)
        session.commit()
        assert (
            session.scalar(select(func.count()).select_from(Announcement).where(Announcement.release_id == release_id))
            == 1
        )
    assert len(outbox(session)) == 5 * rounds
