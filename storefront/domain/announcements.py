"""Announcing a release to the confirmed subscribers: once per release, one outbox mail each.

The Announcement row is inserted before any mail is queued, and its unique release_id decides between two
attempts (a double click, two tabs, two requests at once on PostgreSQL): the loser gets AlreadyAnnounced and
queues nothing. The mail itself is composed by the caller (it renders templates and signs links, which the domain
does not do) and handed in as an AnnouncementMail: one text for everyone, with each subscriber's own unsubscribe
address put in where UNSUBSCRIBE_LINK stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from storefront import wakeups
from storefront.database import require_write_transaction
from storefront.domain.activity import Actor, record_activity
from storefront.domain.errors import DomainError
from storefront.domain.stock import count_stock
from storefront.domain.subscribers import list_unsubscribe_headers
from storefront.domain.waitlist import early_access_recipients
from storefront.models import Announcement, OutboxMessage, Release, Subscriber, SubscriberStatus, User
from storefront.unit_of_work import after_commit

# Stand in the composed body where each recipient's own unsubscribe address and early-access link go; no real
# text contains them.
UNSUBSCRIBE_LINK = "[[unsubscribe-link]]"
EARLY_ACCESS_LINK = "[[early-access-link]]"
# Mails inserted per statement: large lists go in a few round trips without one enormous statement.
INSERT_CHUNK = 1000


class AnnouncementError(DomainError):
    """A release could not be announced."""


class UnknownRelease(AnnouncementError):
    """There is no such release."""


class NotAnnounceable(AnnouncementError):
    """The release can no longer be bought: telling subscribers about it would only disappoint them."""


class NoSubscribers(AnnouncementError):
    """Nobody has confirmed a subscription: an announcement now would reach no one, and could not be sent again."""


class AlreadyAnnounced(AnnouncementError):
    """The release was announced before; it is announced once."""

    def __init__(self, announcement: Announcement) -> None:
        self.sent_at = announcement.sent_at
        self.recipient_count = announcement.recipient_count
        sent = f"{self.sent_at:%d %B %Y at %H:%M} UTC"
        people = "subscriber" if self.recipient_count == 1 else "subscribers"
        super().__init__(f"This release was already announced on {sent} to {self.recipient_count} {people}.")


@dataclass(frozen=True)
class WaiterMail:
    """The announcement as the product's waiters get it: with their own early-access link (when the release has
    early access) and their own link off the waitlists."""

    subject: str
    body: str  # UNSUBSCRIBE_LINK and EARLY_ACCESS_LINK mark where each waiter's own links go
    unsubscribe_url: Callable[[int], str]  # a waitlist entry's id -> its one-click unsubscribe address
    early_access_url: Callable[[int], str]  # a waitlist entry's id -> its personal early-access link


@dataclass(frozen=True)
class AnnouncementMail:
    """The announcement as every subscriber gets it, apart from their own unsubscribe address."""

    subject: str
    body: str  # UNSUBSCRIBE_LINK marks where each subscriber's unsubscribe address goes
    attachments: Sequence[dict[str, str]]  # [{"filename", "content_type", "content"}]
    unsubscribe_url: Callable[[int], str]  # a subscriber's id -> their one-click unsubscribe address
    # The product's waiters get this instead (one mail per address, even if also a subscriber); None: they don't.
    for_waiters: WaiterMail | None = None

    def body_for(self, unsubscribe_url: str) -> str:
        return self.body.replace(UNSUBSCRIBE_LINK, unsubscribe_url)


@dataclass(frozen=True)
class PastAnnouncement:
    """One announcement as the producer's list shows it."""

    announcement: Announcement
    release: Release
    sent_by_email: str


def find_announcement(session: Session | scoped_session, release_id: int) -> Announcement | None:
    return session.scalar(select(Announcement).where(Announcement.release_id == release_id))


def check_announceable(session: Session | scoped_session, release: Release, now: datetime) -> None:
    """Raise AlreadyAnnounced or NotAnnounceable when announcing `release` now would be refused."""
    existing = find_announcement(session, release.id)
    if existing is not None:
        raise AlreadyAnnounced(existing)
    if release.off_sale_at is not None and now >= release.off_sale_at:
        raise NotAnnounceable("This release has closed: there is nothing left to announce.")
    stock = count_stock(session, [release], now)[release.id]
    if now >= release.on_sale_at and stock.available <= 0:
        raise NotAnnounceable("This release is sold out: there is nothing left to announce.")


