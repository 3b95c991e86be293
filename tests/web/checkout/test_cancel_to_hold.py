"""Leaving the payment page leads back to the hold, which says plainly what happened to it; the payment page states
the shop's own deadline. Through the real SDK and the simulator, on both databases."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import stripe

from storefront.models import UnitStatus
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.payments import numbers_with_status
from tests.web.checkout.test_checkout import ON_SALE, add_fault, hold_for_session, reserve_and_follow
from tests.web.shop.test_reserve import csrf_token_from


@pytest.fixture
def release(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=240, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release


@pytest.fixture
def stripe_client(stripe_sim) -> stripe.StripeClient:
    """What the simulator's account holds, read through the official SDK."""
    return stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": stripe_sim.url})


def test_the_payment_page_says_until_when_the_shop_holds_the_numbers(app, session, client, stripe_client, release):
    _response, session_id = reserve_and_follow(client, release, quantity="2")

    checkout = stripe_client.v1.checkout.sessions.retrieve(session_id)

    # The session lives 30 minutes or more (Stripe's minimum); the shop's hold 10, on the shop's clock (Dublin).
    assert checkout.custom_text.submit.message == (
        "No. 1–2 of 240 are held for you until 11:11 IST. Pay before then to make them yours; after that this "
        "page closes and they go back on sale."
    )
    assert checkout.cancel_url == f"{app.config['SHOP_URL']}/holds/{hold_for_session(session, session_id).token}"


def test_the_back_link_offers_payment_and_cancel_and_a_cancel_says_cancelled(
    app, session, client, stripe_client, release
):
    _response, session_id = reserve_and_follow(client, release)
    back_link = urlsplit(stripe_client.v1.checkout.sessions.retrieve(session_id).cancel_url).path
    hold = hold_for_session(session, session_id)

    page = client.get(back_link).get_data(as_text=True)

    assert f'<a class="button" href="{hold.payment_url}">Continue to payment</a>' in page
    assert "Cancel this hold" in page
    cancelled = client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_token_from(page)})
    assert cancelled.headers["Location"] == back_link
    page = client.get(back_link).get_data(as_text=True)
    assert '<h1 id="hold-heading">You cancelled this hold</h1>' in page
    assert "ran out of time" not in page and "expired" not in page.lower()


def test_a_cancel_still_closing_is_a_cancel_even_after_the_holds_time(
    app, session, client, clock, stripe_sim, stripe_client, release
):
    _response, session_id = reserve_and_follow(client, release)
    hold = hold_for_session(session, session_id)
    page = client.get(f"/holds/{hold.token}").get_data(as_text=True)
    # The payment page cannot be closed yet: the cancel is recorded, the numbers stay held until it is.
    add_fault(stripe_sim, method="POST", path_prefix="/v1/checkout/sessions/", status=503, count=3)
    client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_token_from(page)})
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1]

    clock.advance(minutes=15)  # the hold's time passes while its ending waits on the gateway

    page = client.get(f"/holds/{hold.token}").get_data(as_text=True)
    assert "You cancelled this hold" in page and "Closing your payment page" in page
    assert "ran out" not in page and "has expired" not in page
    requests.delete(f"{stripe_sim.url}/_sim/faults", timeout=5)
