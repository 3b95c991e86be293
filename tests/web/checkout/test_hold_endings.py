"""Every way a hold ends goes through one flow: record why, close the gateway session first, then free the units.

Regression tests for findings 3 and 4 of the money-paths issue: a cancel left the Stripe session payable; a cancel
was rewritten as "ran out of time" by the expiry webhook it caused; a GET could cancel a hold; a checkout could be
recorded on a hold that had ended meanwhile; a session the gateway no longer knows kept its hold (and units) forever.
"""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select, update

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.extensions import db
from storefront.models import Hold, Order, Release, UnitStatus
from storefront.payments import gateway
from storefront.shop.views import checkout_settings
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.payments import event_for, hold_webhooks, hold_with_checkout, numbers_with_status, pay, post_event, sim_post
from tests.web.shop.test_reserve import csrf_token_from

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def release_id(app, session, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release.id


def session_status(sim, session_id: str) -> str:
    return gateway().retrieve_session(session_id).status


def add_fault(sim, **spec) -> None:
    sim_post(sim, "/_sim/faults", spec)


def cancel_from_hold_page(client, hold):
    page = client.get(f"/holds/{hold.token}")
    return client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})


def test_cancelling_on_the_hold_page_closes_the_payment_page_first(app, session, client, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())

    response = cancel_from_hold_page(client, hold)

    assert response.status_code == 303
    assert session_status(stripe_sim, hold.payment_session_id) == "expired"
    paying_later = requests.post(f"{stripe_sim.url}/_sim/checkout/sessions/{hold.payment_session_id}/pay", json={})
    assert paying_later.status_code == 409  # the buyer can no longer pay for numbers that are back on sale
    hold = session.get(Hold, hold.id)
    assert (hold.status, hold.end_reason, hold.payment_status) == ("released", "cancelled", "expired")
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 2, 3]
    page = client.get(f"/holds/{hold.token}").get_data(as_text=True)
    assert "You cancelled this hold" in page and "ran out of time" not in page
    assert audit(session, clock()) == []


def test_the_payment_pages_back_link_asks_before_cancelling(app, session, client, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())

    # A link preview or a browser's prefetch follows the link (the hold's page, or an old session's confirmation
    # address, which now leads there): nothing may change.
    for _ in range(2):
        assert client.get(f"/checkout/cancel/{hold.token}").headers["Location"] == f"/holds/{hold.token}"
        page = client.get(f"/holds/{hold.token}")
        assert page.status_code == 200
    assert session.get(Hold, hold.id).status == "active"
    assert session_status(stripe_sim, hold.payment_session_id) == "open"
    html = page.get_data(as_text=True)
    assert f'action="/holds/{hold.token}/cancel"' in html and hold.payment_url in html

    # A confirmation page left open from before still cancels.
    response = client.post(f"/checkout/cancel/{hold.token}", data={"csrf_token": csrf_token_from(html)})

    assert response.status_code == 303
    assert session.get(Hold, hold.id).end_reason == "cancelled"
    assert session_status(stripe_sim, hold.payment_session_id) == "expired"
    assert client.post(f"/checkout/cancel/{hold.token}", data={}).status_code == 400  # no token, no change


class GatewayThatWaitsForWebhooks:
    """The real gateway, except that expiring a session returns only once its expiry webhook was applied.

    That forces the interleaving that made a cancel read "ran out of time": the `checkout.session.expired` event
    the cancel causes reaches the shop before the cancel's own release does.
    """

    def __init__(self, real, sim) -> None:
        self.real, self.sim = real, sim

    def expire_session(self, session_id):
        result = self.real.expire_session(session_id)
        sim_post(self.sim, "/_sim/webhooks/wait", {"timeout": 10})
        return result

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_cancel_is_not_rewritten_by_the_expiry_webhook_it_causes(
    app, session, clock, stripe_sim, release_id, live_server
):
    sim_post(stripe_sim, "/_sim/webhooks", {"hold": False, "url": f"{live_server.url}/stripe/webhook"})
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())

    ending = flows.end_hold(
        db.session, GatewayThatWaitsForWebhooks(gateway(), stripe_sim), hold.id, "cancelled", clock()
    )

    assert ending is flows.Ending.RELEASED  # the webhook finished it first, and the buyer is told it is released...
    hold = session.get(Hold, hold.id)
    assert (hold.status, hold.end_reason) == ("released", "cancelled")  # ...and kept the buyer's reason
    assert audit(session, clock()) == []


