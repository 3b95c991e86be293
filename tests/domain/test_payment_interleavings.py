"""Random interleavings of the money paths keep units and money exactly right, on SQLite and PostgreSQL.

A run of 4 units, at most 2 per buyer, 4 addresses of which two are one mailbox (a +tag). Webhooks are held in the
simulator: the machine delivers the simulator's own signed events itself, in any order, duplicated, old ones after
new ones. Between deliveries buyers reserve (a real Checkout Session), pay on the simulator, cancel, let their hold
run out while the sweeper runs, come back to the success page; Stripe expires sessions on its own clock; refunds
are retried; the gateway fails now and then (a 5xx or 429 opening a checkout, expiring a session or refunding, or a
404 that says a session is gone although its page is still open, so the buyer pays late: their own numbers back,
other numbers, or a refund); and a stranger pays a session of their own that names a hold of the shop's.

After every step the invariant auditor finds nothing, and, checked against what the simulator holds:
- every paid session has at most one Order or UnmatchedPayment, and exactly one once the shop was told
  (its event delivered, the success page asked, or its hold ended through the flow that closes the session first);
- a session the shop did not open for a hold never becomes an order, and never touches anyone's units or holds;
- a unit, once sold, stays sold to the same order (nothing is sold twice);
- a buyer who paid has their units or a refund (never both); one order_confirmed mail per order with units, and it
  says "instead" exactly when the numbers are not the ones held;
- the gateway refunds each payment at most once, and every refund it made is recorded by the shop;
- a hold the shop ended has no payable session left, and it ended for the reason asked first.
A `settle` step lets everything catch up (gateway healthy, every payment event delivered, sweeps, refunds): then no
hold is live, every refund has succeeded and every payment is recorded.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import stripe
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, text

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.domain.errors import DomainError
from storefront.domain.fulfilment import line_item_name
from storefront.domain.inventory import Buyer, claim
from storefront.extensions import db
from storefront.models import (
    Hold,
    HoldStatus,
    Order,
    OutboxMessage,
    Refund,
    RefundStatus,
    Release,
    Unit,
    UnitStatus,
    UnmatchedPayment,
)
from storefront.payments import PaymentError, gateway
from storefront.shop.views import checkout_settings
from storefront.unit_of_work import write_transaction
from tests.conftest import STRIPE_TEST_KEY
from tests.factories import make_release
from tests.payments import event_for, events, hold_webhooks, hold_with_checkout, pay, post_event, sim_post

TOTAL = 4
LIMIT = 2
PRICE = 8900
HOLD_FOR = timedelta(minutes=10)
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
# ann and "Ann+gifts" are one mailbox: the limit counts them together.
BUYERS = ["ann@example.com", "bob@example.com", "Ann+gifts@Example.com", "cat@example.com"]
STRANGER = "mallory@example.net"
DELIVERABLE = ("checkout.session.completed", "checkout.session.expired", "charge.refunded")
# The sweeper runs every minute in production; here time passes in chunks of at most this, with a sweep after each.
SWEEP_EVERY = timedelta(minutes=5)
# Without a sweep, time only passes while no live hold gets this far past its time (the auditor flags 1 hour).
UNSWEPT_AT_MOST = timedelta(minutes=40)
FAULTS = {
    # Opening a checkout is retried by the SDK in production; here it is not (see `app_overrides`), so one failure
    # ends the hold at once ("checkout_failed") without the SDK's real-time back-off.
    "create_5xx": {"method": "POST", "path": "/v1/checkout/sessions", "status": 503},
    "expire_5xx": {"method": "POST", "path_prefix": "/v1/checkout/sessions/", "status": 503},
    "expire_gone": {"method": "POST", "path_prefix": "/v1/checkout/sessions/", "status": 404},
    "refund_5xx": {"method": "POST", "path": "/v1/refunds", "status": 500},
    "refund_429": {"method": "POST", "path": "/v1/refunds", "status": 429},
}


def sim_request(sim, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{sim.url}{path}", json=body, timeout=10)


def stranger_pays(
    sim,
    release: Release,
    hold_id: int,
    numbers: list[int],
    *,
    unit_amount: int = PRICE,
    currency: str = "eur",
    with_reference: bool = True,
) -> str | None:
    """A stranger opens a Checkout Session of their own naming `hold_id`, one line per number (by default exactly
    what the shop asks for that hold), and pays it. Returns its id (None if the gateway refused to open it)."""
    params = {
        "mode": "payment",
        "payment_method_types": ["card"],
        "line_items": [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": unit_amount,
                    "product_data": {"name": line_item_name(release, number)},
                },
                "quantity": 1,
            }
            for number in numbers
        ],
        "metadata": {"hold_id": str(hold_id)},
        "customer_email": STRANGER,
        "success_url": "https://elsewhere.example/thanks",
    }
    if with_reference:
        params["client_reference_id"] = f"hold-{hold_id}"
    sdk = stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": sim.url}, max_network_retries=0)
    try:
        forged = sdk.v1.checkout.sessions.create(params)
    except stripe.StripeError:
        return None  # an injected failure meant for the shop's checkout met the stranger instead
    pay(sim, forged.id, email=STRANGER, name="M Allory", address={"line1": "9 Elsewhere Rd"})
    return forged.id


@contextlib.contextmanager
def while_the_checkout_opens(interloper) -> Iterator[None]:
    """Run `interloper()` in the window where the shop has recorded what it asks for a hold and waits on Stripe
    for the session (no transaction open), as a request arriving meanwhile would."""
    shop_gateway = gateway()
    create = shop_gateway.create_checkout_session

    def create_after_interloper(**request):
        interloper()
        return create(**request)

    shop_gateway.create_checkout_session = create_after_interloper
    try:
        yield
    finally:
        del shop_gateway.create_checkout_session


class PaymentInterleavings(RuleBasedStateMachine):
    """Set `app`, `client`, `clock` and `sim` before running; the test pushes the app context (`db.session`)."""

    app = client = clock = sim = None

    def __init__(self) -> None:
        super().__init__()
        self.session = db.session
        # A stranger's own client, and the test's view of the account; no retries: an injected failure is the shop's.
        self.stripe = stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": self.sim.url}, max_network_retries=0)
        self.release_id = 0
        self.own_sessions: dict[str, int] = {}  # session id -> the hold the shop opened it for (creation order)
        self.forged: dict[str, int] = {}  # session id -> the hold it claims to pay for
        self.acknowledged: set[str] = set()  # paid sessions the shop has been told about
        self.sold_to: dict[int, int] = {}  # unit number -> the order it was sold to, once sold

    # --- Setup --------------------------------------------------------------------------------------------------

    @initialize(
        first_buyers=st.lists(
            st.tuples(st.sampled_from(BUYERS), st.integers(1, LIMIT), st.booleans()), min_size=1, max_size=3
        )
    )
    def open_release(self, first_buyers: list[tuple[str, int, bool]]) -> None:
        """A clean database and simulator for every example, a run of 4 on sale since a minute ago, and its first
        buyers (a step may be left out of an example, reserving too: every example starts with holds)."""
        session = self.session
        session.rollback()
        tables = list(reversed(db.metadata.sorted_tables))
        if session.get_bind().dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            session.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                session.execute(table.delete())
        session.commit()
        sim_request(self.sim, "POST", "/_sim/reset").raise_for_status()
        hold_webhooks(self.sim)
        self.clock.set(ON_SALE + timedelta(minutes=1))
        self.release_id = make_release(session, units=TOTAL, limit=LIMIT, price=PRICE, on_sale_at=ON_SALE).id
        session.commit()
        for buyer, quantity, pays in first_buyers:
            self.reserve_and_maybe_pay(buyer, quantity, None, pays)

    # --- Helpers ------------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def fresh(self, model, key):
        self.session.rollback()
        return self.session.get(model, key)

    def snapshot(self) -> tuple:
        """Every unit's and hold's state, and the orders: what a payment bound to nobody must leave alone."""
        session = self.session
        session.rollback()
        units = session.execute(select(Unit.number, Unit.status, Unit.hold_id, Unit.order_id).order_by(Unit.number))
        holds = session.execute(
            select(
                Hold.id, Hold.status, Hold.end_reason, Hold.payment_status, Hold.payment_session_id, Hold.end_requested
            ).order_by(Hold.id)
        )
        orders = session.execute(select(Order.id, Order.status, Order.checkout_session_id).order_by(Order.id))
        state = (units.all(), holds.all(), orders.all())
        session.rollback()
        return state

    def sim_sessions(self) -> dict[str, dict]:
        response = requests.get(
            f"{self.sim.url}/v1/checkout/sessions",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {STRIPE_TEST_KEY}"},
            timeout=10,
        )
        response.raise_for_status()
        listed = response.json()
        assert not listed["has_more"]
        return {item["id"]: item for item in listed["data"]}

    def open_sessions(self) -> list[str]:
        """The shop's sessions a buyer can still pay, oldest first."""
        sessions = self.sim_sessions()
        return [sid for sid in self.own_sessions if sessions[sid]["status"] == "open"]

    def deliver(self, event: dict) -> None:
        """Post one of the simulator's events to the shop's webhook, as Stripe would."""
        data = event["data"]["object"]
        forged = event["type"] == "checkout.session.completed" and data["id"] in self.forged
        before = self.snapshot() if forged else None
        response = post_event(self.client, event)
        assert response.status_code == 200, (response.status_code, response.get_data(as_text=True))
        assert response.get_json()["received"] is True
        if event["type"] == "checkout.session.completed" and data.get("payment_status") == "paid":
            self.acknowledged.add(data["id"])
        if forged:
            self.assert_forged_payment_refunded(data["id"], before)

    def assert_forged_payment_refunded(self, session_id: str, before: tuple) -> None:
        assert self.snapshot() == before, "a payment the shop did not ask for touched units, holds or orders"
        session = self.session
        session.rollback()
        unmatched = session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.checkout_session_id == session_id))
        assert unmatched is not None, f"forged session {session_id} was not recorded as unmatched"
        claimed = self.forged[session_id]
        assert unmatched.claimed_hold_id == (claimed if session.get(Hold, claimed) is not None else None)
        assert len(unmatched.refunds) == 1, "an unmatched payment is refunded exactly once"
        session.rollback()

    def sweep(self) -> None:
        flows.sweep_holds(self.session, gateway(), self.now())

    def most_overdue(self) -> timedelta:
        """How far the most overdue live hold is past its time (zero when none is)."""
        self.session.rollback()
        oldest = self.session.scalar(select(func.min(Hold.expires_at)).where(Hold.status == HoldStatus.ACTIVE))
        self.session.rollback()
        if oldest is None:
            return timedelta(0)
        return max(self.now() - oldest, timedelta(0))

    def add_fault(self, kind: str) -> None:
        """One failure of this kind at a time: a gateway that fails for ever is another test's business."""
        pending = sim_request(self.sim, "GET", "/_sim/faults").json()["faults"]
        spec = FAULTS[kind]
        if any(
            fault.get("path_prefix") == spec.get("path_prefix") and fault["path"] == spec.get("path")
            for fault in pending
        ):
            return
        sim_request(self.sim, "POST", "/_sim/faults", {**spec, "count": 1}).raise_for_status()

    # --- Rules --------------------------------------------------------------------------------------------------

    @rule(
        buyer=st.sampled_from(BUYERS),
        quantity=st.integers(1, LIMIT),
        number=st.none() | st.integers(1, TOTAL),
        pays=st.booleans(),
        raced=st.booleans(),
    )
    def reserve(self, buyer: str, quantity: int, number: int | None, pays: bool, raced: bool) -> None:
        """Claim and open the Checkout Session, as the reserve button does (tests/payments.py hold_with_checkout);
        with `pays`, the buyer pays on Stripe's page at once (its event is held like every other). With `raced`,
        while the shop waits on Stripe for the session, a stranger pays an exact copy of what it asks for."""
        self.reserve_and_maybe_pay(buyer, quantity, number, pays, raced)

    def reserve_and_maybe_pay(
        self, buyer: str, quantity: int, number: int | None, pays: bool, raced: bool = False
    ) -> None:
        if number is not None:
            quantity = 1
        now = self.now()
        self.session.rollback()
        try:
            with write_transaction(self.session):
                hold = claim(self.session, self.release_id, quantity, Buyer(buyer), now, HOLD_FOR, number=number)
                hold_id, settings_ = hold.id, checkout_settings(hold)
        except DomainError:
            return  # sold out, over the limit, the number taken: the buyer is told, nothing changed
        # If the gateway fails, the hold ends ("checkout_failed") and no session is handed out.
        with (
            contextlib.suppress(flows.CheckoutUnavailable),
            while_the_checkout_opens(lambda: self.stranger_copies(hold_id)) if raced else contextlib.nullcontext(),
        ):
            flows.start_checkout(self.session, gateway(), hold_id, now, settings_)
        hold = self.fresh(Hold, hold_id)
        session_id = hold.payment_session_id
        self.session.rollback()
        if session_id is not None:
            self.own_sessions[session_id] = hold_id
            if pays:
                self.pay_session(session_id, None)

    def stranger_copies(self, hold_id: int) -> None:
        """A stranger pays (and Stripe reports) an exact copy of what the shop asks for this hold."""
        numbers = list(self.fresh(Hold, hold_id).checkout_numbers or [])
        forged_id = stranger_pays(self.sim, self.session.get(Release, self.release_id), hold_id, numbers)
        self.session.rollback()
        if forged_id is not None:
            self.forged[forged_id] = hold_id
            self.deliver_completed(forged_id)

    def pay_session(self, session_id: str, email: str | None, comes_back: bool = False) -> None:
        """Pay on Stripe's page; with `comes_back`, Stripe sends the buyer on to the success page at once."""
        body = {"email": email} if email else {}
        response = sim_request(self.sim, "POST", f"/_sim/checkout/sessions/{session_id}/pay", body)
        assert response.status_code in (200, 409), response.text
        if response.status_code == 200 and comes_back:
            self.visit_success_page(session_id)

    @precondition(lambda self: self.own_sessions)
    @rule(
        data=st.data(),
        email=st.sampled_from([None, "someone.else@example.org"]),
        any_session=st.booleans(),
        comes_back=st.booleans(),
    )
    def pay(self, data, email: str | None, any_session: bool, comes_back: bool) -> None:
        """The buyer presses Pay on Stripe's page: mostly on a page still open (a hold whose session the gateway
        said was gone, too), sometimes on one already closed, which Stripe refuses."""
        candidates = list(self.own_sessions) if any_session else self.open_sessions()
        if not candidates:
            return
        session_id = data.draw(st.sampled_from(candidates), label="session")
        self.pay_session(session_id, email, comes_back)

    @precondition(lambda self: self.own_sessions)
    @rule(data=st.data(), any_hold=st.booleans())
    def cancel(self, data, any_hold: bool) -> None:
        """The buyer cancels their hold (POST /holds/<token>/cancel: flows.end_hold with "cancelled"): mostly a live
        one, sometimes one that has ended already."""
        candidates = list(self.own_sessions.values())
        if not any_hold:
            self.session.rollback()
            active = set(self.session.scalars(select(Hold.id).where(Hold.status == HoldStatus.ACTIVE)))
            self.session.rollback()
            candidates = [hold_id for hold_id in candidates if hold_id in active]
        if not candidates:
            return
        hold_id = data.draw(st.sampled_from(candidates), label="hold")
        session_id = next(sid for sid, held in self.own_sessions.items() if held == hold_id)
        try:
            ending = flows.end_hold(self.session, gateway(), hold_id, "cancelled", self.now())
        except PaymentError:
            # The page could not be closed: the hold stays held (it may still be paid), the sweeper finishes it.
            hold = self.fresh(Hold, hold_id)
            assert hold.status == HoldStatus.ACTIVE and hold.end_requested is not None
            self.session.rollback()
            return
        hold = self.fresh(Hold, hold_id)
        if ending is flows.Ending.RELEASED:
            assert hold.status == HoldStatus.RELEASED
            assert hold.end_reason == hold.end_requested
        elif ending is flows.Ending.PAID:
            # The session had been paid: the payment is the order now, whatever the buyer pressed.
            self.acknowledged.add(session_id)
        self.session.rollback()

    @precondition(lambda self: self.own_sessions)
    @rule(
        data=st.data(),
        by_sweeper=st.booleans(),
        taken_by=st.none() | st.sampled_from(BUYERS),
        comes_back=st.booleans(),
    )
    def gateway_loses_session_then_buyer_pays(
        self, data, by_sweeper: bool, taken_by: str | None, comes_back: bool
    ) -> None:
        """Stripe answers 404 when a live hold's session is closed (a cancel, or the sweeper once its time is up),
        so the hold ends as "gone"; but the page was still open, and the buyer pays: a late payment. With
        `taken_by`, another buyer reserves the numbers that came back on sale before the payment is paid."""
        self.session.rollback()
        active = list(
            self.session.scalars(
                select(Hold.id)
                .where(Hold.status == HoldStatus.ACTIVE, Hold.payment_session_id.is_not(None))
                .order_by(Hold.id)
            )
        )
        self.session.rollback()
        if not active:
            return
        hold_id = data.draw(st.sampled_from(active), label="hold")
        session_id = next(sid for sid, held in self.own_sessions.items() if held == hold_id)
        self.add_fault("expire_gone")
        if by_sweeper:
            # The sweeper reaching this hold once its time is up (only this one: which of several holds due at the
            # same moment meets the failure must not depend on the database's order of ties).
            self.clock.set(max(self.now(), self.fresh(Hold, hold_id).expires_at))
            self.session.rollback()
            if not flows.lease_hold(self.session, hold_id, self.now()):
                return  # a sweep that failed a moment ago still holds it
            reason = "expired"
        else:
            reason = "cancelled"
        with contextlib.suppress(PaymentError):
            flows.end_hold(self.session, gateway(), hold_id, reason, self.now())
        if taken_by is not None:
            for number in self.fresh(Hold, hold_id).checkout_numbers or []:
                self.session.rollback()
                self.reserve_and_maybe_pay(taken_by, 1, number, pays=False)
        self.pay_session(session_id, None, comes_back)

    @rule(minutes=st.integers(1, 30), sweep=st.booleans())
    def time_passes(self, minutes: int, sweep: bool) -> None:
        """The shop's clock moves on; with `sweep`, the sweeper runs as it would (every few minutes here)."""
        remaining = timedelta(minutes=minutes)
        if not sweep:
            # Without the sweeper, only so far that the auditor's "hold long past its time" stays meaningful.
            remaining = min(remaining, max(UNSWEPT_AT_MOST - self.most_overdue(), timedelta(0)))
            self.clock.advance(seconds=remaining.total_seconds())
            return
        while remaining > timedelta(0):
            step = min(remaining, SWEEP_EVERY)
            self.clock.advance(seconds=step.total_seconds())
            remaining -= step
            self.sweep()

    @rule()
    def sweeper_runs(self) -> None:
        """A sweep with no time passing: it finishes cancels that waited on the gateway."""
        self.sweep()

    @precondition(lambda self: self.own_sessions)
    @rule(data=st.data())
    def stripe_expires_session(self, data) -> None:
        """Stripe expires a session on its own clock (its event is held like any other)."""
        session_id = data.draw(st.sampled_from(list(self.own_sessions)), label="session")
        response = sim_request(self.sim, "POST", f"/_sim/checkout/sessions/{session_id}/expire-by-time")
        assert response.status_code in (200, 409), response.text

    @rule(data=st.data(), twice=st.booleans())
    def deliver_event(self, data, twice: bool) -> None:
        """Stripe delivers one of its events: any of them, again, or an older one after a newer one."""
        candidates = [event for event in self.all_events() if event["type"] in DELIVERABLE]
        if not candidates:
            return
        event = candidates[data.draw(st.integers(0, len(candidates) - 1), label="event")]
        self.deliver(event)
        if twice:
            self.deliver(event)

    def all_events(self) -> list[dict]:
        response = sim_request(self.sim, "GET", "/_sim/events")
        response.raise_for_status()
        return [entry["event"] for entry in response.json()["data"]]

    @precondition(lambda self: self.own_sessions or self.forged)
    @rule(data=st.data())
    def success_page(self, data) -> None:
        """The buyer lands on (or reloads) the success page, which asks the gateway when the webhook is late."""
        session_id = data.draw(st.sampled_from(list(self.own_sessions) + list(self.forged)), label="session")
        self.visit_success_page(session_id)

    def visit_success_page(self, session_id: str) -> None:
        paid = self.stripe.v1.checkout.sessions.retrieve(session_id).payment_status == "paid"
        response = self.client.get(f"/checkout/success?session_id={session_id}")
        if session_id in self.forged:
            assert response.status_code == 404
            return
        if paid:
            assert response.status_code == 200, response.status_code
            self.acknowledged.add(session_id)
        else:
            assert response.status_code == 202, response.status_code

    @rule()
    def retry_refunds(self) -> None:
        flows.retry_due_refunds(self.session, gateway(), self.now())

    @rule(kind=st.sampled_from(sorted(FAULTS)))
    def gateway_fails_once(self, kind: str) -> None:
        """The next matching gateway call fails: a 5xx/429, or a 404 that says the session is gone."""
        self.add_fault(kind)

    @precondition(lambda self: self.own_sessions)
    @rule(
        data=st.data(),
        amount=st.sampled_from(["exactly what the shop asks", "one cent each", "more"]),
        currency=st.sampled_from(["eur", "jpy"]),
        with_reference=st.booleans(),
        deliver=st.booleans(),
    )
    def forge_payment(self, data, amount: str, currency: str, with_reference: bool, deliver: bool) -> None:
        """A stranger opens a session of their own naming a hold of the shop's (live, ended, one a late payment
        made, or none at all), with the line items the shop would ask for it, and pays it. Even when it is what the
        shop would ask for, to the cent, it is not the shop's session: it must not touch anyone's units.

        An exact copy names, when there is one, a hold with no session recorded (the hold a late payment is sold
        through, a hold whose checkout failed): the ones a stranger could hope to bind to by copying the shop's
        request (a copy for a hold with a session recorded is refused at once: "is not the session the shop opened")."""
        session = self.session
        session.rollback()
        holds = list(session.execute(select(Hold.id, Hold.checkout_numbers, Hold.payment_session_id).order_by(Hold.id)))
        release = session.get(Release, self.release_id)
        candidates = [(hold_id, numbers) for hold_id, numbers, _ in holds]
        candidates.append((holds[-1][0] + 100, [1]))  # a hold that does not exist
        unrecorded = [(hold_id, numbers) for hold_id, numbers, session_id in holds if session_id is None]
        if amount == "exactly what the shop asks" and unrecorded:
            candidates = unrecorded
        victim, numbers = data.draw(st.sampled_from(candidates), label="victim")
        if amount == "exactly what the shop asks":
            currency, with_reference = "eur", True
        unit_amount = {"exactly what the shop asks": PRICE, "one cent each": 1, "more": PRICE + 100}[amount]
        session.rollback()
        forged_id = stranger_pays(
            self.sim,
            release,
            victim,
            numbers or [1],
            unit_amount=unit_amount,
            currency=currency,
            with_reference=with_reference,
        )
        self.session.rollback()
        if forged_id is None:
            return
        self.forged[forged_id] = victim
        if deliver:
            self.deliver_completed(forged_id)

    def deliver_completed(self, session_id: str) -> None:
        completed = [
            event
            for event in self.all_events()
            if event["type"] == "checkout.session.completed" and event["data"]["object"]["id"] == session_id
        ]
        assert len(completed) == 1
        self.deliver(completed[0])

    @rule()
    def settle(self) -> None:
        """Everything catches up: the gateway recovers, every payment event arrives, the sweeper and refunds run."""
        sim_request(self.sim, "DELETE", "/_sim/faults").raise_for_status()
        for event in self.all_events():
            if event["type"] == "checkout.session.completed":
                self.deliver(event)
        for _ in range(3):
            self.clock.advance(seconds=(HOLD_FOR + timedelta(minutes=3)).total_seconds())
            self.sweep()
        for _ in range(10):
            flows.retry_due_refunds(self.session, gateway(), self.now())
            self.session.rollback()
            waiting = self.session.scalar(
                select(func.min(Refund.next_attempt_at)).where(Refund.status == RefundStatus.PENDING)
            )
            self.session.rollback()
            if waiting is None:
                break
            self.clock.set(max(self.now(), waiting) + timedelta(minutes=1))
        session = self.session
        assert session.scalar(select(func.count()).where(Hold.status == HoldStatus.ACTIVE)) == 0
        statuses = Counter(session.scalars(select(Refund.status)))
        assert set(statuses) <= {RefundStatus.SUCCEEDED}, statuses
        paid = [sid for sid, item in self.sim_sessions().items() if item["payment_status"] == "paid"]
        self.acknowledged.update(paid)
        session.rollback()

    # --- Invariants ---------------------------------------------------------------------------------------------

    @invariant()
    def books_are_sound(self) -> None:
        if not self.release_id:
            return
        session = self.session
        session.rollback()
        problems = audit(session, self.now())
        assert problems == [], "\n".join(problems)
        sim_sessions = self.sim_sessions()
        paid_sessions = {sid: item for sid, item in sim_sessions.items() if item["payment_status"] == "paid"}

        orders = {order.checkout_session_id: order for order in session.scalars(select(Order))}
        unmatched = {row.checkout_session_id: row for row in session.scalars(select(UnmatchedPayment))}
        holds = {hold.id: hold for hold in session.scalars(select(Hold))}

        # Every record of a payment is a payment the gateway took, of that amount; one record per payment at most.
        for sid in orders.keys() | unmatched.keys():
            assert sid in paid_sessions, f"{sid} is recorded as paid, but the gateway says it is not"
            assert not (sid in orders and sid in unmatched), f"{sid} is both an order and an unmatched payment"
            record = orders.get(sid) or unmatched.get(sid)
            assert record.payment_intent_id == paid_sessions[sid]["payment_intent"]
        for sid in orders:
            assert sid not in self.forged, f"forged session {sid} became an order"
            assert orders[sid].amount_total == paid_sessions[sid]["amount_total"]

        # Once the shop was told (or ended the hold, which closes the session first), the payment is recorded.
        for sid in paid_sessions:
            hold_id = self.own_sessions.get(sid)
            hold = holds.get(hold_id) if hold_id is not None else None
            hold_ended = hold is not None and hold.status != HoldStatus.ACTIVE and hold.payment_status != "gone"
            if sid in self.acknowledged or hold_ended:
                assert sid in orders or sid in unmatched, (
                    f"paid session {sid} (hold {hold_id}, {hold and hold.status}/{hold and hold.payment_status}) "
                    "has no order and no unmatched payment"
                )

        # A hold the shop ended has no payable session left (unless the gateway said the session is gone), and it
        # ended for the reason asked first.
        for hold in holds.values():
            if hold.status == HoldStatus.RELEASED:
                if hold.end_requested is not None:
                    assert hold.end_reason == hold.end_requested, (hold.id, hold.end_reason, hold.end_requested)
                sid = hold.payment_session_id
                if sid is not None and hold.payment_status != "gone":
                    assert sim_sessions[sid]["status"] != "open", f"hold {hold.id} ended but {sid} can still be paid"
            elif hold.status == HoldStatus.CONVERTED:
                assert hold.end_reason == "paid"

        # Units: an order owns all its units or none (then it is refunded); once sold, a unit stays with its order.
        units_by_order: dict[int, list[int]] = {}
        for number, status, order_id in session.execute(select(Unit.number, Unit.status, Unit.order_id)):
            if number in self.sold_to:
                assert (status, order_id) == (UnitStatus.SOLD, self.sold_to[number]), (
                    f"No. {number} was sold to order {self.sold_to[number]}, now {status} for {order_id}"
                )
            if status == UnitStatus.SOLD:
                self.sold_to[number] = order_id
                units_by_order.setdefault(order_id, []).append(number)
        refunds_by_order = Counter(session.scalars(select(Refund.order_id).where(Refund.order_id.is_not(None))))
        mails = list(session.scalars(select(OutboxMessage)))
        for sid, order in orders.items():
            owned = sorted(units_by_order.get(order.id, []))
            assert len(owned) in (0, order.quantity), f"order {order.reference} owns {owned} of {order.quantity}"
            if owned:
                assert refunds_by_order[order.id] == 0, f"order {order.reference} has its units and a refund"
            else:
                assert refunds_by_order[order.id] == 1, f"order {order.reference} has no units and no single refund"
            confirmed = [
                m for m in mails if m.subject.endswith(f"(order {order.reference})") and "refunded" not in m.subject
            ]
            sold_out = [
                m for m in mails if m.subject.endswith(f"(order {order.reference})") and "refunded" in m.subject
            ]
            refund_sent = [m for m in mails if m.subject == f"Refund sent for order {order.reference}"]
            assert len(confirmed) == (1 if owned else 0), f"order {order.reference}: {len(confirmed)} confirmations"
            assert len(sold_out) == (0 if owned else 1), f"order {order.reference}: {len(sold_out)} sold-out mails"
            assert len(refund_sent) <= 1, f"order {order.reference}: {len(refund_sent)} refund mails"
            if owned:
                own_hold = holds[self.own_sessions[sid]]
                reassigned = "gave you the numbers above instead" in confirmed[0].body
                assert reassigned == (owned != sorted(own_hold.checkout_numbers or [])), (
                    f"order {order.reference}: numbers {owned}, held {own_hold.checkout_numbers}, "
                    f"mail says reassigned={reassigned}"
                )
        for sid, row in unmatched.items():
            if row.payment_intent_id and row.amount > 0:
                assert len(row.refunds) == 1, f"unmatched payment {sid} has {len(row.refunds)} refunds"

        # Money goes back at most once per payment, at the gateway and in the shop's books.
        refunds = list(session.scalars(select(Refund)))
        per_intent = Counter(refund.payment_intent_id for refund in refunds)
        assert all(count == 1 for count in per_intent.values()), per_intent
        gateway_refunds = [event["data"]["object"] for event in events(self.sim, "refund.created")]
        at_gateway = Counter(refund["payment_intent"] for refund in gateway_refunds)
        assert all(count == 1 for count in at_gateway.values()), f"refunded twice at the gateway: {at_gateway}"
        recorded = {refund.gateway_refund_id: refund for refund in refunds if refund.gateway_refund_id}
        for sent in gateway_refunds:
            assert sent["id"] in recorded, f"the gateway refunded {sent['payment_intent']} but the shop has no record"
            assert recorded[sent["id"]].status == RefundStatus.SUCCEEDED
            assert recorded[sent["id"]].amount == sent["amount"]
        session.rollback()