def announce_release(
    session: Session | scoped_session,
    release_id: int,
    now: datetime,
    actor: Actor,
    mail: AnnouncementMail,
) -> Announcement:
    """Record the announcement of a release and queue its mail to every confirmed subscriber and to the product's
    confirmed waiters (with their early-access links), once per release and once per address."""
    require_write_transaction(session)
    release = session.get(Release, release_id)
    if release is None:
        raise UnknownRelease("There is no such release.")
    check_announceable(session, release, now)
    waiters = early_access_recipients(session, release.batch.product_id) if mail.for_waiters is not None else []
    waiting_keys = {key for _, _, key in waiters}
    recipients = [
        (subscriber_id, email)
        for subscriber_id, email, key in session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.email_key)
            .where(Subscriber.status == SubscriberStatus.CONFIRMED)
            .order_by(Subscriber.id)
        ).all()
        if key not in waiting_keys
    ]
    if not recipients and not waiters:
        raise NoSubscribers("Nobody has confirmed a subscription yet, so there is no one to send this to.")

    announcement = Announcement(
        release_id=release.id, sent_by_id=actor.id, sent_at=now, recipient_count=0, subject=mail.subject[:300]
    )
    try:
        # A savepoint: when a concurrent announcement of this release committed first, the unique release_id
        # refuses this one and the transaction stays usable to read the winner's row for the message.
        with session.begin_nested():
            session.add(announcement)
            session.flush()
    except IntegrityError:
        raise AlreadyAnnounced(find_announcement(session, release.id)) from None

    rows = [outbox_row(mail, subscriber_id, email, now) for subscriber_id, email in recipients]
    rows += [waiter_row(mail, entry_id, email, now) for entry_id, email, _ in waiters]
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(OutboxMessage), rows[start : start + INSERT_CHUNK])
    announcement.recipient_count = len(rows)
    people = "subscriber" if len(rows) == 1 else "subscribers"
    record_activity(
        session,
        actor,
        "announced",
        "release",
        release.id,
        f'release "{release.title}" announced to {len(rows)} {people}',
        now,
    )
    session.flush()
    after_commit(session, "wake-mail-sender", wakeups.mail_queued.send)
    return announcement


def outbox_row(mail: AnnouncementMail, subscriber_id: int, email: str, now: datetime) -> dict:
    unsubscribe_url = mail.unsubscribe_url(subscriber_id)
    return {
        "recipient": email,
        "subject": mail.subject[:300],
        "body": mail.body_for(unsubscribe_url),
        "headers": list_unsubscribe_headers(unsubscribe_url),
        "attachments": [dict(attachment) for attachment in mail.attachments],
        "created_at": now,
        "attempts": 0,
        "last_error": "",
    }


def waiter_row(mail: AnnouncementMail, entry_id: int, email: str, now: datetime) -> dict:
    waiter_mail = mail.for_waiters
    unsubscribe_url = waiter_mail.unsubscribe_url(entry_id)
    body = waiter_mail.body.replace(UNSUBSCRIBE_LINK, unsubscribe_url)
    body = body.replace(EARLY_ACCESS_LINK, waiter_mail.early_access_url(entry_id))
    return {
        "recipient": email,
        "subject": waiter_mail.subject[:300],
        "body": body,
        "headers": list_unsubscribe_headers(unsubscribe_url),
        "attachments": [dict(attachment) for attachment in mail.attachments],
        "created_at": now,
        "attempts": 0,
        "last_error": "",
    }


def list_announcements(session: Session | scoped_session, limit: int = 100) -> list[PastAnnouncement]:
    """The latest announcements, newest first, with the release and who sent each."""
    rows = session.execute(
        select(Announcement, Release, User.email)
        .join(Release, Announcement.release_id == Release.id)
        .outerjoin(User, Announcement.sent_by_id == User.id)
        .order_by(Announcement.sent_at.desc(), Announcement.id.desc())
        .limit(limit)
    ).all()
    return [PastAnnouncement(announcement, release, email or "") for announcement, release, email in rows]