def test_a_cancel_the_gateway_cannot_confirm_keeps_the_numbers_held_until_the_sweeper_can(
    app, session, client, clock, stripe_sim, release_id
):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    add_fault(stripe_sim, method="POST", path_prefix="/v1/checkout/sessions/", status=503, count=3)

    response = cancel_from_hold_page(client, hold)

    assert response.status_code == 303 and response.headers["Location"] == f"/holds/{hold.token}"
    hold = session.get(Hold, hold.id)
    # The session may still be paid: its numbers must not go back on sale yet.
    assert (hold.status, hold.end_requested) == ("active", "cancelled")
    assert numbers_with_status(session, release_id, UnitStatus.HELD) == [1]
    page = client.get(f"/holds/{hold.token}").get_data(as_text=True)
    assert "You cancelled this hold" in page and "Closing your payment page" in page

    requests.delete(f"{stripe_sim.url}/_sim/faults", timeout=5)
    report = flows.sweep_holds(db.session, gateway(), clock())  # before its time: a requested end is swept too

    assert report.released == 1
    hold = session.get(Hold, hold.id)
    assert (hold.status, hold.end_reason) == ("released", "cancelled")
    assert session_status(stripe_sim, hold.payment_session_id) == "expired"
    assert audit(session, clock()) == []


def test_a_cancel_that_loses_to_a_payment_becomes_the_order(app, session, client, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    pay(stripe_sim, hold.payment_session_id)  # paid a moment before the buyer pressed Cancel in another tab

    response = cancel_from_hold_page(client, hold)

    assert response.status_code == 303
    assert response.headers["Location"].startswith("/checkout/success?session_id=")
    order = session.scalar(select(Order))
    assert [unit.number for unit in order.units] == [1]
    assert session.get(Hold, hold.id).status == "converted"
    assert audit(session, clock()) == []


class GatewayWithACancelMeanwhile:
    """The real gateway, except that while it opens a checkout the buyer cancels the hold in another tab."""

    def __init__(self, real, cancel) -> None:
        self.real, self.cancel = real, cancel

    def create_checkout_session(self, **request):
        self.cancel()
        return self.real.create_checkout_session(**request)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_hold_that_ends_while_its_checkout_opens_is_never_handed_a_payment_page(
    app, session, clock, stripe_sim, release_id
):
    from storefront.domain.inventory import Buyer, claim

    with app.test_request_context():
        with write_transaction(db.session):
            hold = claim(db.session, release_id, 1, Buyer("ann@example.com"), clock(), timedelta(minutes=10))
            settings = checkout_settings(hold)
        hold_id = hold.id

        def cancel_in_another_tab():
            with app.app_context():
                assert flows.end_hold(db.session, gateway(), hold_id, "cancelled", clock()) is flows.Ending.RELEASED

        with pytest.raises(flows.CheckoutUnavailable, match="ended while the payment page was being opened"):
            flows.start_checkout(
                db.session, GatewayWithACancelMeanwhile(gateway(), cancel_in_another_tab), hold_id, clock(), settings
            )

    hold = session.get(Hold, hold_id)
    assert (hold.status, hold.end_reason) == ("released", "cancelled")
    assert hold.payment_session_id is not None  # bound, so a payment of it could never be a stranger's
    assert session_status(stripe_sim, hold.payment_session_id) == "expired"
    assert audit(session, clock()) == []


@pytest.mark.parametrize(
    "gateway_answer",
    [
        pytest.param({"status": 404, "error": {"type": "invalid_request_error", "code": "resource_missing"}}, id="404"),
        pytest.param({"status": 403, "error": {"type": "invalid_request_error"}}, id="403"),
    ],
)
def test_the_sweeper_ends_a_hold_whose_session_the_gateway_says_is_gone(
    app, session, clock, stripe_sim, release_id, gateway_answer
):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    add_fault(
        stripe_sim,
        method="POST",
        path=f"/v1/checkout/sessions/{hold.payment_session_id}/expire",
        count=None,
        **gateway_answer,
    )
    clock.advance(minutes=11)

    first = flows.sweep_holds(db.session, gateway(), clock())
    clock.advance(minutes=5)  # past the sweeper's lease: a second sweep would find it if it were still there
    second = flows.sweep_holds(db.session, gateway(), clock())

    assert (first.released, first.failed, second.released, second.failed) == (1, 0, 0, 0)
    hold = session.get(Hold, hold.id)
    assert (hold.status, hold.end_reason, hold.payment_status) == ("released", "expired", "gone")
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 2, 3]
    assert audit(session, clock()) == []