@pytest.fixture
def app_overrides() -> dict:
    """No SDK retries when opening a checkout: the machine injects the failures, and they must not cost real time."""
    return {"STRIPE_CHECKOUT_RETRIES": 0}


def test_random_payment_interleavings_keep_money_and_units_right(app, session, client, clock, stripe_sim, backend):
    machine = type(
        "Machine", (PaymentInterleavings,), {"app": app, "client": client, "clock": clock, "sim": stripe_sim}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            # One failure, shrunk: each example replays a shop and a simulator, so shrinking is what takes time.
            report_multiple_bugs=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# --- What the machine found, as plain regression tests ---------------------------------------------------------------


def stranger_copies_the_shop_request(sim, session, hold_id: int, numbers: list[int]) -> str:
    """Open and pay a session of a stranger's own that is, to the cent, what the shop asks for this hold."""
    release = session.scalar(select(Release).join(Hold, Hold.release_id == Release.id).where(Hold.id == hold_id))
    forged = stranger_pays(sim, release, hold_id, numbers)
    session.rollback()
    return forged


def assert_unmatched_and_untouched(session, client, sim, forged_id: str) -> None:
    session.rollback()
    units_before = session.execute(select(Unit.number, Unit.status, Unit.order_id).order_by(Unit.number)).all()
    session.rollback()
    response = post_event(client, event_for(sim, "checkout.session.completed", forged_id))
    assert response.status_code == 200
    session.rollback()
    order = session.scalar(select(Order).where(Order.checkout_session_id == forged_id))
    assert order is None, (
        f"the stranger's payment became order {order.reference} for {order.email}: No. "
        f"{[unit.number for unit in order.units]}, shipped to {order.shipping_name}, {order.shipping_address['line1']}"
    )
    assert session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.checkout_session_id == forged_id))
    assert session.execute(select(Unit.number, Unit.status, Unit.order_id).order_by(Unit.number)).all() == units_before


