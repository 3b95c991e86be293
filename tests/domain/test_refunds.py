"""Refunds as a leased state machine: one attempt at a time, one refund at the gateway, one mail, retried for days.

Every refund here is of a real payment on the simulator: a hold's Checkout Session is opened and paid there, the
paid session becomes an order, and the order is refunded through `flows.process_refund` over HTTP (or, for the
lease itself, through the domain's functions). Two workers racing
for one refund are played in one thread: the gateway call of the first attempt lets "another worker" (an app
context of its own, so a session of its own) take the refund over before the first attempt's answer comes back.
Time moves only on the FrozenClock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
import requests
from sqlalchemy import select, update

from storefront import tasks
from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.domain.refunds import (
    REFUND_LEASE,
    REFUND_RETRY_WINDOW,
    lease_refund,
    queue_refund,
    record_refund_failure,
    record_refund_sent,
)
from storefront.extensions import db
from storefront.models import Order, OutboxMessage, PeriodicRun, Refund
from storefront.payments import Gateway, RefundResult, gateway
from storefront.periodic import claim_period
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.payments import events, hold_with_checkout, pay, sim_post

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRODUCER = "producer@example.com"
BUYER = "ann@example.com"
JUST_AFTER = timedelta(seconds=1)


@pytest.fixture
def app_overrides():
    return {"PRODUCER_EMAIL": PRODUCER}


@pytest.fixture
def release_id(session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3)
    session.commit()
    return release.id


# --- Helpers --------------------------------------------------------------------------------------------------


def paid_order(app, session, sim, release_id: int, now: datetime, email: str = BUYER) -> Order:
    """A hold whose Checkout Session was paid on the simulator and became an order, as the success page does it."""
    hold = hold_with_checkout(app, release_id, email, now)
    pay(sim, hold.payment_session_id)
    checkout = gateway().retrieve_session(hold.payment_session_id)
    result = flows.complete_checkout(session, gateway(), checkout, now)
    assert result.order.status == "paid"
    return session.get(Order, result.order.id)


def refund_for_a_paid_order(app, session, sim, release_id: int, now: datetime, email: str = BUYER) -> int:
    """Record a refund of a real paid order; nothing sends it yet (no worker is woken)."""
    order = paid_order(app, session, sim, release_id, now, email)
    with write_transaction(session):
        order = session.get(Order, order.id)
        refund = queue_refund(
            session,
            order.payment_intent_id,
            order.amount_total,
            order.currency,
            "requested_by_customer",
            now,
            order=order,
        )
    return refund.id


def fresh_refund(session, refund_id: int) -> Refund:
    """The refund as it is in the database now (a new read: on SQLite an old one would show an old snapshot)."""
    session.commit()
    session.expire_all()
    return session.get(Refund, refund_id)


def subjects_to(session, recipient: str) -> list[str]:
    session.commit()
    return list(
        session.scalars(
            select(OutboxMessage.subject).where(OutboxMessage.recipient == recipient).order_by(OutboxMessage.id)
        )
    )


def refund_sent_mails(session) -> list[str]:
    return [subject for subject in subjects_to(session, BUYER) if subject.startswith("Refund sent")]


def gateway_refunds(sim) -> list[dict]:
    """Every refund the simulator made, as its refund.created events."""
    return [event["data"]["object"] for event in events(sim, "refund.created")]


def add_fault(sim, status: int | None = None, *, count: int | None = 1, error: dict | None = None, delay=0.0):
    """Make the next `count` refund requests (every one when None) wait `delay` seconds, then fail with `status`
    (or go through, when it is None)."""
    spec = {"method": "POST", "path": "/v1/refunds", "status": status, "count": count, "delay_seconds": delay}
    if error is not None:
        spec["error"] = error
    sim_post(sim, "/_sim/faults", spec)


def clear_faults(sim) -> None:
    requests.delete(f"{sim.url}/_sim/faults", timeout=5).raise_for_status()


def problems(session, now: datetime) -> list[str]:
    session.commit()
    found = audit(session, now)
    session.rollback()
    return found


class RefundRow(NamedTuple):
    status: str
    attempts: int
    gateway_refund_id: str | None
    last_error: str
    lease_until: datetime | None
    next_attempt_at: datetime | None
    updated_at: datetime


def row(refund: Refund) -> RefundRow:
    """Everything an attempt may change on a refund, as it is now."""
    return RefundRow(
        refund.status,
        refund.attempts,
        refund.gateway_refund_id,
        refund.last_error,
        refund.lease_until,
        refund.next_attempt_at,
        refund.updated_at,
    )


class SlowFirstCall:
    """The shop's gateway, except that while the first refund request is "on the network", `meanwhile` runs."""

    def __init__(self, real: Gateway, meanwhile) -> None:
        self.real = real
        self.meanwhile = meanwhile
        self.calls = 0

    def refund(self, **request) -> RefundResult:
        self.calls += 1
        if self.calls == 1:
            self.meanwhile()
        return self.real.refund(**request)


