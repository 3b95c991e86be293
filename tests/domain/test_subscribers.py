"""Subscribers: double opt-in, a throttled resend, confirm and unsubscribe, one row per mailbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storefront.database import NoWriteTransaction
from storefront.domain.subscribers import (
    InvalidSubscriberEmail,
    SubscriberCounts,
    SubscriptionEnded,
    UnknownSubscriber,
    confirm_subscription,
    count_confirmed,
    count_subscribers,
    list_unsubscribe_headers,
    subscribe,
    unsubscribe,
)
from storefront.extensions import db
from storefront.models import Subscriber, SubscriberStatus
from storefront.unit_of_work import write_transaction
from tests.integration.helpers import run_concurrently

RESEND_AFTER = timedelta(minutes=15)


def sign_up(session, email, now):
    with write_transaction(session):
        result = subscribe(session, email, now, resend_after=RESEND_AFTER)
    return result


def confirm(session, subscriber_id, now):
    with write_transaction(session):
        return confirm_subscription(session, subscriber_id, now)


def leave(session, subscriber_id, now):
    with write_transaction(session):
        return unsubscribe(session, subscriber_id, now)


def subscriber_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Subscriber))


def test_signing_up_creates_a_pending_subscriber_and_asks_for_a_confirmation(session, clock):
    result = sign_up(session, "  Ann@Example.IE ", clock())

    assert result.send_confirmation
    subscriber = result.subscriber
    assert (subscriber.email, subscriber.email_key, subscriber.status) == (
        "Ann@Example.IE",
        "ann@example.ie",
        SubscriberStatus.PENDING,
    )
    assert subscriber.confirmation_sent_at == clock()
    assert subscriber.created_at == clock()
    assert subscriber.confirmed_at is None


def test_signing_up_again_while_pending_resends_at_most_once_per_window(session, clock):
    first = sign_up(session, "ann@example.ie", clock())

    clock.advance(minutes=14, seconds=59)
    again = sign_up(session, "ANN@example.ie", clock())
    assert not again.send_confirmation
    assert again.subscriber.id == first.subscriber.id
    assert again.subscriber.confirmation_sent_at == clock() - timedelta(minutes=14, seconds=59)

    clock.advance(seconds=1)
    later = sign_up(session, "ann@example.ie", clock())
    assert later.send_confirmation
    assert later.subscriber.confirmation_sent_at == clock()
    assert later.subscriber.status == SubscriberStatus.PENDING
    assert subscriber_count(session) == 1


def test_a_confirmed_subscriber_signing_up_again_changes_nothing_and_is_not_mailed(session, clock):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    confirm(session, subscriber.id, clock())
    confirmed_at = clock()

    for _ in range(3):
        clock.advance(days=1)
        again = sign_up(session, "ann@example.ie", clock())
        assert not again.send_confirmation
        assert again.subscriber.status == SubscriberStatus.CONFIRMED
        assert again.subscriber.confirmed_at == confirmed_at
    assert subscriber_count(session) == 1


def test_confirming_makes_a_subscriber_confirmed_and_twice_is_harmless(session, clock):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    clock.advance(minutes=5)
    assert confirm(session, subscriber.id, clock()).status == SubscriberStatus.CONFIRMED
    confirmed_at = clock()

    clock.advance(minutes=5)
    again = confirm(session, subscriber.id, clock())
    assert (again.status, again.confirmed_at) == (SubscriberStatus.CONFIRMED, confirmed_at)


@pytest.mark.parametrize("confirmed_first", [False, True])
def test_unsubscribing_works_from_any_state_and_twice_is_harmless(session, clock, confirmed_first):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    if confirmed_first:
        confirm(session, subscriber.id, clock())
    clock.advance(hours=1)

    left = leave(session, subscriber.id, clock())
    assert (left.status, left.unsubscribed_at) == (SubscriberStatus.UNSUBSCRIBED, clock())
    clock.advance(hours=1)
    again = leave(session, subscriber.id, clock())
    assert (again.status, again.unsubscribed_at) == (SubscriberStatus.UNSUBSCRIBED, clock() - timedelta(hours=1))


def test_an_old_confirmation_link_cannot_bring_back_an_unsubscribed_address(session, clock):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    confirm(session, subscriber.id, clock())
    leave(session, subscriber.id, clock())

    with pytest.raises(SubscriptionEnded):
        confirm(session, subscriber.id, clock())
    session.rollback()
    assert session.get(Subscriber, subscriber.id).status == SubscriberStatus.UNSUBSCRIBED


def test_an_unsubscribed_address_signing_up_again_gets_a_fresh_confirmation_and_no_mail_until_then(session, clock):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    confirm(session, subscriber.id, clock())
    clock.advance(days=10)
    leave(session, subscriber.id, clock())
    clock.advance(days=10)

    again = sign_up(session, "ann@example.ie", clock())
    assert again.send_confirmation
    assert again.subscriber.id == subscriber.id
    assert (again.subscriber.status, again.subscriber.confirmed_at) == (SubscriberStatus.PENDING, None)
    assert count_confirmed(session) == 0

    confirm(session, subscriber.id, clock())
    assert count_confirmed(session) == 1


def test_an_unsubscribe_and_quick_sign_up_again_does_not_mail_twice_within_the_window(session, clock):
    subscriber = sign_up(session, "ann@example.ie", clock()).subscriber
    leave(session, subscriber.id, clock())
    clock.advance(minutes=1)

    again = sign_up(session, "ann@example.ie", clock())
    assert not again.send_confirmation  # the mail sent a minute ago still confirms: the address is pending again
    confirm(session, subscriber.id, clock())
    assert session.get(Subscriber, subscriber.id).status == SubscriberStatus.CONFIRMED


@pytest.mark.parametrize("email", ["", "not an address", "ann@", "аnn@example.ie", "a b@example.ie"])
def test_an_address_that_cannot_be_keyed_is_refused_and_nothing_is_stored(session, clock, email):
    with pytest.raises(InvalidSubscriberEmail):
        sign_up(session, email, clock())
    session.rollback()
    assert subscriber_count(session) == 0


def test_plus_tags_are_separate_subscriptions_as_they_are_separate_accounts(session, clock):
    sign_up(session, "ann@example.ie", clock())
    sign_up(session, "ann+news@example.ie", clock())
    assert subscriber_count(session) == 2


def test_links_for_a_subscriber_the_shop_no_longer_has_are_refused(session, clock):
    with pytest.raises(UnknownSubscriber):
        confirm(session, 999, clock())
    session.rollback()
    with pytest.raises(UnknownSubscriber):
        leave(session, 999, clock())


def test_counts_by_state(session, clock):
    pending = sign_up(session, "pending@example.ie", clock()).subscriber
    for email in ["one@example.ie", "two@example.ie"]:
        confirm(session, sign_up(session, email, clock()).subscriber.id, clock())
    leave(session, sign_up(session, "gone@example.ie", clock()).subscriber.id, clock())

    assert count_subscribers(session) == SubscriberCounts(confirmed=2, pending=1, unsubscribed=1)
    assert count_subscribers(session).total == 4
    assert count_confirmed(session) == 2
    assert pending.status == SubscriberStatus.PENDING


def test_changes_need_a_write_transaction(session, clock):
    with pytest.raises(NoWriteTransaction):
        subscribe(session, "ann@example.ie", clock(), resend_after=RESEND_AFTER)


def test_list_unsubscribe_headers_follow_rfc_8058():
    assert list_unsubscribe_headers("https://shop.example/unsubscribe/abc") == {
        "List-Unsubscribe": "<https://shop.example/unsubscribe/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_the_same_address_signing_up_at_once_is_one_subscriber_mailed_once(app, session, clock, backend):
    """A form posted twice at the same moment (two tabs, a bot): one row, one confirmation, nothing fails."""
    racers = 6 if backend == "postgresql" else 3
    for round_ in range(3):
        email = f"racer{round_}@example.ie"

        def attempt(email=email):
            with write_transaction(db.session):
                return subscribe(db.session, email, clock(), resend_after=RESEND_AFTER).send_confirmation

        outcomes = run_concurrently(app, [attempt] * racers)

        assert [outcome.trace for outcome in outcomes if outcome.error is not None] == []
        assert sorted(outcome.value for outcome in outcomes) == [False] * (racers - 1) + [True]
    session.commit()
    assert subscriber_count(session) == 3
