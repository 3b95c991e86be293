"""Reserve → Stripe Checkout → success or cancel, through the real form and the real SDK talking to the simulator.

Nothing here patches the SDK or the gateway: faults are injected in the simulator over HTTP (`/_sim/faults`), and
the test reads what Stripe holds with its own `StripeClient`, as a person would look in Stripe's dashboard.
"""

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
import stripe
from sqlalchemy import func, select

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.extensions import db
from storefront.models import Hold, Order, OutboxMessage, PaymentEvent, UnitStatus
from storefront.payments import gateway
from storefront.shop.views import checkout_settings
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_batch, make_release
from tests.payments import (
    StalledStripe,
    event_for,
    hold_webhooks,
    hold_with_checkout,
    numbers_with_status,
    pay,
    post_event,
    short_gateway_timeout,
    sim_post,
)
from tests.web.shop.test_reserve import EMAIL, csrf_token_from, release_page_token, reserve

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
SESSION_URL = re.compile(r"/pay/(cs_test_\w+)$")


@pytest.fixture
def release(app, session, clock, stripe_sim):
    """Batch B-2026-07 of Rye, a run of 240 on sale since a minute ago."""
    clock.set(ON_SALE + timedelta(minutes=1))
    batch = make_batch(session)
    batch.code = "B-2026-07"
    batch.product.name = "Rye"
    release = make_release(session, batch=batch, units=240, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release


@pytest.fixture
def stripe_client(stripe_sim) -> stripe.StripeClient:
    """The test's own view of the simulator's Stripe account, through the official SDK."""
    return stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": stripe_sim.url})


def reserve_and_follow(client, release, **fields):
    """Reserve through the release page's form; return the response and the Checkout Session id it points at."""
    response = reserve(client, release, release_page_token(client, release), **fields)
    match = SESSION_URL.search(response.headers.get("Location", ""))
    return response, match.group(1) if match else None


def hold_for_session(session, session_id: str) -> Hold:
    session.expire_all()
    return session.scalar(select(Hold).where(Hold.payment_session_id == session_id))


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def add_fault(sim, **spec) -> None:
    sim_post(sim, "/_sim/faults", spec)


# --- Reserve → pay ---------------------------------------------------------------------------------------------


def test_reserving_opens_a_checkout_session_for_exactly_the_held_units(
    app, session, client, stripe_sim, stripe_client, release
):
    response, session_id = reserve_and_follow(client, release, quantity="2")

    assert response.status_code == 303
    assert response.headers["Location"] == f"{stripe_sim.url}/pay/{session_id}"
    hold = hold_for_session(session, session_id)
    checkout = stripe_client.v1.checkout.sessions.retrieve(session_id)
    assert checkout.status == "open"
    assert checkout.mode == "payment"
    assert checkout.payment_method_types == ["card"]  # no delayed methods: a unit is never held for days
    assert (checkout.amount_total, checkout.currency) == (2 * 8900, "eur")
    assert checkout.metadata["hold_id"] == str(hold.id)
    assert checkout.client_reference_id == f"hold-{hold.id}"
    assert checkout.customer_email == EMAIL
    # Stripe will not expire a session sooner than 30 minutes after it is created, on its own (real) clock.
    assert checkout.expires_at >= int(time.time()) + 30 * 60
    # Built from SHOP_URL, never from the Host the request carried (the test client's is "localhost").
    shop_url = app.config["SHOP_URL"]
    assert checkout.success_url == f"{shop_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert checkout.cancel_url == f"{shop_url}/holds/{hold.token}"  # Stripe's back link: the hold's own page
    assert checkout.shipping_address_collection.allowed_countries == app.config["SHIPPING_COUNTRIES"]
    assert checkout.url == response.headers["Location"]

    items = stripe_client.v1.checkout.sessions.line_items.list(session_id).data
    assert [(item.description, item.quantity, item.amount_total) for item in items] == [
        ("Batch B-2026-07 Rye — No. 1 of 240", 1, 8900),
        ("Batch B-2026-07 Rye — No. 2 of 240", 1, 8900),
    ]
    assert (hold.status, hold.payment_status, hold.payment_url) == ("active", "unpaid", checkout.url)
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]


