"""The hold sweeper and the refund worker against the Stripe simulator over HTTP, on SQLite and PostgreSQL.

A timed-out hold whose buyer may still be paying on Stripe's page is ended in one order only: expire the session at
Stripe first, then free the units (or, if Stripe says it was paid, make it an order). Stripe failing or timing out
leaves the units held for the next sweep. Several workers sweeping at once end each hold once.
"""

from datetime import UTC, datetime, timedelta

import pytest
import requests
import stripe
from sqlalchemy import select

from storefront import tasks
from storefront.checkout import flows
from storefront.checkout.flows import SweepReport
from storefront.domain.inventory import SoldOut
from storefront.extensions import db
from storefront.models import Hold, Order, OutboxMessage, Refund, UnitStatus
from storefront.payments import gateway
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.integration.helpers import assert_audit_clean, claim_committed, run_concurrently, unexpected
from tests.payments import (
    StalledStripe,
    events,
    hold_webhooks,
    hold_with_checkout,
    numbers_with_status,
    pay,
    post_event,
    short_gateway_timeout,
    sim_post,
)
from tests.web.shop.test_reserve import csrf_token_from

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
HOLD_MINUTES = 10  # what hold_with_checkout holds for
# Seconds the shop waits for Stripe in the timeout cases, where Stripe is stalled until the test lets it answer.
STRIPE_TIMEOUT = 0.25


@pytest.fixture
def stripe_client(stripe_sim) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": stripe_sim.url})


@pytest.fixture
def on_sale(clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)  # the shop learns nothing from webhooks unless a test posts one


def new_release(session, **options):
    release = make_release(session, on_sale_at=ON_SALE, **options)
    session.commit()
    return release


def sweep(session, clock) -> SweepReport:
    return flows.sweep_holds(session, gateway(), clock())


def fresh_hold(session, hold_id: int) -> Hold:
    session.expire_all()
    hold = session.get(Hold, hold_id)
    session.commit()
    return hold


def add_fault(sim, **spec) -> None:
    sim_post(sim, "/_sim/faults", spec)


def clear_faults(sim) -> None:
    requests.delete(f"{sim.url}/_sim/faults", timeout=5).raise_for_status()


def faults(sim) -> list[dict]:
    return requests.get(f"{sim.url}/_sim/faults", timeout=5).json()["faults"]


def expired_session_ids(sim) -> list[str]:
    return [event["data"]["object"]["id"] for event in events(sim, "checkout.session.expired")]


# --- One hold ------------------------------------------------------------------------------------------------


def test_sweeper_expires_the_session_first_then_frees_the_units(
    app, session, clock, stripe_sim, stripe_client, on_sale
):
    release = new_release(session, units=3)
    hold = hold_with_checkout(app, release.id, "ann@example.com", clock(), quantity=2)

    clock.advance(minutes=HOLD_MINUTES, seconds=-1)
    assert sweep(session, clock) == SweepReport()
    assert fresh_hold(session, hold.id).status == "active"
    assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "open"

    clock.advance(seconds=1)
    assert sweep(session, clock) == SweepReport(released=1)

    ended = fresh_hold(session, hold.id)
    assert (ended.status, ended.end_reason, ended.payment_status) == ("released", "expired", "expired")
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 2, 3]
    checkout = stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id)
    assert (checkout.status, checkout.url) == ("expired", None)  # nobody can pay for the freed numbers any more
    (expired,) = events(stripe_sim, "checkout.session.expired")
    assert expired["request"]["id"] is not None  # expired by the shop's API call, not by Stripe's own clock
    assert sweep(session, clock) == SweepReport()
    assert_audit_clean(session, clock())


def test_a_hold_without_a_session_is_freed_without_asking_stripe(app, session, clock, stripe_sim, on_sale):
    release = new_release(session, units=3)
    hold = claim_committed(session, release.id, 1, "ann@example.com", clock())  # the shop died before Stripe
    add_fault(stripe_sim, path_prefix="/v1/", status=500, count=None)  # Stripe is not needed, and is down

    clock.advance(minutes=HOLD_MINUTES)
    assert sweep(session, clock) == SweepReport(released=1)

    ended = fresh_hold(session, hold.id)
    assert (ended.status, ended.end_reason) == ("released", "expired")
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 2, 3]


