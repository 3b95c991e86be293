"""The offer engine, one transaction at a time: freed numbers go to the next confirmed waiter, never to the public.

Every test runs on SQLite and on PostgreSQL and ends with the invariant auditor finding nothing wrong.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront.domain import waitlist
from storefront.domain.inventory import SoldOut
from storefront.models import Hold, OfferStatus, Unit, WaitlistOffer
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
OFFER_FOR = timedelta(minutes=60)


@pytest.fixture(autouse=True)
def books_balance_after_each_test(session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    yield
    assert_audit_clean(session, clock())


def sold_out_release(session, clock, units=2, limit=2):
    release = make_release(session, on_sale_at=ON_SALE, units=units, limit=limit)
    session.commit()
    holds = [claim_committed(session, release.id, 1, f"buyer{n}@example.com", clock()) for n in range(units)]
    return release, holds


def confirmed_waiter(session, release, email, now):
    with write_transaction(session):
        joined = waitlist.join_waitlist(
            session,
            product_id=release.batch.product_id,
            release_id=release.id,
            email=email,
            buyer_key=email,
            name="",
            now=now,
            resend_after=timedelta(minutes=15),
        )
        entry_id = joined.entry.id
    with write_transaction(session):
        return waitlist.confirm_entry(session, entry_id, now)


def offers_of(session, release_id):
    return session.scalars(
        select(WaitlistOffer).where(WaitlistOffer.release_id == release_id).order_by(WaitlistOffer.id)
    ).all()


def test_a_cancelled_hold_goes_to_the_first_waiter_not_the_public(session, clock):
    release, holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    clock.advance(seconds=1)
    bob = confirmed_waiter(session, release, "bob@example.com", clock())
    assert waitlist.position_in_line(session, ann) == 1
    assert waitlist.position_in_line(session, bob) == 2

    release_committed(session, holds[0], clock())

    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number, offer.status) == (ann.id, 1, OfferStatus.LIVE)
    hold = session.get(Hold, offer.hold_id)
    assert hold.for_offer and hold.buyer_email == "ann@example.com"
    assert status_counts(session, release.id)["held"] == 2
    assert waitlist.position_in_line(session, bob) == 1
    with pytest.raises(SoldOut):
        claim_committed(session, release.id, 1, "public@example.com", clock())


def test_a_lapsed_offer_passes_to_the_next_waiter_then_public_sale(session, clock):
    release, holds = sold_out_release(session, clock)
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    release_committed(session, holds[0], clock())
    (first,) = offers_of(session, release.id)
    # The worker (immediate in tests) mailed it as the transaction committed, and its time started then.
    assert first.notified_at == clock() and first.expires_at == clock() + OFFER_FOR
    with write_transaction(session):
        assert waitlist.start_offer_clock(session, first.id, clock(), OFFER_FOR) is None  # once only
    clock.advance(minutes=61)

    release_committed(session, session.get(Hold, first.hold_id), clock(), reason="expired")

    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.LAPSED
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)
    release_committed(session, session.get(Hold, second.hold_id), clock(), reason="declined")
    assert offers_of(session, release.id)[1].status == OfferStatus.DECLINED
    # Nobody left in line: the number is for sale again.
    assert status_counts(session, release.id)["available"] == 1
    assert claim_committed(session, release.id, 1, "public@example.com", clock()).quantity == 1


def test_a_claimed_and_paid_offer_is_purchased(session, clock):
    release, holds = sold_out_release(session, clock)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    release_committed(session, holds[1], clock())
    (offer,) = offers_of(session, release.id)
    with write_transaction(session):
        hold = waitlist.claim_offer(session, offer.id, clock(), timedelta(minutes=10))
    assert hold.expires_at == clock() + timedelta(minutes=10)
    convert_committed(session, hold, new_order_for(hold), clock())
    session.refresh(offer)
    assert offer.status == OfferStatus.PURCHASED
    assert waitlist.position_in_line(session, ann) is None
    unit = session.scalar(select(Unit).where(Unit.release_id == release.id, Unit.number == 2))
    assert unit.status == "sold"


def test_no_offers_before_the_release_sold_out(session, clock):
    release = make_release(session, on_sale_at=ON_SALE, units=3)
    session.commit()
    hold = claim_committed(session, release.id, 1, "buyer@example.com", clock())
    confirmed_waiter(session, release, "ann@example.com", clock())
    release_committed(session, hold, clock())
    assert offers_of(session, release.id) == []
    assert status_counts(session, release.id)["available"] == 3
