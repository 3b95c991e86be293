"""The success page tells the buyer where their numbers go, what they paid and what happens next."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from storefront.models import Release, ShopSettings
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.payments import event_for, hold_webhooks, hold_with_checkout, pay, post_event

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
ADDRESS = re.compile(r'<address class="order-summary__address">(.*?)</address>', re.DOTALL)


@pytest.fixture
def release_id(app, session, clock, stripe_sim) -> int:
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    batch = make_batch(session)
    batch.title = "Carlow Rye"
    release = make_release(session, batch=batch, units=240, on_sale_at=ON_SALE)
    session.commit()
    return release.id


def paid_success_page(app, client, stripe_sim, release_id: int, now, address: dict, quantity: int = 1) -> str:
    """Pay on the simulator, let Stripe's event arrive, and open the page Stripe sends the buyer back to."""
    hold = hold_with_checkout(app, release_id, "ann@example.ie", now, quantity=quantity)
    pay(stripe_sim, hold.payment_session_id, name="Ann Byrne", address=address)
    completed = event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)
    assert post_event(client, completed).status_code == 200
    page = client.get(f"/checkout/success?session_id={hold.payment_session_id}")
    assert page.status_code == 200
    # The buyer's name and address: never kept by a shared cache.
    assert page.headers["Cache-Control"] == "private, no-store"
    return page.get_data(as_text=True)


def address_shown(page: str) -> list[str]:
    (block,) = ADDRESS.findall(page)
    return [line.strip() for line in block.split("<br>")]


def test_the_success_page_shows_the_address_the_total_with_shipping_and_what_happens_next(
    app, session, client, clock, stripe_sim, release_id
):
    with write_transaction(session):
        session.add(ShopSettings(id=1, contact_email="hello@carlow.example", dispatch_time="within 2 working days"))
        session.get(Release, release_id).shipping_amount = 650
    address = {
        "line1": "Hauptstraße 5",
        "line2": "<b>Hof</b>",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    }

    page = paid_success_page(app, client, stripe_sim, release_id, clock(), address, quantity=2)

    assert "No. 1, No. 2 of 240 are yours" in page
    assert address_shown(page) == ["Ann Byrne", "Hauptstraße 5", "&lt;b&gt;Hof&lt;/b&gt;", "10115 Berlin", "Germany"]
    assert "€184.50" in page and "2 × €89.00 + €6.50 shipping" in " ".join(page.split())
    assert "What happens next" in page
    assert "A confirmation is on its way to <strong>ann@example.ie</strong>" in page
    assert "We pack your order and send it within 2 working days." in page
    assert "We will email you when it ships, with its tracking details." in page
    assert '<a href="mailto:hello@carlow.example">hello@carlow.example</a>' in page


def test_without_settings_the_page_names_the_shops_sender_and_promises_no_dispatch_time(
    app, session, client, clock, stripe_sim, release_id
):
    address = {"line1": "1 Quay Street", "city": "Galway", "postal_code": "h91 xk2c", "country": "IE"}

    page = paid_success_page(app, client, stripe_sim, release_id, clock(), address)

    assert "No. 1 of 240 is yours" in page
    assert address_shown(page) == ["Ann Byrne", "1 Quay Street", "Galway", "H91 XK2C", "Ireland"]
    assert "We pack your order and send it." in page
    assert "shipping</span>" not in page  # free shipping, one unit: nothing to break down
    assert '<a href="mailto:shop@localhost">shop@localhost</a>' in page