def test_paying_on_the_hosted_page_brings_the_buyer_back_to_their_number(app, session, client, stripe_sim, release):
    hold_webhooks(stripe_sim)  # only the success page can tell the shop
    _response, session_id = reserve_and_follow(client, release, number="17")

    paid = requests.post(
        f"{stripe_sim.url}/pay/{session_id}",
        data={
            "action": "pay",
            "email": EMAIL,
            "name": "Ada L",
            "line1": "1 Quay St",
            "city": "Cork",
            "postal_code": "T12",
            "country": "IE",
        },
        allow_redirects=False,
        timeout=10,
    )

    assert paid.status_code == 303
    back = urlsplit(paid.headers["Location"])
    assert (back.path, back.query) == ("/checkout/success", f"session_id={session_id}")
    page = client.get(f"{back.path}?{back.query}")
    assert page.status_code == 200
    assert "No. 17 of 240 is yours" in page.get_data(as_text=True)


def test_starting_checkout_twice_for_one_hold_opens_one_session(
    app, session, stripe_sim, stripe_client, clock, release, monkeypatch
):
    hold = hold_with_checkout(app, release.id, EMAIL, clock())
    # A retry comes a little later than the first try, so it would ask Stripe for a later `expires_at` (and
    # Stripe's idempotency key would refuse it as another request): the shop must not ask Stripe again at all.
    later = flows.utcnow() + timedelta(seconds=5)
    monkeypatch.setattr(flows, "utcnow", lambda: later)

    with app.test_request_context(base_url="http://shop.test"):
        again = flows.start_checkout(db.session, gateway(), hold.id, clock(), checkout_settings(hold))

    assert again == hold.payment_url
    sessions = stripe_client.v1.checkout.sessions.list().data
    assert [checkout.id for checkout in sessions] == [hold.payment_session_id]
    assert hold_for_session(session, hold.payment_session_id).status == "active"


def test_stripe_failing_to_open_checkout_puts_the_numbers_back_on_sale(
    app, session, client, stripe_sim, stripe_client, release
):
    # Every try fails, the SDK's own quick retries included.
    add_fault(stripe_sim, method="POST", path="/v1/checkout/sessions", status=500, count=None)
    token = release_page_token(client, release)

    response = reserve(client, release, token, quantity="2")

    assert_checkout_unavailable(session, response, release)
    assert stripe_client.v1.checkout.sessions.list().data == []
    assert_buyer_can_try_again(app, session, client, stripe_sim, release)


def test_a_first_try_stripe_is_slow_to_answer_is_retried_into_one_session(
    app, session, client, request, stripe_sim, stripe_client, release
):
    short_gateway_timeout(app, 0.25)
    stripe = StalledStripe(stripe_sim, request, method="POST", path="/v1/checkout/sessions", count=1)

    response, session_id = reserve_and_follow(client, release, quantity="2")

    # The shop gave up on the first try and the SDK's retry opened the session while the first was still held.
    assert response.status_code == 303 and session_id
    stripe.wait_stalled(1)
    assert stripe.stalled_requests == 1 and not stripe.released.is_set()
    stripe.wait_answered()  # the first try arrives after all: Stripe replays the same session (one key per hold)
    assert [checkout.id for checkout in stripe_client.v1.checkout.sessions.list().data] == [session_id]
    hold = hold_for_session(session, session_id)
    assert (hold.status, hold.payment_url) == ("active", response.headers["Location"])
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]


def test_stripe_answering_after_the_shop_gave_up_puts_the_numbers_back_on_sale(
    app, session, client, request, stripe_sim, stripe_client, release
):
    short_gateway_timeout(app, 0.25)
    stripe = StalledStripe(stripe_sim, request, method="POST", path="/v1/checkout/sessions", count=None)
    token = release_page_token(client, release)

    response = reserve(client, release, token, quantity="2")

    # The buyer heard back while Stripe was still working on every try (the first, and the SDK's retries).
    stripe.wait_stalled(1 + app.config["STRIPE_CHECKOUT_RETRIES"])
    assert stripe.stalled_requests == 1 + app.config["STRIPE_CHECKOUT_RETRIES"]
    assert not stripe.released.is_set()
    assert_checkout_unavailable(session, response, release)
    # Stripe finishes after all: one session (the tries share an idempotency key), nobody sent to it, never adopted.
    stripe.wait_answered()
    (late,) = stripe_client.v1.checkout.sessions.list().data
    hold = session.scalar(select(Hold))
    assert late.metadata["hold_id"] == str(hold.id)
    assert hold_for_session(session, late.id) is None
    assert_buyer_can_try_again(app, session, client, stripe_sim, release)


