"""Random sequences of claim / release / time passing / sweep / convert keep the books sound, on SQLite and PostgreSQL.

A plain-Python model of the release predicts the outcome of every step (which numbers, which refusal); after every
step the database must match the model unit for unit, and the invariant auditor must find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
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
from sqlalchemy import func, select, update

from storefront.checkout.flows import sweep_holds
from storefront.domain.audit import audit
from storefront.domain.buyers import buyer_key
from storefront.domain.errors import DomainError
from storefront.domain.inventory import (
    HoldNotActive,
    InvalidClaim,
    LimitReached,
    NumberTaken,
    SoldOut,
)
from storefront.extensions import db
from storefront.models import Hold, Order, Unit
from tests.factories import make_release
from tests.integration.helpers import (
    HOLD_FOR,
    claim_committed,
    convert_committed,
    new_order_for,
    numbers_of,
    release_committed,
)

TOTAL = 8
LIMIT = 3
# The sweeper may run late (a busy worker), but a hold never stays past its time for this long; the auditor
# reports one still active an hour after its time.
SWEEPER_LATE_BY_AT_MOST = timedelta(minutes=30)
# Four spellings of one mailbox (case, a "+tag", fullwidth letters): the limit must treat them as one person.
BUYERS = [
    "ann@example.com",
    "Ann@Example.COM",
    "ann+drop@example.com",
    "\uff41\uff4e\uff4e@example.com",
    "bob@example.com",
    "cat@example.com",
    "dan@example.com",
]


@dataclass
class ModelHold:
    buyer: str
    numbers: list[int]
    expires_at: datetime
    status: str = "active"
    end_reason: str | None = None


@dataclass
class ModelRelease:
    """What the release should look like: each unit's state, and who owns what."""

    units: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # number -> (status, hold id)
    holds: dict[int, ModelHold] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)

    def available(self) -> list[int]:
        return sorted(n for n, (status, _) in self.units.items() if status == "available")

    def owned(self, buyer: str, now: datetime) -> int:
        live = sum(
            len(h.numbers)
            for h in self.holds.values()
            if h.buyer == buyer and h.status == "active" and h.expires_at > now
        )
        return live + self.paid.get(buyer, 0)

    def reclaim(self, now: datetime) -> None:
        for hold in self.holds.values():
            if hold.status == "active" and hold.expires_at <= now:
                self.end(hold, "released", "expired")

    def end(self, hold: ModelHold, status: str, reason: str) -> None:
        hold.status, hold.end_reason = status, reason
        for number in hold.numbers:
            self.units[number] = ("sold", None) if status == "converted" else ("available", None)


