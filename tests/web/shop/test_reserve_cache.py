"""The reserve POST's per-process caches are safe when stale; on both databases.

The release's rules may be up to RELEASE_RULES_CACHE_SECONDS old and a sold-out answer up to SOLD_OUT_CACHE_SECONDS:
the claim re-reads the release in its own transaction, so a stale cache never sells what the maker has stopped.
"""

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from storefront.domain.accounts import create_producer
from storefront.domain.activity import SHOP
from storefront.domain.releases import pause_release
from storefront.extensions import db
from storefront.models import Hold, Unit
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in
from tests.web.shop.test_reserve import ON_SALE, release_page_token, reserve


@pytest.fixture
def app_overrides() -> dict:
    return {"RELEASE_RULES_CACHE_SECONDS": 2, "SOLD_OUT_CACHE_SECONDS": 1}


@pytest.fixture
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def held_units(session, release) -> int:
    return session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "held"))


def test_a_pause_stops_reservations_at_once_although_the_rules_are_cached(app, session, client, clock, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="first@example.com").status_code == 303  # the rules are cached

    with write_transaction(session):
        pause_release(session, release.id, clock(), SHOP)
    response = reserve(client, release, token, email="second@example.com")

    assert response.status_code == 409
    assert "paused" in response.get_data(as_text=True)
    assert held_units(session, release) == 1


def test_a_sold_out_answer_is_remembered_for_a_second_only(app, session, client, clock, on_sale):
    release = make_release(session, units=1, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="winner@example.com").status_code == 303
    assert reserve(client, release, token, email="late@example.com").status_code == 409

    # The winner's hold ends: its unit is free again, but this process answered "sold out" a moment ago.
    with write_transaction(session):
        session.execute(Unit.__table__.update().values(status="available", hold_id=None, held_until=None))
        session.execute(Hold.__table__.update().values(status="released", ended_at=clock(), end_reason="cancelled"))
    assert reserve(client, release, token, email="late@example.com").status_code == 409

    clock.advance(seconds=1)
    assert reserve(client, release, token, email="late@example.com").status_code == 303
    assert held_units(session, release) == 1


def test_a_remembered_sold_out_answer_costs_no_stock_query(app, session, client, clock, on_sale):
    release = make_release(session, units=1, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="winner@example.com").status_code == 303
    assert reserve(client, release, token, email="late@example.com").status_code == 409

    statements: list[str] = []

    def count(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = reserve(client, release, token, email="later@example.com")
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert response.status_code == 409
    assert "sold" in response.get_data(as_text=True).lower()
    # Neither the free units nor the timed-out holds were looked for (the page's hold banner still reads its hold).
    stock_reads = [text for text in statements if "FROM unit" in text or "hold.expires_at <=" in text]
    assert stock_reads == []


def test_without_the_caches_every_answer_is_fresh(app, session, client, clock, on_sale):
    app.config.update(RELEASE_RULES_CACHE_SECONDS=0, SOLD_OUT_CACHE_SECONDS=0)
    release = make_release(session, units=1, on_sale_at=ON_SALE, allow_number_choice=False)
    session.commit()
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="winner@example.com").status_code == 303
    assert reserve(client, release, token, email="late@example.com").status_code == 409

    with write_transaction(session):
        session.execute(Unit.__table__.update().values(status="available", hold_id=None, held_until=None))
        session.execute(Hold.__table__.update().values(status="released", ended_at=clock(), end_reason="cancelled"))

    assert reserve(client, release, token, email="late@example.com").status_code == 303


def test_numbers_the_maker_puts_back_on_sale_can_be_reserved_at_once(app, session, client, clock, on_sale):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    sign_in(client, PRODUCER_EMAIL)
    producer_client = client  # the maker's own browser, in the process that serves buyers too
    release = make_release(session, units=2, on_sale_at=ON_SALE, allow_number_choice=False, withheld=[2])
    session.commit()
    token = release_page_token(producer_client, release)
    assert reserve(producer_client, release, token, email="winner@example.com").status_code == 303
    assert reserve(producer_client, release, token, email="late@example.com").status_code == 409  # remembered

    path = f"/producer/releases/{release.id}"
    return_token = csrf_from(producer_client.get(path).get_data(as_text=True))
    returned = producer_client.post(f"{path}/return", data={"return-csrf_token": return_token, "return-numbers": "2"})
    assert returned.status_code == 303

    assert reserve(producer_client, release, token, email="late@example.com").status_code == 303
    assert held_units(session, release) == 2