def assert_checkout_unavailable(session, response, release) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "We could not open the payment page" in page
    assert "Nothing was charged" in page
    assert "back on sale" in page
    session.expire_all()
    hold = session.scalar(select(Hold))
    assert (hold.status, hold.end_reason, hold.payment_session_id) == ("released", "checkout_failed", None)
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == []
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == list(range(1, 241))


def assert_buyer_can_try_again(app, session, client, stripe_sim, release) -> None:
    requests.delete(f"{stripe_sim.url}/_sim/faults", timeout=5).raise_for_status()
    retry, session_id = reserve_and_follow(client, release, quantity="2")
    assert retry.status_code == 303 and session_id
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]
    assert audit(session, app.config["CLOCK"]()) == []


# --- The success page ---------------------------------------------------------------------------------------


def test_success_page_confirms_with_stripe_when_the_webhook_is_late(app, session, client, clock, stripe_sim, release):
    hold_webhooks(stripe_sim)
    hold = hold_with_checkout(app, release.id, EMAIL, clock())
    pay(stripe_sim, hold.payment_session_id, name="Ada L", address={"line1": "1 Quay St", "city": "Cork"})

    page = client.get(f"/checkout/success?session_id={hold.payment_session_id}")

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No. 1 of 240 is yours" in text
    order = session.scalar(select(Order))
    assert f"<strong>{order.reference}</strong> is confirmed" in text
    assert (order.email, order.quantity, order.amount_total, order.currency) == (EMAIL, 1, 8900, "EUR")
    assert order.shipping_address["city"] == "Cork"
    assert numbers_with_status(session, release.id, UnitStatus.SOLD) == [1]
    assert count(session, Order) == 1

    again = client.get(f"/checkout/success?session_id={hold.payment_session_id}")
    assert again.status_code == 200
    assert "No. 1 of 240 is yours" in again.get_data(as_text=True)
    assert count(session, Order) == 1

    # Stripe's webhook arrives after all: recorded, and no second order.
    completed = event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)
    assert post_event(client, completed).status_code == 200
    assert count(session, Order) == 1
    assert count(session, PaymentEvent) == 1
    confirmations = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == EMAIL)).all()
    assert len(confirmations) == 1
    assert audit(session, clock()) == []


def test_success_page_for_an_unpaid_session_waits(app, session, client, clock, stripe_sim, release):
    hold = hold_with_checkout(app, release.id, EMAIL, clock())

    page = client.get(f"/checkout/success?session_id={hold.payment_session_id}")

    assert page.status_code == 202
    assert "Confirming your payment" in page.get_data(as_text=True)
    assert count(session, Order) == 0
    assert hold_for_session(session, hold.payment_session_id).status == "active"


def test_success_page_waits_when_stripe_cannot_be_reached(app, session, client, clock, stripe_sim, release):
    hold_webhooks(stripe_sim)
    hold = hold_with_checkout(app, release.id, EMAIL, clock())
    pay(stripe_sim, hold.payment_session_id)
    add_fault(stripe_sim, method="GET", path=f"/v1/checkout/sessions/{hold.payment_session_id}", status=500)

    page = client.get(f"/checkout/success?session_id={hold.payment_session_id}")

    assert page.status_code == 202
    assert count(session, Order) == 0
    # The next refresh of the page gets through.
    assert client.get(f"/checkout/success?session_id={hold.payment_session_id}").status_code == 200
    assert count(session, Order) == 1


def test_success_page_for_an_unknown_session_is_404(app, session, client, clock, stripe_sim, release):
    hold_with_checkout(app, release.id, EMAIL, clock())

    for query in ["?session_id=cs_test_no_such_session", "?session_id=", ""]:
        assert client.get(f"/checkout/success{query}").status_code == 404, query
    assert count(session, Order) == 0


# --- Cancelling ----------------------------------------------------------------------------------------------


def cancel_from_stripe(client, token: str):
    """Follow Stripe's back link to the hold's page, and press its cancel button."""
    page = client.get(f"/holds/{token}")
    assert page.status_code == 200
    return client.post(f"/holds/{token}/cancel", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})