@pytest.fixture
def release_id(app, session, clock, stripe_sim) -> int:
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=TOTAL, limit=LIMIT, price=PRICE, on_sale_at=ON_SALE)
    session.commit()
    return release.id


def test_a_strangers_copy_of_the_request_cannot_bind_to_the_hold_a_late_payment_made(
    app, session, client, clock, stripe_sim, release_id
):
    # Ann's hold ends "gone" (Stripe answered 404 to expiring its session), but the page was open and she pays:
    # a late payment, her No. 1 still free, sold to her through a new hold that has no session of its own.
    hold = hold_with_checkout(app, release_id, "ann@example.com", clock())
    ann_session = hold.payment_session_id
    session.commit()
    sim_post(stripe_sim, "/_sim/faults", {"method": "POST", "path_prefix": "/v1/checkout/sessions/", "status": 404})
    flows.end_hold(session, gateway(), hold.id, "cancelled", clock())
    pay(stripe_sim, ann_session)
    assert post_event(client, event_for(stripe_sim, "checkout.session.completed", ann_session)).status_code == 200
    session.rollback()
    ann_order = session.scalar(select(Order).where(Order.checkout_session_id == ann_session))
    late_hold = session.get(Hold, ann_order.hold_id)
    assert (late_hold.payment_session_id, late_hold.checkout_numbers) == (None, [1])

    # A stranger copies what the shop would ask for that hold: it must not sell Ann another unit, shipped to them.
    forged = stranger_copies_the_shop_request(stripe_sim, session, late_hold.id, [1])
    assert_unmatched_and_untouched(session, client, stripe_sim, forged)