def test_a_session_stripe_already_expired_ends_the_hold(app, session, clock, stripe_sim, stripe_client, on_sale):
    release = new_release(session, units=3)
    hold = hold_with_checkout(app, release.id, "ann@example.com", clock())
    sim_post(stripe_sim, f"/_sim/checkout/sessions/{hold.payment_session_id}/expire-by-time")  # webhook held

    clock.advance(minutes=HOLD_MINUTES)
    assert sweep(session, clock) == SweepReport(released=1)

    assert fresh_hold(session, hold.id).status == "released"
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 2, 3]
    assert len(events(stripe_sim, "checkout.session.expired")) == 1
    assert_audit_clean(session, clock())


@pytest.mark.parametrize("fault", ["stripe-500", "stripe-timeout"])
def test_stripe_failing_to_expire_keeps_the_units_held_until_a_later_sweep(
    app, session, clock, request, stripe_sim, stripe_client, on_sale, fault
):
    release = new_release(session, units=2, limit=2)
    hold = hold_with_checkout(app, release.id, "ann@example.com", clock(), quantity=2)
    expire_path = f"/v1/checkout/sessions/{hold.payment_session_id}/expire"
    if fault == "stripe-500":
        add_fault(stripe_sim, method="POST", path=expire_path, status=500)
    else:
        # Stripe answers only after the shop has given up, and expires the session all the same.
        short_gateway_timeout(app, STRIPE_TIMEOUT)
        stalled = StalledStripe(stripe_sim, request, method="POST", path=expire_path)
    clock.advance(minutes=HOLD_MINUTES + 1)

    assert sweep(session, clock) == SweepReport(failed=1)

    # Nothing freed early: the buyer may still be paying on Stripe's page.
    assert fresh_hold(session, hold.id).status == "active"
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]
    with pytest.raises(SoldOut):
        claim_committed(session, release.id, 1, "bob@example.com", clock())
    assert numbers_with_status(session, release.id, UnitStatus.HELD) == [1, 2]
    assert_audit_clean(session, clock())
    # The hold is leased to the sweep that failed: another sweep within the lease leaves it (and Stripe) alone.
    assert sweep(session, clock) == SweepReport()

    if fault == "stripe-timeout":
        stalled.wait_answered()
        assert expired_session_ids(stripe_sim) == [hold.payment_session_id]
    else:
        assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "open"
    clear_faults(stripe_sim)
    clock.advance(minutes=2)  # the failed sweep's lease runs out
    assert sweep(session, clock) == SweepReport(released=1)

    ended = fresh_hold(session, hold.id)
    assert (ended.status, ended.end_reason) == ("released", "expired")
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 2]
    assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "expired"
    assert expired_session_ids(stripe_sim) == [hold.payment_session_id]
    assert claim_committed(session, release.id, 1, "bob@example.com", clock()).status == "active"
    assert_audit_clean(session, clock())


def test_a_session_paid_before_the_sweep_becomes_the_order(app, session, clock, stripe_sim, stripe_client, on_sale):
    release = new_release(session, units=3)
    hold = hold_with_checkout(app, release.id, "ann@example.com", clock(), quantity=2)
    pay(stripe_sim, hold.payment_session_id)  # the webhook is held: the shop has not heard

    clock.advance(minutes=HOLD_MINUTES + 1)
    assert sweep(session, clock) == SweepReport(fulfilled=1)

    converted = fresh_hold(session, hold.id)
    assert (converted.status, converted.end_reason, converted.payment_status) == ("converted", "paid", "paid")
    order = session.scalar(select(Order))
    assert order.checkout_session_id == hold.payment_session_id
    assert [unit.number for unit in order.units] == [1, 2]
    assert numbers_with_status(session, release.id, UnitStatus.SOLD) == [1, 2]
    assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "complete"
    mail = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "ann@example.com"))
    assert mail is not None and mail.sent_at is not None
    assert sweep(session, clock) == SweepReport()
    assert_audit_clean(session, clock())


