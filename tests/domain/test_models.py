"""Model rules: money is whole minor units, counts are positive, times are aware UTC, numbers are unique."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from storefront.domain.stock import count_stock
from storefront.models import InvalidValue, Release, ReleaseStatus, Unit
from tests.factories import make_batch, make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price_amount", 89.0, "whole number"),
        ("price_amount", "8900", "whole number"),
        ("price_amount", True, "whole number"),
        ("price_amount", -1, "at least 0"),
        ("total_units", 0, "at least 1"),
        ("total_units", -5, "at least 1"),
        ("total_units", 2.5, "whole number"),
        ("per_customer_limit", 0, "at least 1"),
        ("currency", "euro", "three-letter ISO code"),
        ("slug", "Not A Slug!", "lowercase letters"),
    ],
)
def test_release_rejects_bad_values_with_a_clear_message(field, value, message):
    release = Release()
    with pytest.raises(InvalidValue, match=message):
        setattr(release, field, value)


def test_currency_is_stored_upper_case():
    assert Release(currency="eur").currency == "EUR"


def test_naive_on_sale_time_is_refused():
    with pytest.raises(InvalidValue, match="time zone"):
        Release(on_sale_at=datetime(2026, 7, 1, 10, 0))


def test_database_refuses_a_negative_price_even_past_the_model(session):
    release = make_release(session, units=1)
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(sa.update(Release).where(Release.id == release.id).values(price_amount=-100))
        session.flush()
    session.rollback()


def test_a_number_cannot_exist_twice_in_a_release(session):
    release = make_release(session, units=3)
    session.commit()
    session.add(Unit(release_id=release.id, number=2, status="available"))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_a_sold_unit_must_belong_to_an_order(session):
    release = make_release(session, units=1)
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(sa.update(Unit).where(Unit.release_id == release.id).values(status="sold"))
    session.rollback()


def test_times_come_back_aware_and_in_utc(session):
    paris = timezone(timedelta(hours=2))
    release = make_release(session, on_sale_at=datetime(2026, 7, 1, 12, 0, tzinfo=paris))
    session.commit()
    session.expire_all()
    stored = session.get(Release, release.id).on_sale_at
    assert stored == ON_SALE
    assert stored.utcoffset() == timedelta(0)


def test_naive_datetime_never_reaches_the_database(session):
    release = make_release(session)
    session.commit()
    with pytest.raises(StatementError, match="naive datetime"):
        session.execute(sa.update(Release).where(Release.id == release.id).values(on_sale_at=datetime(2026, 1, 1)))
    session.rollback()


def test_status_follows_the_clock_and_the_stock(session):
    release = make_release(session, units=2, on_sale_at=ON_SALE, off_sale_at=ON_SALE + timedelta(days=7))
    assert release.status_at(ON_SALE - timedelta(seconds=1), 2) is ReleaseStatus.UPCOMING
    assert release.status_at(ON_SALE, 2) is ReleaseStatus.ON_SALE
    assert release.status_at(ON_SALE, 0) is ReleaseStatus.SOLD_OUT
    assert release.status_at(ON_SALE + timedelta(days=7), 2) is ReleaseStatus.CLOSED


def test_stock_is_counted_from_the_unit_rows(session):
    first = make_release(session, units=5)
    second = make_release(session, units=3, batch=make_batch(session))
    session.execute(sa.update(Unit).where(Unit.release_id == first.id, Unit.number <= 2).values(status="withheld"))
    counts = count_stock(session, [first, second], ON_SALE)
    assert (counts[first.id].available, counts[first.id].withheld, counts[first.id].total) == (3, 2, 5)
    assert counts[second.id].available == 3
