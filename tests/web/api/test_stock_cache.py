"""The live count every release page polls is counted at most once a second per process, then answered from memory.
On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from storefront.models import Unit
from tests.factories import make_release
from tests.web.shop.test_reserve import ON_SALE
from tests.web.test_page_queries import counted


@pytest.fixture
def app_overrides() -> dict:
    return {"STOCK_CACHE_SECONDS": 1}


def test_the_count_is_kept_for_a_second_then_counted_again(app, session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=4, on_sale_at=ON_SALE)
    session.commit()
    path = f"/api/releases/{release.slug}"
    assert client.get(path).get_json()["available"] == 4

    # The producer keeps No. 1 back: one fewer available.
    session.execute(sa.update(Unit).where(Unit.release_id == release.id, Unit.number == 1).values(status="withheld"))
    session.commit()
    with counted(app) as sent:
        within_the_second = client.get(path)
    assert within_the_second.get_json()["available"] == 4
    assert sent == []
    assert within_the_second.headers["Cache-Control"] == "no-store"

    clock.advance(seconds=1)
    assert client.get(path).get_json()["available"] == 3


def test_an_unknown_release_is_not_remembered(app, session, client, clock):
    assert client.get("/api/releases/not-yet").status_code == 404
    release = make_release(session, units=2, on_sale_at=ON_SALE, slug="not-yet")
    session.commit()
    assert client.get(f"/api/releases/{release.slug}").status_code == 200