# --- Several workers ----------------------------------------------------------------------------------------


def test_eight_sweepers_at_once_end_each_hold_once(app, session, clock, stripe_sim, on_sale):
    release = new_release(session, units=20, limit=1)
    holds = [hold_with_checkout(app, release.id, f"buyer{n}@example.com", clock()) for n in range(20)]
    session_ids = sorted(hold.payment_session_id for hold in holds)
    # Count Stripe calls without changing them: a fault with no status only waits, and uses one of its count per
    # matching request. The short wait also keeps each sweeper on the network while the others look for work.
    add_fault(stripe_sim, method="POST", path_prefix="/v1/checkout/sessions/", delay_seconds=0.02, count=1000)
    add_fault(stripe_sim, method="GET", path_prefix="/v1/checkout/sessions/", delay_seconds=0.001, count=1000)
    clock.advance(minutes=HOLD_MINUTES + 1)
    now = clock()
    session.commit()

    outcomes = run_concurrently(app, [lambda: flows.sweep_holds(db.session, gateway(), now)] * 8, timeout=60)

    assert unexpected(outcomes) == []
    reports = [outcome.value for outcome in outcomes]
    assert sum(report.released for report in reports) == 20
    assert sum(report.failed + report.fulfilled for report in reports) == 0
    expires, retrieves = sorted(faults(stripe_sim), key=lambda fault: fault["method"], reverse=True)
    assert 1000 - expires["count"] == 20  # one expire per session, not one per worker
    assert 1000 - retrieves["count"] == 0
    assert sorted(expired_session_ids(stripe_sim)) == session_ids
    session.expire_all()
    ended = session.scalars(select(Hold).where(Hold.release_id == release.id)).all()
    assert {(hold.status, hold.end_reason) for hold in ended} == {("released", "expired")}
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == list(range(1, 21))
    assert_audit_clean(session, now)


# --- The periodic task itself --------------------------------------------------------------------------------


def test_the_periodic_sweep_task_ends_timed_out_holds_once_a_minute(
    app, session, clock, stripe_sim, stripe_client, on_sale
):
    release = new_release(session, units=3)
    hold = hold_with_checkout(app, release.id, "ann@example.com", clock())
    later = hold_with_checkout(app, release.id, "bob@example.com", clock() + timedelta(seconds=10))
    clock.advance(minutes=HOLD_MINUTES)
    session.commit()

    tasks.sweep_holds.call_local()

    assert fresh_hold(session, hold.id).status == "released"
    assert stripe_client.v1.checkout.sessions.retrieve(hold.payment_session_id).status == "expired"
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 3]

    # Every worker's scheduler fires the task each minute; within one minute only the first run does the work.
    clock.advance(seconds=10)
    assert fresh_hold(session, later.id).expires_at <= clock()
    tasks.sweep_holds.call_local()
    assert fresh_hold(session, later.id).status == "active"

    clock.advance(minutes=1)
    tasks.sweep_holds.call_local()
    assert fresh_hold(session, later.id).status == "released"
    assert numbers_with_status(session, release.id, UnitStatus.AVAILABLE) == [1, 2, 3]
    assert_audit_clean(session, clock())


# --- Refunds -------------------------------------------------------------------------------------------------


def late_payment_with_nothing_left(app, session, client, clock, stripe_sim) -> tuple[Hold, dict]:
    """Ann cancels and Stripe wrongly answers that her session does not exist, so her hold ends; Bob takes the
    only number; then Ann pays on the page she still had open.

    Returns Ann's hold and the `checkout.session.completed` event the shop has not heard yet.
    """
    release = new_release(session, units=1)
    ann = hold_with_checkout(app, release.id, "ann@example.com", clock())
    add_fault(stripe_sim, method="POST", path=f"/v1/checkout/sessions/{ann.payment_session_id}/expire", status=404)
    hold_page = client.get(f"/holds/{ann.token}").get_data(as_text=True)
    cancelled = client.post(f"/holds/{ann.token}/cancel", data={"csrf_token": csrf_token_from(hold_page)})
    assert cancelled.status_code == 303  # a session the gateway says is gone cannot be paid: the hold ends
    ended = fresh_hold(session, ann.id)
    assert (ended.status, ended.end_reason, ended.payment_status) == ("released", "cancelled", "gone")
    hold_with_checkout(app, release.id, "bob@example.com", clock())
    pay(stripe_sim, ann.payment_session_id)  # her page was still open after all
    completed = events(stripe_sim, "checkout.session.completed")
    assert len(completed) == 1
    return ann, completed[0]