def test_a_strangers_copy_of_the_request_cannot_bind_to_a_hold_whose_checkout_failed(
    app, session, client, clock, stripe_sim, release_id
):
    # Stripe fails to open Ann's checkout: her hold ends ("checkout_failed") with no session ever handed out.
    sim_post(stripe_sim, "/_sim/faults", {"method": "POST", "path": "/v1/checkout/sessions", "status": 503})
    with write_transaction(session):
        hold = claim(session, release_id, 1, Buyer("ann@example.com"), clock(), HOLD_FOR)
        hold_id, settings_ = hold.id, checkout_settings(hold)
    with pytest.raises(flows.CheckoutUnavailable):
        flows.start_checkout(session, gateway(), hold_id, clock(), settings_)
    hold = session.get(Hold, hold_id)
    assert (hold.status, hold.end_reason, hold.payment_session_id) == ("released", "checkout_failed", None)

    forged = stranger_copies_the_shop_request(stripe_sim, session, hold_id, [1])
    assert_unmatched_and_untouched(session, client, stripe_sim, forged)


def test_a_strangers_copy_paid_while_the_checkout_opens_cannot_take_the_hold(
    app, session, client, clock, stripe_sim, release_id
):
    # Ann reserves; while the shop waits on Stripe for her session (its request recorded, the session id not yet),
    # a stranger pays a copy of that request and Stripe reports it.
    with write_transaction(session):
        hold = claim(session, release_id, 1, Buyer("ann@example.com"), clock(), HOLD_FOR)
        hold_id, settings_ = hold.id, checkout_settings(hold)
    forged = []

    def stranger_pays_meanwhile():
        forged.append(stranger_copies_the_shop_request(stripe_sim, session, hold_id, [1]))
        assert post_event(client, event_for(stripe_sim, "checkout.session.completed", forged[0])).status_code == 200

    with while_the_checkout_opens(stranger_pays_meanwhile):
        try:
            answer = flows.start_checkout(session, gateway(), hold_id, clock(), settings_)
        except flows.CheckoutUnavailable as error:
            answer = f"CheckoutUnavailable: {error}"

    # The stranger's payment is refunded and Ann's hold is untouched: her own page is open, and hers to pay.
    session.rollback()
    hold = session.get(Hold, hold_id)
    order = session.scalar(select(Order))
    assert order is None, (
        f"the stranger's payment became order {order.reference} for {order.email}, shipped to "
        f"{order.shipping_name}; Ann was answered {answer!r}; her hold is {hold.status} with payment_status "
        f"{hold.payment_status!r} and the {'stranger' if hold.payment_session_id == forged[0] else 'shop'}'s session"
    )
    assert session.scalar(select(UnmatchedPayment).where(UnmatchedPayment.checkout_session_id == forged[0]))
    assert (hold.status, hold.payment_status, hold.payment_url) == ("active", "unpaid", answer)