class NoGateway:
    """No hold in this machine opens a checkout, so the sweeper ends holds without asking a gateway."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the sweeper asked the gateway ({name}) about a hold without a checkout")


class InventoryMachine(RuleBasedStateMachine):
    """Set `clock` before running; the test pushes the app context whose `db.session` every step uses."""

    clock = None

    def __init__(self) -> None:
        super().__init__()
        self.session = db.session
        self.model = ModelRelease()
        self.release_id = 0

    @initialize(withheld=st.sets(st.integers(1, TOTAL), max_size=2))
    def open_release(self, withheld: set[int]) -> None:
        session = self.session
        session.rollback()
        self.release_id = make_release(
            session, units=TOTAL, limit=LIMIT, on_sale_at=self.clock() - timedelta(minutes=1)
        ).id
        if withheld:
            session.execute(
                update(Unit)
                .where(Unit.release_id == self.release_id, Unit.number.in_(withheld))
                .values(status="withheld")
            )
        session.commit()
        self.model.units = {n: ("withheld" if n in withheld else "available", None) for n in range(1, TOTAL + 1)}

    def now(self) -> datetime:
        return self.clock()

    # --- Rules --------------------------------------------------------------------------------------------------

    @rule(
        email=st.sampled_from(BUYERS),
        quantity=st.integers(0, LIMIT + 1),
        number=st.none() | st.none() | st.integers(0, TOTAL + 1),  # mostly lowest-number claims; 0 and 9 are invalid
    )
    def claim(self, email: str, quantity: int, number: int | None) -> None:
        now, buyer, model = self.now(), buyer_key(email), self.model
        expected = self.expected_refusal(buyer, quantity, number, now)
        try:
            hold = claim_committed(self.session, self.release_id, quantity, email, now, number=number)
        except DomainError as refusal:
            assert expected is not None, f"refused with {refusal!r}, model expected success"
            assert type(refusal) is type(expected), f"refused with {refusal!r}, model expected {expected!r}"
            # What the refusal offers (how many are left, the next free number); its wording may change freely.
            assert {k: v for k, v in vars(refusal).items() if k != "message"} == {
                k: v for k, v in vars(expected).items() if k != "message"
            }
            return
        assert expected is None, f"claim succeeded, model expected {expected!r}"
        model.reclaim(now)
        wanted = [number] if number is not None else model.available()[:quantity]
        assert numbers_of(self.session, hold) == wanted
        model.holds[hold.id] = ModelHold(buyer, wanted, now + HOLD_FOR)
        for taken in wanted:
            model.units[taken] = ("held", hold.id)

    def expected_refusal(self, buyer: str, quantity: int, number: int | None, now: datetime) -> DomainError | None:
        """The refusal the engine must give, or None when the claim must succeed."""
        if quantity < 1:
            return InvalidClaim("Choose how many you want: at least 1.")
        if quantity > LIMIT:
            return InvalidClaim(f"You can take at most {LIMIT} from this release.")
        if number is not None and quantity != 1:
            return InvalidClaim("Pick one number at a time.")
        if number is not None and not 1 <= number <= TOTAL:
            return InvalidClaim(f"Numbers run from 1 to {TOTAL}.")
        remaining = LIMIT - self.model.owned(buyer, now)
        if quantity > remaining:
            if remaining <= 0:
                return LimitReached(f"You already have the limit of {LIMIT} from this release.", 0)
            return LimitReached(f"You can take {remaining} more from this release (limit {LIMIT}).", remaining)
        after_reclaim = ModelRelease(
            dict(self.model.units), {k: ModelHold(**vars(h)) for k, h in self.model.holds.items()}
        )
        after_reclaim.reclaim(now)
        free = after_reclaim.available()
        if number is not None:
            if number in free:
                return None
            higher = [n for n in free if n > number]
            return NumberTaken(f"No. {number} is already taken.", (higher or free or [None])[0])
        if len(free) < quantity:
            if not free:
                return SoldOut("Every unit of this release is sold or held.", 0)
            return SoldOut(f"Only {len(free)} left; please ask for {len(free)} or fewer.", len(free))
        return None

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def release(self, data) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)), label="hold")
        hold = self.model.holds[hold_id]
        db_hold = self.session.get(Hold, hold_id)
        if hold.status == "converted":
            with pytest.raises(HoldNotActive):
                release_committed(self.session, db_hold, self.now())
            return
        released = release_committed(self.session, db_hold, self.now())
        if hold.status == "active":
            self.model.end(hold, "released", "cancelled")
        assert (released.status, released.end_reason) == ("released", hold.end_reason)

    @rule(minutes=st.integers(1, 12))
    def let_time_pass(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        oldest = self.session.scalar(select(func.min(Hold.expires_at)).where(Hold.status == "active"))
        self.session.rollback()
        if oldest is not None and oldest < self.now() - SWEEPER_LATE_BY_AT_MOST:
            self.sweep()

    @rule()
    def sweep(self) -> None:
        """The sweeper's periodic run: every hold past its time ends ("expired"), its units back on sale."""
        sweep_holds(self.session, NoGateway(), self.now())
        self.model.reclaim(self.now())

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def pay(self, data) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.model.holds)), label="hold")
        hold = self.model.holds[hold_id]
        db_hold = self.session.get(Hold, hold_id)
        order = new_order_for(db_hold)
        if hold.status != "active":
            with pytest.raises(HoldNotActive):
                convert_committed(self.session, db_hold, order, self.now())
            return
        converted = convert_committed(self.session, db_hold, order, self.now())
        assert converted.status == "converted"
        self.model.end(hold, "converted", "paid")
        self.model.paid[hold.buyer] = self.model.paid.get(hold.buyer, 0) + len(hold.numbers)

    # --- Invariants ---------------------------------------------------------------------------------------------

    @invariant()
    def database_matches_the_model(self) -> None:
        if not self.release_id:
            return
        session = self.session
        session.commit()
        rows = session.execute(
            select(Unit.number, Unit.status, Unit.hold_id, Unit.order_id).where(Unit.release_id == self.release_id)
        ).all()
        session.rollback()
        assert len(rows) == TOTAL
        counts = {status: 0 for status in ("available", "held", "sold", "withheld")}
        for number, status, hold_id, order_id in rows:
            counts[status] += 1
            expected_status, expected_hold = self.model.units[number]
            assert status == expected_status, f"No. {number} is {status}, model says {expected_status}"
            if status == "held":
                assert hold_id == expected_hold
            assert (order_id is not None) == (status == "sold")
        assert sum(counts.values()) == TOTAL

    @invariant()
    def auditor_finds_nothing(self) -> None:
        session = self.session
        session.commit()
        problems = audit(session, self.now())
        paid_units = session.scalar(
            select(func.coalesce(func.sum(Order.quantity), 0)).where(Order.release_id == self.release_id)
        )
        session.rollback()
        assert problems == []
        assert paid_units == sum(self.model.paid.values())

    def teardown(self) -> None:
        self.session.rollback()


def test_random_claims_releases_expiries_and_payments_keep_the_books_sound(app, session, clock, backend):
    machine = type("Machine", (InventoryMachine,), {"clock": clock})
    run_state_machine_as_test(
        machine,
        settings=settings(
            # Each step runs the whole auditor; PostgreSQL's round trips make its steps slower, so fewer examples.
            max_examples=25 if backend == "sqlite" else 12,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
