"""Subscribers: people who asked to hear about new batches, with double opt-in and one-click unsubscribe.

The states (storefront.models.audience.SubscriberStatus):

- signing up creates a *pending* subscriber and asks for a confirmation mail; signing up again while pending asks
  for another one only when the last is at least `resend_after` old, so a form posted in a loop mails nobody twice;
- confirming (the signed link in that mail) makes them *confirmed*: only they are sent announcements;
- unsubscribing, from any state, makes them *unsubscribed*: never mailed again, unless they sign up again and
  confirm that from their own mailbox.

Signing up gives the same outcome to the caller whatever the address's state, apart from whether to mail: the
page a visitor sees must not tell whether an address is already on the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, scoped_session

from storefront.database import require_write_transaction
from storefront.domain.accounts import email_key
from storefront.domain.buyers import InvalidBuyerEmail
from storefront.domain.errors import DomainError
from storefront.models import Subscriber, SubscriberStatus

# RFC 8058: a mail provider's "unsubscribe" button POSTs this body to the List-Unsubscribe address.
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


class SubscriptionError(DomainError):
    """A subscription could not be changed as asked."""


class InvalidSubscriberEmail(SubscriptionError):
    """The address cannot be subscribed: not an address, or one that could pass for another."""


class UnknownSubscriber(SubscriptionError):
    """The link names a subscriber the shop no longer has."""


class SubscriptionEnded(SubscriptionError):
    """A confirmation link for an address that has since unsubscribed: it must sign up again."""


@dataclass(frozen=True)
class SignUp:
    """What signing up did: the subscriber, and whether the caller must queue a confirmation mail now."""

    subscriber: Subscriber
    send_confirmation: bool


@dataclass(frozen=True)
class SubscriberCounts:
    confirmed: int = 0
    pending: int = 0
    unsubscribed: int = 0

    @property
    def total(self) -> int:
        return self.confirmed + self.pending + self.unsubscribed


def subscriber_email_key(email: str) -> str:
    """The key one mailbox is subscribed under, however it is typed (the accounts' rule: "+tags" count apart)."""
    try:
        return email_key(email)
    except InvalidBuyerEmail as error:
        raise InvalidSubscriberEmail(error.message) from error


def list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """The headers every mail to a subscriber carries: a one-click unsubscribe address (RFC 2369, RFC 8058)."""
    return {"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": ONE_CLICK_BODY}


def subscribe(session: Session | scoped_session, email: str, now: datetime, *, resend_after: timedelta) -> SignUp:
    """Sign an address up (or again); say whether a confirmation mail is due. Idempotent for a confirmed address."""
    require_write_transaction(session)
    typed = email.strip()
    key = subscriber_email_key(typed)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key).with_for_update())
    if subscriber is None:
        subscriber = add_pending_subscriber(session, typed, key, now)
        if subscriber is not None:
            return SignUp(subscriber, send_confirmation=True)
        # Another request signed the same address up a moment ago: treat this one as a repeat of it.
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key).with_for_update())

    if subscriber.status == SubscriberStatus.CONFIRMED:
        return SignUp(subscriber, send_confirmation=False)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        # Asking again is a new request for mail: it waits for a new confirmation from the mailbox.
        subscriber.status = SubscriberStatus.PENDING
        subscriber.confirmed_at = None
    due = subscriber.confirmation_sent_at is None or now - subscriber.confirmation_sent_at >= resend_after
    if due:
        subscriber.email = typed  # mail goes where they asked this time
        subscriber.confirmation_sent_at = now
    session.flush()
    return SignUp(subscriber, send_confirmation=due)


def add_pending_subscriber(session: Session, typed: str, key: str, now: datetime) -> Subscriber | None:
    """Insert a new pending subscriber; None when a concurrent sign-up inserted the same key first."""
    subscriber = Subscriber(
        email=typed, email_key=key, status=SubscriberStatus.PENDING, created_at=now, confirmation_sent_at=now
    )
    try:
        # A savepoint: the unique email_key settles two sign-ups racing (PostgreSQL) without losing the transaction.
        with session.begin_nested():
            session.add(subscriber)
            session.flush()
    except IntegrityError:
        return None
    return subscriber


def get_subscriber(session: Session | scoped_session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None:
        raise UnknownSubscriber("This link is for a subscription the shop no longer has.")
    return subscriber


def confirm_subscription(session: Session | scoped_session, subscriber_id: int, now: datetime) -> Subscriber:
    """Confirm a pending subscriber from their link; confirming twice is harmless, an unsubscribed one is refused."""
    require_write_transaction(session)
    subscriber = get_subscriber(session, subscriber_id)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        raise SubscriptionEnded(
            "This address has unsubscribed since that link was sent. Sign up again to hear about new batches."
        )
    if subscriber.status == SubscriberStatus.PENDING:
        subscriber.status = SubscriberStatus.CONFIRMED
        subscriber.confirmed_at = now
        session.flush()
    return subscriber


def unsubscribe(session: Session | scoped_session, subscriber_id: int, now: datetime) -> Subscriber:
    """Stop all mail to a subscriber, whatever their state; unsubscribing twice is harmless."""
    require_write_transaction(session)
    subscriber = get_subscriber(session, subscriber_id)
    if subscriber.status != SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.unsubscribed_at = now
        session.flush()
    return subscriber


def count_subscribers(session: Session | scoped_session) -> SubscriberCounts:
    """How many subscribers are in each state."""
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    found = {status: count for status, count in rows}
    return SubscriberCounts(
        confirmed=found.get(SubscriberStatus.CONFIRMED, 0),
        pending=found.get(SubscriberStatus.PENDING, 0),
        unsubscribed=found.get(SubscriberStatus.UNSUBSCRIBED, 0),
    )


def count_confirmed(session: Session | scoped_session) -> int:
    """How many subscribers an announcement sent now would go to."""
    return session.scalar(
        select(func.count()).select_from(Subscriber).where(Subscriber.status == SubscriberStatus.CONFIRMED)
    )