def test_a_session_unknown_to_the_gateway_does_not_keep_units_forever(app, session, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    session.execute(update(Hold).where(Hold.id == hold.id).values(payment_session_id="cs_test_never_existed"))
    session.commit()
    clock.advance(minutes=11)

    assert flows.sweep_holds(db.session, gateway(), clock()).released == 1
    assert session.get(Hold, hold.id).status == "released"


def test_the_auditor_reports_a_hold_long_past_its_time(app, session, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    clock.advance(minutes=30)
    assert audit(session, clock()) == []  # the sweeper has time to end it

    clock.advance(hours=2)

    (problem,) = audit(session, clock())
    assert f"hold {hold.id}: still active" in problem


def test_a_transient_gateway_error_leaves_the_hold_for_the_next_sweep(app, session, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    add_fault(stripe_sim, method="POST", path=f"/v1/checkout/sessions/{hold.payment_session_id}/expire", status=500)
    clock.advance(minutes=11)

    assert flows.sweep_holds(db.session, gateway(), clock()).failed == 1
    assert session.get(Hold, hold.id).status == "active"
    clock.advance(minutes=3)
    assert flows.sweep_holds(db.session, gateway(), clock()).released == 1
    assert session.get(Hold, hold.id).status == "released"


@pytest.mark.parametrize(
    ("failures", "status"),
    [pytest.param(1, 429, id="one-429"), pytest.param(2, 503, id="two-503s"), pytest.param(1, 409, id="one-409")],
)
def test_opening_a_checkout_rides_out_a_brief_rate_limit_or_outage(
    app, session, client, clock, stripe_sim, release_id, failures, status
):
    add_fault(
        stripe_sim,
        method="POST",
        path="/v1/checkout/sessions",
        status=status,
        count=failures,
        error={"type": "api_error" if status >= 500 else "rate_limit_error"},
    )
    slug = session.get(Release, release_id).slug
    page = client.get(f"/releases/{slug}")

    response = client.post(
        f"/releases/{slug}/reserve",
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), "quantity": "1", "email": "ann@example.com"},
    )

    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"{stripe_sim.url}/pay/")
    assert session.scalar(select(Hold)).status == "active"


def test_a_longer_outage_releases_the_hold_and_says_so(app, session, client, clock, stripe_sim, release_id):
    add_fault(stripe_sim, method="POST", path="/v1/checkout/sessions", status=503, count=5, error={"type": "api_error"})
    release = session.get(Release, release_id)
    page = client.get(f"/releases/{release.slug}")

    response = client.post(
        f"/releases/{release.slug}/reserve",
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), "quantity": "1", "email": "ann@example.com"},
    )

    assert response.status_code == 503
    hold = session.scalar(select(Hold))
    assert (hold.status, hold.end_reason) == ("released", "checkout_failed")
    assert numbers_with_status(session, release_id, UnitStatus.AVAILABLE) == [1, 2, 3]


def test_ending_a_hold_twice_is_harmless(app, session, clock, stripe_sim, release_id):
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    assert flows.end_hold(db.session, gateway(), hold.id, "cancelled", clock()) is flows.Ending.RELEASED
    assert flows.end_hold(db.session, gateway(), hold.id, "expired", clock()) is flows.Ending.ALREADY_ENDED
    expired = event_for(stripe_sim, "checkout.session.expired", hold.payment_session_id)
    with app.test_client() as client:
        assert post_event(client, expired).status_code == 200
    assert session.get(Hold, hold.id).end_reason == "cancelled"