def the_refund(session) -> Refund:
    session.expire_all()
    refund = session.scalar(select(Refund))
    session.commit()
    return refund


def refunds_at_stripe(sim) -> list[dict]:
    return [event["data"]["object"] for event in events(sim, "refund.created")]


def test_a_refund_stripe_refuses_stays_pending_and_a_retry_sends_it(app, session, client, clock, stripe_sim, on_sale):
    ann, completed = late_payment_with_nothing_left(app, session, client, clock, stripe_sim)
    add_fault(stripe_sim, method="POST", path="/v1/refunds", status=500, count=None)

    assert post_event(client, completed).status_code == 200  # the worker tries the refund at once, and fails

    refund = the_refund(session)
    assert (refund.status, refund.attempts, refund.amount, refund.reason) == ("pending", 1, 8900, "units_unavailable")
    assert refund.next_attempt_at == clock() + timedelta(minutes=1)
    assert "Could not refund a payment" in refund.last_error
    assert refund.gateway_refund_id is None
    assert refund.order.status == "refunding"
    assert refund.order.units == []
    assert refunds_at_stripe(stripe_sim) == []
    assert_audit_clean(session, clock())  # a refund in flight is sound books

    tasks.retry_refunds.call_local()  # not due yet: Stripe is left alone while the refund backs off
    assert (the_refund(session).status, the_refund(session).attempts) == ("pending", 1)

    clock.advance(minutes=1)
    tasks.retry_refunds.call_local()  # Stripe is still down: one more attempt, recorded, and a longer wait
    refund = the_refund(session)
    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("pending", 2, clock() + timedelta(minutes=2))

    clear_faults(stripe_sim)
    clock.advance(minutes=2)
    tasks.retry_refunds.call_local()

    refund = the_refund(session)
    assert (refund.status, refund.attempts) == ("succeeded", 3)
    assert refund.order.status == "refunded"
    assert refund.order.refunded_at == clock()
    (sent,) = refunds_at_stripe(stripe_sim)
    assert refund.gateway_refund_id == sent["id"]
    assert (sent["amount"], sent["payment_intent"]) == (8900, refund.order.payment_intent_id)
    subjects = session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == "ann@example.com")).all()
    assert len([subject for subject in subjects if subject.startswith("Refund sent")]) == 1
    clock.advance(minutes=1)
    tasks.retry_refunds.call_local()  # nothing pending: nothing sent twice
    assert len(refunds_at_stripe(stripe_sim)) == 1
    assert_audit_clean(session, clock())


def test_a_refund_retried_after_a_timeout_is_made_once(app, session, client, clock, request, stripe_sim, on_sale):
    ann, completed = late_payment_with_nothing_left(app, session, client, clock, stripe_sim)
    # Stripe answers after the shop has given up, but makes the refund all the same.
    short_gateway_timeout(app, STRIPE_TIMEOUT)
    stalled = StalledStripe(stripe_sim, request, method="POST", path="/v1/refunds")

    assert post_event(client, completed).status_code == 200

    refund = the_refund(session)
    assert (refund.status, refund.attempts) == ("pending", 1)
    assert refund.last_error
    stalled.wait_answered()
    (made,) = refunds_at_stripe(stripe_sim)

    clock.advance(minutes=1)
    flows.process_refund(session, gateway(), refund.id, clock())

    refund = the_refund(session)
    assert (refund.status, refund.gateway_refund_id) == ("succeeded", made["id"])  # Stripe replayed its answer
    assert len(refunds_at_stripe(stripe_sim)) == 1
    assert refund.order.status == "refunded"
    subjects = session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == "ann@example.com")).all()
    assert len([subject for subject in subjects if subject.startswith("Refund sent")]) == 1
    assert_audit_clean(session, clock())
