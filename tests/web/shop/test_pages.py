"""The public pages: home, release, errors; on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from storefront.models import Order, Unit
from tests.factories import make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def sell_all(session, release):
    order = Order(
        release_id=release.id,
        email="a@example.com",
        buyer_key="a@example.com",
        quantity=release.total_units,
        unit_amount=release.price_amount,
        amount_total=release.price_amount * release.total_units,
        currency="EUR",
    )
    session.add(order)
    session.flush()
    session.execute(
        sa.update(Unit).where(Unit.release_id == release.id).values(status="sold", order_id=order.id, sold_at=ON_SALE)
    )


def test_home_lists_live_upcoming_and_sold_out_releases(app, session, client, clock):
    clock.set(ON_SALE + timedelta(hours=1))
    live = make_release(session, units=5, on_sale_at=ON_SALE, slug="live-rye")
    upcoming = make_release(session, units=5, on_sale_at=ON_SALE + timedelta(days=3), slug="next-rye")
    gone = make_release(session, units=2, on_sale_at=ON_SALE - timedelta(days=9), slug="gone-rye")
    sell_all(session, gone)
    session.commit()

    page = client.get("/").get_data(as_text=True)

    on_sale_section = page.split("On sale now")[1].split("Coming soon")[0]
    assert live.title in on_sale_section
    coming_section = page.split("Coming soon")[1].split("Recently sold out")[0]
    assert upcoming.title in coming_section
    assert gone.title in page.split("Recently sold out")[1]


def test_release_page_shows_price_and_units_left(app, session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=5))
    release = make_release(session, units=240, on_sale_at=ON_SALE, price=8900)
    session.execute(sa.update(Unit).where(Unit.release_id == release.id, Unit.number <= 40).values(status="withheld"))
    session.commit()

    response = client.get(f"/releases/{release.slug}")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "€89.00" in page
    assert "<span data-available>200</span> of <span data-total>240</span> left" in page
    assert f'href="/batches/{release.batch.slug}"' in page


def test_upcoming_release_counts_down_to_its_on_sale_time(app, session, client, clock):
    clock.set(ON_SALE - timedelta(hours=2))
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert 'data-countdown="2026-07-01T10:00:00Z"' in page
    assert 'data-status="upcoming"' in page


def test_sold_out_release_says_so(app, session, client, clock):
    clock.set(ON_SALE + timedelta(days=1))
    release = make_release(session, units=3, on_sale_at=ON_SALE)
    sell_all(session, release)
    session.commit()

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)

    assert 'data-status="sold_out"' in page
    assert "Sold out" in page
    assert "<span data-available>0</span> of <span data-total>3</span> left" in page


def test_api_reports_status_and_counts(app, session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=4, on_sale_at=ON_SALE)
    session.execute(sa.update(Unit).where(Unit.release_id == release.id, Unit.number == 4).values(status="withheld"))
    session.commit()

    response = client.get(f"/api/releases/{release.slug}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "slug": release.slug,
        "status": "on_sale",
        "total": 4,
        "available": 3,
        "held": 0,
        "sold": 0,
        "on_sale_at": "2026-07-01T10:00:00Z",
        "off_sale_at": None,
    }


def test_unknown_slugs_get_the_shops_404_page(client):
    for path in (
        "/releases/no-such-release",
        "/batches/no-such-batch",
        "/no/such/page",
        "/media/../config.py",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in response.get_data(as_text=True)


def test_unknown_release_in_the_api_is_a_json_404(client):
    response = client.get("/api/releases/nope")
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_an_unexpected_error_shows_the_500_page_without_a_traceback(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in page
    assert "secret internals" not in page and "Traceback" not in page