def test_stripes_back_link_asks_before_cancelling(app, session, client, stripe_sim, stripe_client, release):
    _response, session_id = reserve_and_follow(client, release, quantity="2")
    hold = hold_for_session(session, session_id)
    back_link = stripe_client.v1.checkout.sessions.retrieve(session_id).cancel_url

    # A link preview or a prefetch of the back link must not cancel the buyer's hold.
    for _ in range(2):
        page = client.get(urlsplit(back_link).path)
        assert page.status_code == 200
        assert page.headers["Cache-Control"] == "private, no-store"

    text = page.get_data(as_text=True)
    assert "No. 1 and No. 2 of 240 are held for you" in text
    assert "Nothing is charged until you do" in text
    assert f'href="{hold.payment_url}"' in text  # back to the same payment page
    assert f'action="/holds/{hold.token}/cancel"' in text
    hold = hold_for_session(session, session_id)
    assert (hold.status, hold.end_requested) == ("active", None)
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]
    assert stripe_client.v1.checkout.sessions.retrieve(session_id).status == "open"
    # Sessions opened before the back link led to the hold's page still find it.
    old_link = client.get(f"/checkout/cancel/{hold.token}")
    assert (old_link.status_code, old_link.headers["Location"]) == (303, f"/holds/{hold.token}")
    assert client.get("/checkout/cancel/no-such-hold").status_code == 404


def test_cancelling_on_stripe_releases_the_hold_and_expires_the_session(
    app, session, client, stripe_sim, stripe_client, release
):
    _response, session_id = reserve_and_follow(client, release, quantity="2")
    hold = hold_for_session(session, session_id)

    response = cancel_from_stripe(client, hold.token)

    assert response.status_code == 303
    assert response.headers["Location"] == f"/holds/{hold.token}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You cancelled this hold" in page and "Your numbers are back on sale" in page
    release_page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert "<span data-available>240</span> of <span data-total>240</span> left" in release_page
    hold = hold_for_session(session, session_id)
    assert (hold.status, hold.end_reason) == ("released", "cancelled")
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == []
    # The session can no longer be paid: a buyer with the page still open cannot pay for released numbers.
    assert stripe_client.v1.checkout.sessions.retrieve(session_id).status == "expired"

    # The expiry the cancel caused reaches the webhook: it was a cancel, not time running out.
    expired = event_for(stripe_sim, "checkout.session.expired", session_id)
    assert post_event(client, expired).status_code == 200
    assert hold_for_session(session, session_id).end_reason == "cancelled"

    # An old confirmation address (the back button): it shows the hold.
    again = client.get(f"/checkout/cancel/{hold.token}")
    assert again.status_code == 303
    assert again.headers["Location"] == f"/holds/{hold.token}"
    repeated = client.post(f"/checkout/cancel/{hold.token}", data={"csrf_token": csrf_token_from(release_page)})
    assert repeated.status_code == 303
    assert repeated.headers["Location"] == f"/holds/{hold.token}"
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == list(range(1, 241))
    token = csrf_token_from(release_page)
    assert client.post("/checkout/cancel/no-such-hold", data={"csrf_token": token}).status_code == 404
    assert audit(session, app.config["CLOCK"]()) == []


def test_cancelling_after_paying_keeps_the_payment(app, session, client, clock, stripe_sim, stripe_client, release):
    hold_webhooks(stripe_sim)  # the shop has not heard of the payment yet
    hold = hold_with_checkout(app, release.id, EMAIL, clock())
    pay(stripe_sim, hold.payment_session_id)

    response = cancel_from_stripe(client, hold.token)

    assert response.status_code == 303
    assert response.headers["Location"] == f"/checkout/success?session_id={hold.payment_session_id}"
    order = session.scalar(select(Order))
    assert order.checkout_session_id == hold.payment_session_id
    assert hold_for_session(session, hold.payment_session_id).status == "converted"
    assert numbers_with_status(session, release.id, UnitStatus.SOLD) == [1]
    assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "complete"
    assert "No. 1 of 240 is yours" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert audit(session, clock()) == []


# --- Test payments are labelled ---------------------------------------------------------------------------


def test_every_page_says_payments_are_test_payments(app, session, client, clock, stripe_sim, release):
    hold = hold_with_checkout(app, release.id, EMAIL, clock())
    pages = [
        client.get("/"),
        client.get(f"/releases/{release.slug}"),
        client.get(f"/holds/{hold.token}"),
        client.get(f"/checkout/success?session_id={hold.payment_session_id}"),
        client.get("/no-such-page"),
    ]

    for page in pages:
        text = page.get_data(as_text=True)
        assert "Test payments." in text, page.request.path
        assert "the built-in Stripe simulator" in text

    # With live keys and no simulator, no banner.
    app.config.update(STRIPE_API_BASE="", STRIPE_SECRET_KEY="sk_live_not_a_real_key")
    assert "Test payments." not in client.get("/").get_data(as_text=True)
