"""The waitlist's rules beyond the engine's smoke tests: joining, the line, leaving, limits, pausing, one offer per
waiter per run, claims, and the auditor catching each waitlist invariant when the books are broken on purpose.

Every test runs on SQLite and on PostgreSQL; the sound ones end with the auditor finding nothing wrong.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from storefront.domain import waitlist
from storefront.domain.activity import SHOP, Actor
from storefront.domain.audit import audit
from storefront.domain.buyers import buyer_key
from storefront.domain.inventory import LimitReached, SoldOut
from storefront.domain.releases import ReleaseTerms, update_release
from storefront.domain.waitlist import (
    EntryEnded,
    InvalidWaitlistEmail,
    NotWaitable,
    OfferUnavailable,
    UnknownEntry,
    UnknownList,
)
from storefront.models import (
    ActivityEntry,
    Hold,
    OfferStatus,
    Release,
    Unit,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import (
    assert_audit_clean,
    claim_committed,
    convert_committed,
    new_order_for,
    release_committed,
    status_counts,
)

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
RESEND_AFTER = timedelta(minutes=15)
OFFER_FOR = timedelta(minutes=60)
PRODUCER = Actor(id=None, email="ann@distillery.ie")


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


# --- Helpers -------------------------------------------------------------------------------------------------------


def join(session, release: Release, email: str, now: datetime, *, product_list: bool = False) -> waitlist.Join:
    """Ask to join the release's list (or its product's list), in a transaction of its own."""
    session.commit()
    with write_transaction(session):
        return waitlist.join_waitlist(
            session,
            product_id=release.batch.product_id,
            release_id=None if product_list else release.id,
            email=email,
            buyer_key=buyer_key(email),
            name="",
            now=now,
            resend_after=RESEND_AFTER,
        )


def confirm(session, entry_id: int, now: datetime) -> WaitlistEntry:
    session.commit()
    with write_transaction(session):
        return waitlist.confirm_entry(session, entry_id, now)


def confirmed_waiter(session, release: Release, email: str, now: datetime) -> WaitlistEntry:
    """A waiter who joined and confirmed at `now`."""
    return confirm(session, join(session, release, email, now).entry.id, now)


def sold_out_release(session, clock, *, units: int = 2, limit: int = 2) -> tuple[Release, list[Hold]]:
    """A release whose every unit is held, one by each of `units` buyers."""
    release = make_release(session, on_sale_at=ON_SALE, units=units, limit=limit)
    session.commit()
    holds = [claim_committed(session, release.id, 1, f"buyer{n}@example.com", clock()) for n in range(units)]
    return release, holds


def offers_of(session, release_id: int) -> list[WaitlistOffer]:
    session.commit()
    return list(
        session.scalars(
            select(WaitlistOffer)
            .where(WaitlistOffer.release_id == release_id)
            .order_by(WaitlistOffer.id)
            .execution_options(populate_existing=True)
        )
    )


def position(session, entry: WaitlistEntry) -> int | None:
    session.commit()
    return waitlist.position_in_line(session, session.get(WaitlistEntry, entry.id, populate_existing=True))


def claim_offer(session, offer: WaitlistOffer, now: datetime, hold_for: timedelta = timedelta(minutes=10)) -> Hold:
    session.commit()
    with write_transaction(session):
        return waitlist.claim_offer(session, offer.id, now, hold_for)


def offer_hold(session, offer: WaitlistOffer) -> Hold:
    return session.get(Hold, offer.hold_id, populate_existing=True)


def activity_actions(session) -> list[str]:
    session.commit()
    return list(session.scalars(select(ActivityEntry.action).order_by(ActivityEntry.id)))


def problems_now(session, clock) -> list[str]:
    session.commit()
    problems = audit(session, clock())
    session.rollback()
    return problems


# --- Joining -------------------------------------------------------------------------------------------------------


def test_joining_again_is_the_same_entry_and_mails_again_only_after_the_resend_wait(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=3)
    session.commit()

    first = join(session, release, "Ann@Example.com", clock())
    again = join(session, release, "ann@example.com", clock() + timedelta(minutes=1))
    later = join(session, release, "ann@example.com", clock() + timedelta(minutes=16))

    assert first.send_confirmation and first.entry.status == WaitlistStatus.PENDING
    assert again.entry.id == first.entry.id and not again.send_confirmation
    assert later.entry.id == first.entry.id and later.send_confirmation
    assert later.entry.confirmation_sent_at == clock() + timedelta(minutes=16)
    assert later.entry.email == "ann@example.com"  # mail goes where they asked the last time

    confirmed = confirm(session, first.entry.id, clock() + timedelta(minutes=17))
    repeat = join(session, release, "ANN@example.com", clock() + timedelta(hours=2))
    assert (repeat.entry.id, repeat.entry.status, repeat.send_confirmation) == (
        confirmed.id,
        WaitlistStatus.CONFIRMED,
        False,
    )
    assert repeat.entry.confirmed_at == clock() + timedelta(minutes=17)  # joining again keeps the place
    # Confirming twice is harmless, and keeps the first confirmation's time.
    assert confirm(session, first.entry.id, clock() + timedelta(hours=3)).confirmed_at == clock() + timedelta(
        minutes=17
    )
    assert session.scalar(select(func.count()).select_from(WaitlistEntry)) == 1
    assert_audit_clean(session, clock())


def test_joining_again_after_unsubscribing_goes_to_the_back_of_the_line(session, clock):
    release, _holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    product_entry = confirmed_waiter_of_product(session, release, "ann@example.com", clock())

    with write_transaction(session):
        assert waitlist.unsubscribe_address(session, ann.id, clock() + timedelta(minutes=1)) == []
    # Off every list of the shop, the product's too.
    for entry_id in (ann.id, product_entry.id):
        assert session.get(WaitlistEntry, entry_id, populate_existing=True).status == WaitlistStatus.UNSUBSCRIBED
    assert position(session, bob) == 1
    with pytest.raises(EntryEnded):
        confirm(session, ann.id, clock() + timedelta(minutes=2))  # an old confirmation link does not bring it back

    rejoined = join(session, release, "ann@example.com", clock() + timedelta(minutes=20))
    assert rejoined.entry.id == ann.id and rejoined.send_confirmation
    assert (rejoined.entry.status, rejoined.entry.confirmed_at) == (WaitlistStatus.PENDING, None)
    assert position(session, rejoined.entry) is None  # not in line until confirmed again
    confirm(session, ann.id, clock() + timedelta(minutes=21))
    assert position(session, ann) == 2
    assert position(session, bob) == 1
    assert_audit_clean(session, clock())


def confirmed_waiter_of_product(session, release: Release, email: str, now: datetime) -> WaitlistEntry:
    return confirm(session, join(session, release, email, now, product_list=True).entry.id, now)


def test_lists_that_do_not_exist_or_have_closed_are_refused(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=3)
    other = make_release(session, on_sale_at=ON_SALE, units=3)
    closed = make_release(session, on_sale_at=ON_SALE, off_sale_at=ON_SALE + timedelta(minutes=30), units=3)
    session.commit()
    clock.set(ON_SALE + timedelta(hours=1))

    def join_list(product_id: int, release_id: int | None, email: str = "ann@example.com"):
        with write_transaction(session):
            return waitlist.join_waitlist(
                session,
                product_id=product_id,
                release_id=release_id,
                email=email,
                buyer_key="ann@example.com",
                name="",
                now=clock(),
                resend_after=RESEND_AFTER,
            )

    product_id = release.batch.product_id
    with pytest.raises(UnknownList, match="no such product"):
        join_list(10**6, None)
    with pytest.raises(UnknownList, match="no such release"):
        join_list(product_id, 10**6)
    with pytest.raises(UnknownList, match="no such release"):
        join_list(product_id, other.id)  # a release of another product
    with pytest.raises(NotWaitable, match="has closed"):
        join_list(closed.batch.product_id, closed.id)
    with pytest.raises(InvalidWaitlistEmail):
        join_list(product_id, release.id, email="not an address")
    with pytest.raises(UnknownEntry):
        confirm(session, 10**6, clock())
    assert session.scalar(select(func.count()).select_from(WaitlistEntry)) == 0
    # The closed release's product can still be waited for: its next batches.
    assert join_list(closed.batch.product_id, None).send_confirmation


def test_the_line_is_in_order_of_confirmation_not_of_joining(session, clock):
    release, holds = sold_out_release(session, clock)
    start = clock()
    ann = join(session, release, "ann@example.com", start).entry
    bob = join(session, release, "bob@example.com", start + timedelta(minutes=1)).entry
    carl = join(session, release, "carl@example.com", start + timedelta(minutes=2)).entry
    confirm(session, carl.id, start + timedelta(minutes=3))
    confirm(session, ann.id, start + timedelta(minutes=4))

    assert [position(session, entry) for entry in (carl, ann, bob)] == [1, 2, None]  # Bob has not confirmed

    release_committed(session, holds[1], clock())

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number) == (carl.id, 2)
    assert [position(session, entry) for entry in (carl, ann, bob)] == [None, 1, None]
    assert_audit_clean(session, clock())


def test_two_freed_numbers_go_lowest_first_to_the_longest_waiting(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=3, limit=3)
    session.commit()
    hold = claim_committed(session, release.id, 2, "buyer@example.com", clock())
    claim_committed(session, release.id, 1, "other@example.com", clock())
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    carl = confirmed_waiter(session, release, "carl@example.com", clock() + timedelta(seconds=2))

    release_committed(session, hold, clock())

    offers = offers_of(session, release.id)
    assert [(offer.entry_id, offer.number, offer.status) for offer in offers] == [
        (ann.id, 1, OfferStatus.LIVE),
        (bob.id, 2, OfferStatus.LIVE),
    ]
    assert position(session, carl) == 1
    assert status_counts(session, release.id) == {"held": 3}
    assert_audit_clean(session, clock())


# --- Leaving -------------------------------------------------------------------------------------------------------


def test_removing_an_entry_withdraws_its_live_offer_and_passes_the_number_on(session, clock):
    release, holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, holds[0], clock())
    (offer,) = offers_of(session, release.id)

    with write_transaction(session):
        hold_ids = waitlist.remove_entry(session, ann.id, clock(), PRODUCER)
    assert hold_ids == [offer.hold_id]
    # The caller ends the hold through the one flow every ending takes (for a hold without a payment page, this).
    release_committed(session, offer_hold(session, offer), clock(), reason="withdrawn")

    first, second = offers_of(session, release.id)
    assert (first.entry_id, first.status) == (ann.id, OfferStatus.WITHDRAWN)
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)
    removed = session.get(WaitlistEntry, ann.id, populate_existing=True)
    assert (removed.status, removed.ended_at) == (WaitlistStatus.REMOVED, clock())
    assert position(session, removed) is None
    assert activity_actions(session)[-1] == "waitlist.removed"
    with write_transaction(session):
        assert waitlist.remove_entry(session, ann.id, clock(), PRODUCER) == []  # twice is harmless
    with write_transaction(session):
        assert waitlist.unsubscribe_address(session, bob.id, clock()) == [second.hold_id]
    assert_audit_clean(session, clock())


# --- The per-customer limit ----------------------------------------------------------------------------------------


def test_a_waiter_who_already_has_the_limit_is_skipped_for_the_next(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=2, limit=1)
    session.commit()
    bought = claim_committed(session, release.id, 1, "ann@example.com", clock())
    convert_committed(session, bought, new_order_for(bought), clock())
    hold = claim_committed(session, release.id, 1, "buyer@example.com", clock())
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))

    release_committed(session, hold, clock())

    skipped, offered = offers_of(session, release.id)
    assert (skipped.entry_id, skipped.status, skipped.unit_id, skipped.hold_id) == (
        ann.id,
        OfferStatus.SKIPPED,
        None,
        None,
    )
    assert skipped.note == "already has the limit of 1"
    assert (offered.entry_id, offered.number, offered.status) == (bob.id, 2, OfferStatus.LIVE)
    assert position(session, ann) is None  # passed over for this run: no turn comes back later
    assert_audit_clean(session, clock())


def test_claiming_is_refused_when_the_waiter_has_the_limit_by_then(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=2, limit=2)
    session.commit()
    bought = claim_committed(session, release.id, 1, "ann@example.com", clock())
    convert_committed(session, bought, new_order_for(bought), clock())
    hold = claim_committed(session, release.id, 1, "buyer@example.com", clock())
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, hold, clock())
    (offer,) = offers_of(session, release.id)
    assert offer.entry_id == ann.id  # one of two: she may have another
    # Meanwhile the producer lowers the limit to one per customer.
    with write_transaction(session):
        update_release(session, release.id, replace(terms_of(release), per_customer_limit=1), clock(), PRODUCER)

    with pytest.raises(LimitReached, match="limit of 1"):
        claim_offer(session, offer, clock())

    (offer,) = offers_of(session, release.id)
    assert offer.status == OfferStatus.LIVE  # nothing changed: she can still pass it on
    release_committed(session, offer_hold(session, offer), clock(), reason="declined")
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.DECLINED
    assert (second.entry_id, second.number) == (bob.id, 2)
    assert_audit_clean(session, clock())


def terms_of(release: Release) -> ReleaseTerms:
    return ReleaseTerms(
        title=release.title,
        slug=release.slug,
        price_amount=release.price_amount,
        currency=release.currency,
        total_units=release.total_units,
        on_sale_at=release.on_sale_at,
        off_sale_at=release.off_sale_at,
        per_customer_limit=release.per_customer_limit,
        allow_number_choice=release.allow_number_choice,
    )


# --- Offers ----------------------------------------------------------------------------------------------------------


def test_confirming_offers_a_number_of_a_sold_out_release_that_is_on_public_sale(session, clock):
    release, holds = sold_out_release(session, clock)
    release_committed(session, holds[0], clock())  # nobody waiting: back on public sale
    assert status_counts(session, release.id)["available"] == 1
    assert session.get(Release, release.id, populate_existing=True).sold_out_at == clock()
    pending = join(session, release, "ann@example.com", clock()).entry
    assert offers_of(session, release.id) == []  # not until confirmed

    ann = confirm(session, pending.id, clock() + timedelta(minutes=1))

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number, offer.status) == (ann.id, 1, OfferStatus.LIVE)
    assert status_counts(session, release.id) == {"held": 2}
    with pytest.raises(SoldOut):
        claim_committed(session, release.id, 1, "public@example.com", clock())
    assert_audit_clean(session, clock())


def test_pausing_offers_sends_freed_numbers_to_public_sale_and_resuming_offers_them(session, clock):
    release, holds = sold_out_release(session, clock, units=3)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    with write_transaction(session):
        waitlist.set_offers_paused(session, release.id, True, clock(), PRODUCER)

    release_committed(session, holds[0], clock())
    release_committed(session, holds[1], clock())

    assert offers_of(session, release.id) == []
    assert status_counts(session, release.id)["available"] == 2
    assert_audit_clean(session, clock())  # paused: waiters may watch numbers go on public sale
    assert claim_committed(session, release.id, 1, "public@example.com", clock()).quantity == 1

    with write_transaction(session):
        waitlist.set_offers_paused(session, release.id, False, clock(), PRODUCER)

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number) == (ann.id, 2)
    assert position(session, bob) == 1
    assert status_counts(session, release.id) == {"held": 3}
    assert activity_actions(session)[-2:] == ["waitlist.paused", "waitlist.resumed"]
    with write_transaction(session):  # resuming twice changes nothing
        waitlist.set_offers_paused(session, release.id, False, clock(), PRODUCER)
    assert activity_actions(session)[-1] == "waitlist.resumed" and len(offers_of(session, release.id)) == 1
    assert_audit_clean(session, clock())


def test_a_waiter_gets_one_offer_per_run_whatever_they_did_with_it(session, clock):
    release, holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    release_committed(session, holds[0], clock())
    (offer,) = offers_of(session, release.id)
    release_committed(session, offer_hold(session, offer), clock(), reason="declined")

    release_committed(session, holds[1], clock())  # another number comes free: not Ann's turn again

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.status) == (ann.id, OfferStatus.DECLINED)
    assert status_counts(session, release.id)["available"] == 2
    # Leaving and joining again does not make a new turn either.
    with write_transaction(session):
        waitlist.unsubscribe_address(session, ann.id, clock())
    confirm(session, join(session, release, "ann@example.com", clock()).entry.id, clock())
    assert len(offers_of(session, release.id)) == 1
    assert_audit_clean(session, clock())


def test_claiming_twice_returns_the_same_hold_and_an_ended_offer_cannot_be_claimed(session, clock):
    release, holds = sold_out_release(session, clock)
    convert_committed(session, holds[1], new_order_for(holds[1]), clock())
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, holds[0], clock())
    (offer,) = offers_of(session, release.id)

    hold = claim_offer(session, offer, clock())
    again = claim_offer(session, offer, clock() + timedelta(minutes=1))

    assert again.id == hold.id and again.expires_at == clock() + timedelta(minutes=10)
    assert offers_of(session, release.id)[0].status == OfferStatus.CLAIMED
    # The payment page is left to time out: the hold ends, and the number passes on.
    clock.advance(minutes=11)
    release_committed(session, offer_hold(session, offer), clock(), reason="expired")
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.LAPSED
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)
    with pytest.raises(OfferUnavailable, match="ran out of time"):
        claim_offer(session, first, clock())

    # Bob does not answer in time either: past its expiry, before the sweeper, it can no longer be claimed.
    assert second.expires_at == clock() + OFFER_FOR  # mailed (the worker runs at once in tests), time started
    clock.advance(minutes=61)
    with pytest.raises(OfferUnavailable, match="ran out of time"):
        claim_offer(session, second, clock())
    assert offers_of(session, release.id)[1].status == OfferStatus.LIVE  # the sweeper will end it
    release_committed(session, offer_hold(session, second), clock(), reason="expired")
    assert status_counts(session, release.id)["available"] == 1
    assert_audit_clean(session, clock())


def test_an_offer_declined_or_withdrawn_says_so_when_claimed(session, clock):
    release, holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, holds[0], clock())
    release_committed(session, holds[1], clock())
    first, second = offers_of(session, release.id)
    assert first.entry_id == ann.id

    release_committed(session, offer_hold(session, first), clock(), reason="declined")
    with write_transaction(session):
        hold_ids = waitlist.unsubscribe_address(session, second.entry_id, clock())
    release_committed(session, session.get(Hold, hold_ids[0]), clock(), reason="withdrawn")

    with pytest.raises(OfferUnavailable, match="declined"):
        claim_offer(session, first, clock())
    with pytest.raises(OfferUnavailable, match="withdrawn"):
        claim_offer(session, second, clock())
    assert [offer.status for offer in offers_of(session, release.id)] == [OfferStatus.DECLINED, OfferStatus.WITHDRAWN]
    assert status_counts(session, release.id)["available"] == 2
    assert_audit_clean(session, clock())


def test_raising_the_run_of_a_sold_out_release_offers_the_new_numbers_to_waiters_first(session, clock):
    release, holds = sold_out_release(session, clock)
    release_committed(session, holds[0], clock())  # sold out once: its freed number went back on sale
    claim_committed(session, release.id, 1, "buyer9@example.com", clock())  # and sold out again
    ann = confirmed_waiter(session, release, "ann@example.com", clock())

    with write_transaction(session):
        update_release(session, release.id, replace(terms_of(release), total_units=3), clock(), PRODUCER)

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number) == (ann.id, 3)
    assert status_counts(session, release.id) == {"held": 3}
    assert_audit_clean(session, clock())


# --- The auditor catches broken waitlist books ---------------------------------------------------------------------


def two_live_offers(session, clock) -> tuple[Release, WaitlistOffer, WaitlistOffer]:
    release, holds = sold_out_release(session, clock)
    confirmed_waiter(session, release, "ann@example.com", clock())
    confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, holds[0], clock())
    release_committed(session, holds[1], clock())
    first, second = offers_of(session, release.id)
    assert problems_now(session, clock) == []
    return release, first, second


def test_the_auditor_reports_an_ended_offer_still_holding_its_number(session, clock):
    _release, offer, _other = two_live_offers(session, clock)

    session.execute(update(WaitlistOffer).where(WaitlistOffer.id == offer.id).values(status=OfferStatus.DECLINED))

    problems = problems_now(session, clock)
    assert f"offer {offer.id}: declined but its hold {offer.hold_id} is still active" in problems
    assert f"hold {offer.hold_id}: an active offer hold without an open offer" in problems


def test_the_auditor_reports_an_offered_number_its_offer_does_not_hold(session, clock):
    release, offer, _other = two_live_offers(session, clock)

    session.execute(
        update(Unit).where(Unit.id == offer.unit_id).values(status="available", hold_id=None, held_until=None)
    )

    problems = problems_now(session, clock)
    expected = (
        f"release {release.id}: open offer {offer.id} of No. {offer.number} has hold active and unit available "
        "in hold None"
    )
    assert expected in problems


def test_the_auditor_reports_one_number_in_two_open_offers(session, clock):
    _release, first, second = two_live_offers(session, clock)
    # The schema refuses it (a partial unique index): take that away to plant it.
    session.execute(text("DROP INDEX ix_waitlist_offer_live_unit"))

    session.execute(update(WaitlistOffer).where(WaitlistOffer.id == second.id).values(unit_id=first.unit_id))

    problems = problems_now(session, clock)
    assert f"unit {first.unit_id}: in 2 open offers at once" in problems


def test_the_auditor_reports_a_waiter_with_two_open_offers_for_one_release(session, clock):
    release, first, second = two_live_offers(session, clock)
    ann_key = session.get(WaitlistEntry, first.entry_id).email_key
    # Bob's entry turns into a second entry of Ann's (the schema allows one per list, so not on the same list).
    session.execute(
        update(WaitlistEntry).where(WaitlistEntry.id == second.entry_id).values(email_key=ann_key, release_id=None)
    )

    problems = problems_now(session, clock)
    assert problems == [f"release {release.id}: {ann_key} has 2 open offers at once"]


def test_the_auditor_reports_numbers_on_public_sale_while_waiters_wait(session, clock):
    release, holds = sold_out_release(session, clock)
    confirmed_waiter(session, release, "ann@example.com", clock())
    with write_transaction(session):
        waitlist.set_offers_paused(session, release.id, True, clock(), PRODUCER)
    release_committed(session, holds[0], clock())
    assert problems_now(session, clock) == []

    # Offers resumed without offering what is on public sale.
    session.execute(update(Release).where(Release.id == release.id).values(waitlist_paused_at=None))

    assert problems_now(session, clock) == [
        f"release {release.id}: 1 units on public sale while confirmed waiters have had no offer"
    ]
    with write_transaction(session):  # what resuming does: offer them
        waitlist.offer_free_units(session, release.id, clock())
    assert problems_now(session, clock) == []


def test_the_shop_itself_can_pause_offers(session, clock):
    release, _holds = sold_out_release(session, clock)
    with write_transaction(session):
        paused = waitlist.set_offers_paused(session, release.id, True, clock(), SHOP)
    assert paused.waitlist_paused_at == clock()
    with pytest.raises(UnknownList), write_transaction(session):
        waitlist.set_offers_paused(session, 10**6, True, clock(), SHOP)
    assert_audit_clean(session, clock())


def test_joining_again_soon_after_leaving_asks_for_a_new_confirmation_at_once(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=3)
    session.commit()
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    with write_transaction(session):
        waitlist.unsubscribe_address(session, ann.id, clock() + timedelta(minutes=1))

    back = join(session, release, "ann@example.com", clock() + timedelta(minutes=2))

    assert back.send_confirmation, "she asked again from her own mailbox's link: the new confirmation goes now"
    assert (back.entry.id, back.entry.status, back.entry.confirmed_at) == (ann.id, WaitlistStatus.PENDING, None)
    again = join(session, release, "ann@example.com", clock() + timedelta(minutes=3))
    assert not again.send_confirmation  # and from then on the resend wait applies as for any pending address