def another_worker(app, refund_id: int, now: datetime) -> RefundRow:
    """A second worker (its own app context, so its own database session) attempts the refund at `now`.

    Returns the refund's row as that worker left it.
    """
    with app.app_context():
        refund = flows.process_refund(db.session, gateway(), refund_id, now)
        assert refund is not None, "the other worker could not lease the refund"
        left = row(refund)
        db.session.commit()
        return left


# --- The lease ------------------------------------------------------------------------------------------------


def test_a_lease_lets_one_attempt_send_at_a_time_and_is_taken_over_when_it_runs_out(
    app, session, clock, stripe_sim, release_id
):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    leased_at = clock()

    with write_transaction(session):
        assert lease_refund(session, refund_id, leased_at) == 1
    refund = fresh_refund(session, refund_id)
    assert (refund.status, refund.attempts, refund.lease_until) == ("sending", 1, leased_at + REFUND_LEASE)

    # While the lease holds, nobody else may send it: not at once, not a second before it runs out.
    for moment in (leased_at, leased_at + REFUND_LEASE - JUST_AFTER):
        with write_transaction(session):
            assert lease_refund(session, refund_id, moment) is None
    assert fresh_refund(session, refund_id).attempts == 1

    # Its worker died: once the lease has run out, another worker takes the refund over as attempt 2.
    clock.set(leased_at + REFUND_LEASE)
    with write_transaction(session):
        assert lease_refund(session, refund_id, clock()) == 2
    with write_transaction(session):
        assert lease_refund(session, refund_id, clock()) is None
    refund = fresh_refund(session, refund_id)
    assert (refund.status, refund.attempts, refund.lease_until) == ("sending", 2, clock() + REFUND_LEASE)


def test_only_the_attempt_holding_the_lease_may_record_a_failure(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    with write_transaction(session):
        first = lease_refund(session, refund_id, clock())
    clock.advance(seconds=REFUND_LEASE.total_seconds() + 1)
    with write_transaction(session):
        second = lease_refund(session, refund_id, clock())
    assert (first, second) == (1, 2)

    with write_transaction(session):
        assert record_refund_sent(session, refund_id, "re_test_second", clock()) is not None
    with write_transaction(session):
        # The first attempt's answer arrives late, and it is a final "no": it must not undo the refund.
        assert record_refund_failure(session, refund_id, first, "late: no", clock(), retryable=False) is None
        assert record_refund_failure(session, refund_id, second, "late: no", clock(), retryable=True) is None
    with write_transaction(session):
        assert record_refund_sent(session, refund_id, "re_test_second", clock()) is None

    refund = fresh_refund(session, refund_id)
    assert (refund.status, refund.gateway_refund_id, refund.attempts, refund.last_error) == (
        "succeeded",
        "re_test_second",
        2,
        "",
    )
    assert refund.order.status == "refunded"


# --- Two workers, one refund ----------------------------------------------------------------------------------


def test_a_stale_failure_never_overwrites_a_success(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    first_attempt_at = clock()
    taken_over = []

    def lease_runs_out_and_another_worker_sends_it():
        taken_over.append(another_worker(app, refund_id, first_attempt_at + REFUND_LEASE + JUST_AFTER))
        # The first attempt's own request then comes back refused for good.
        add_fault(stripe_sim, 400, error={"type": "invalid_request_error", "message": "Late and refused."})

    slow = SlowFirstCall(gateway(), lease_runs_out_and_another_worker_sends_it)
    flows.process_refund(session, slow, refund_id, first_attempt_at)

    (second,) = taken_over
    assert (second.status, second.attempts) == ("succeeded", 2)
    refund = fresh_refund(session, refund_id)
    assert row(refund) == second, "the first attempt's late failure changed the refund"
    assert refund.order.status == "refunded"
    assert [made["id"] for made in gateway_refunds(stripe_sim)] == [refund.gateway_refund_id]
    assert len(refund_sent_mails(session)) == 1
    assert subjects_to(session, PRODUCER) == []  # nobody is asked to look at a refund that went through
    assert problems(session, clock()) == []


def test_a_late_success_for_a_refund_someone_else_finished_changes_nothing(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    first_attempt_at = clock()
    finished = []

    def lease_runs_out_and_another_worker_sends_it():
        finished.append(another_worker(app, refund_id, first_attempt_at + REFUND_LEASE + JUST_AFTER))

    # The first attempt's request reaches the gateway after the second's, with the same idempotency key: the
    # gateway answers it with the refund it already made.
    slow = SlowFirstCall(gateway(), lease_runs_out_and_another_worker_sends_it)
    flows.process_refund(session, slow, refund_id, first_attempt_at)

    (second,) = finished
    assert (second.status, second.attempts) == ("succeeded", 2)
    refund = fresh_refund(session, refund_id)
    assert row(refund) == second, "the first attempt's late success changed the refund"
    assert len(gateway_refunds(stripe_sim)) == 1
    assert len(refund_sent_mails(session)) == 1
    assert problems(session, clock()) == []


def test_one_idempotency_key_per_refund_makes_one_refund_at_the_gateway(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())

    first = flows.process_refund(session, gateway(), refund_id, clock())
    first_gateway_id = first.gateway_refund_id
    # As if the answer had been lost (a worker killed after the gateway call): the row is pending again.
    with write_transaction(session):
        session.execute(
            update(Refund)
            .where(Refund.id == refund_id)
            .values(status="pending", next_attempt_at=clock(), gateway_refund_id=None, lease_until=None)
        )
    again = flows.process_refund(session, gateway(), refund_id, clock())

    assert again.status == "succeeded"
    assert again.gateway_refund_id == first_gateway_id
    made = gateway_refunds(stripe_sim)
    assert [refund["id"] for refund in made] == [first_gateway_id]
    assert made[0]["payment_intent"] == again.payment_intent_id


# --- Retries: long enough, not for ever -----------------------------------------------------------------------


def test_retryable_failures_back_off_for_three_days_then_a_person_is_asked(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    queued_at = clock()
    add_fault(stripe_sim, 503, count=None, error={"type": "api_error", "message": "Stripe is having a bad day."})

    delays = []
    while True:
        refund = flows.process_refund(session, gateway(), refund_id, clock())
        if refund.status == "failed":
            break
        assert refund.status == "pending"
        delays.append(refund.next_attempt_at - clock())
        # Not a moment before its time, however often the periodic task runs meanwhile.
        assert flows.process_refund(session, gateway(), refund_id, refund.next_attempt_at - JUST_AFTER) is None
        clock.set(refund.next_attempt_at)
        assert len(delays) < 100, "retries never stop"

    minutes = [delay / timedelta(minutes=1) for delay in delays]
    assert minutes[:9] == [1, 2, 4, 8, 16, 32, 64, 128, 240]
    assert set(minutes[8:]) == {240}, "at most 4 hours apart"
    # It gave up only when the next try would fall after the 3-day window: not sooner, not later.
    gave_up_at = clock()
    assert queued_at + REFUND_RETRY_WINDOW - timedelta(hours=4) < gave_up_at <= queued_at + REFUND_RETRY_WINDOW
    assert (refund.attempts, refund.next_attempt_at, refund.lease_until) == (len(delays) + 1, None, None)
    assert "bad day" in refund.last_error
    assert flows.process_refund(session, gateway(), refund_id, gave_up_at + timedelta(days=30)) is None

    # The producer is told once, the buyer is not told it was sent, and the auditor and the CLI show it.
    assert [subject.startswith("A refund needs a person") for subject in subjects_to(session, PRODUCER)] == [True]
    assert refund_sent_mails(session) == []
    reference = fresh_refund(session, refund_id).order.reference
    assert problems(session, clock()) == [
        f"order {reference}: refund failed for good ({refund.last_error}); refund it by hand"
    ]
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["storefront", "refunds"])
    assert listing.exit_code == 0, listing.output
    assert f"refund {refund_id}  failed" in listing.output
    assert f"order {reference}" in listing.output

    # Stripe is back; a person asks for one more try, which gets a window of its own and is sent at once.
    clear_faults(stripe_sim)
    retried = runner.invoke(args=["storefront", "refunds", "--retry", str(refund_id)])
    assert retried.exit_code == 0, retried.output
    assert f"Refund {refund_id} queued again." in retried.output
    refund = fresh_refund(session, refund_id)
    assert refund.retry_until == clock() + REFUND_RETRY_WINDOW
    assert (refund.status, refund.attempts) == ("succeeded", len(delays) + 2)
    assert len(gateway_refunds(stripe_sim)) == 1
    assert len(refund_sent_mails(session)) == 1
    assert problems(session, clock()) == []
    assert "No refund is waiting or failed" in runner.invoke(args=["storefront", "refunds"]).output
    again = runner.invoke(args=["storefront", "refunds", "--retry", str(refund_id)])
    assert again.exit_code != 0 and "Only a failed refund can be retried" in again.output


def test_a_final_refusal_from_the_gateway_fails_at_once(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    add_fault(stripe_sim, 400, error={"type": "invalid_request_error", "message": "This charge is disputed."})

    refund = flows.process_refund(session, gateway(), refund_id, clock())

    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("failed", 1, None)
    assert "disputed" in refund.last_error
    assert flows.process_refund(session, gateway(), refund_id, clock() + timedelta(days=1)) is None
    assert gateway_refunds(stripe_sim) == []
    assert [subject.startswith("A refund needs a person") for subject in subjects_to(session, PRODUCER)] == [True]
    assert refund_sent_mails(session) == []
    assert any(f"refund failed for good ({refund.last_error})" in problem for problem in problems(session, clock()))


@pytest.mark.parametrize(
    "error",
    [
        pytest.param({"type": "idempotency_error", "message": "Idempotency conflict."}, id="idempotency_error"),
        pytest.param(
            {"type": "invalid_request_error", "code": "idempotency_key_in_use", "message": "Key in use."},
            id="key-in-use",
        ),
    ],
)
def test_an_idempotency_conflict_means_ask_again(app, session, clock, stripe_sim, release_id, error):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    add_fault(stripe_sim, 409, error=error)
    asked_at = clock()

    refund = flows.process_refund(session, gateway(), refund_id, asked_at)

    assert (refund.status, refund.attempts, refund.next_attempt_at) == ("pending", 1, asked_at + timedelta(minutes=1))
    assert refund.last_error
    assert subjects_to(session, PRODUCER) == []
    assert problems(session, asked_at) == []  # a refund waiting to be asked again is on its way

    clock.set(refund.next_attempt_at)
    refund = flows.process_refund(session, gateway(), refund_id, clock())
    assert (refund.status, refund.attempts) == ("succeeded", 2)
    assert len(gateway_refunds(stripe_sim)) == 1
    assert len(refund_sent_mails(session)) == 1


# --- Periodic work: once per period, however many workers fire it ---------------------------------------------


def test_a_period_is_claimed_once_per_minute(app, session, clock):
    minute = clock().replace(second=5)

    assert claim_period(session, "retry_refunds", minute) is True
    assert claim_period(session, "retry_refunds", minute) is False
    assert claim_period(session, "retry_refunds", minute + timedelta(seconds=50)) is False  # the same minute
    assert claim_period(session, "sweep_holds", minute) is True  # each task has periods of its own
    assert claim_period(session, "retry_refunds", minute + timedelta(seconds=55)) is True  # the next minute
    assert claim_period(session, "retry_refunds", minute + timedelta(seconds=55)) is False
    assert claim_period(session, "retry_refunds", minute - timedelta(minutes=5)) is False  # a late clock
    session.commit()
    assert session.get(PeriodicRun, "retry_refunds").period_start == minute.replace(second=0) + timedelta(minutes=1)


def test_the_periodic_refund_retry_runs_once_per_minute(app, session, clock, stripe_sim, release_id):
    refund_id = refund_for_a_paid_order(app, session, stripe_sim, release_id, clock())
    # Another worker's scheduler fired retry_refunds this minute and claimed it; ours then does nothing.
    assert claim_period(session, "retry_refunds", clock()) is True

    tasks.retry_refunds.call_local()
    assert (fresh_refund(session, refund_id).status, gateway_refunds(stripe_sim)) == ("pending", [])

    clock.advance(minutes=1)
    tasks.retry_refunds.call_local()
    tasks.retry_refunds.call_local()
    refund = fresh_refund(session, refund_id)
    assert (refund.status, refund.attempts) == ("succeeded", 1)
    assert len(gateway_refunds(stripe_sim)) == 1
    assert len(refund_sent_mails(session)) == 1
