"""The invariant auditor finds every kind of broken book we can plant, and stays quiet on sound ones.

Some plants need data the schema itself refuses (that is the point of the constraints), so those tests switch a
constraint off first: `PRAGMA ignore_check_constraints` or a table rebuild on SQLite, DROP CONSTRAINT on the
test's own PostgreSQL schema.
"""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from storefront.domain.audit import audit
from storefront.models import Hold, Order, Release, Unit
from tests.factories import make_release
from tests.integration.helpers import (
    claim_committed,
    convert_committed,
    new_order_for,
    release_committed,
)

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def new_release(session, **options) -> Release:
    release = make_release(session, on_sale_at=ON_SALE, **options)
    session.commit()
    return release


def problems_now(session, clock) -> list[str]:
    session.commit()
    problems = audit(session, clock())
    session.rollback()
    return sorted(problems)


def ignore_check_constraints(session, backend: str) -> None:
    """Let the next statements in this transaction break the unit table's CHECK constraints."""
    if backend == "sqlite":
        session.execute(text("PRAGMA ignore_check_constraints = ON"))
    else:
        session.execute(text("ALTER TABLE unit DROP CONSTRAINT ck_unit_status_matches_links"))
        session.execute(text("ALTER TABLE unit DROP CONSTRAINT ck_unit_number_positive"))


def drop_unit_number_uniqueness(session, backend: str) -> None:
    """Allow a number to exist twice in a release (SQLite cannot drop a constraint: rebuild the table without)."""
    if backend == "sqlite":
        session.execute(text("CREATE TABLE unit_loose AS SELECT * FROM unit"))
        session.execute(text("DROP TABLE unit"))
        session.execute(text("ALTER TABLE unit_loose RENAME TO unit"))
    else:
        session.execute(text("ALTER TABLE unit DROP CONSTRAINT uq_unit_release_id_number"))
    session.commit()


def insert_unit(session, release_id: int, number: int, status: str, hold_id: int | None = None, held_until=None):
    """Insert a unit row by hand (with its id: a rebuilt SQLite table no longer numbers rows itself)."""
    next_id = session.scalar(select(func.coalesce(func.max(Unit.id), 0) + 1))
    session.execute(
        insert(Unit).values(
            id=next_id, release_id=release_id, number=number, status=status, hold_id=hold_id, held_until=held_until
        )
    )


# --- Sound books ---------------------------------------------------------------------------------------------


def test_sound_books_audit_clean(session, clock):
    release = new_release(session, units=10, limit=3)
    other = new_release(session, units=3, limit=1)
    session.execute(update(Unit).where(Unit.release_id == release.id, Unit.number == 10).values(status="withheld"))
    session.commit()

    paid = claim_committed(session, release.id, 2, "ann@example.com", clock())
    convert_committed(session, paid, new_order_for(paid), clock())
    claim_committed(session, release.id, 1, "ann@example.com", clock())  # at the limit, exactly
    cancelled = claim_committed(session, release.id, 3, "bob@example.com", clock())
    release_committed(session, cancelled, clock())
    claim_committed(session, release.id, 3, "bob@example.com", clock())
    claim_committed(session, other.id, 1, "ann@example.com", clock())
    clock.advance(minutes=30)
    claim_committed(session, release.id, 1, "cat@example.com", clock())  # reclaims every timed-out hold

    assert problems_now(session, clock) == []


def test_a_timed_out_hold_does_not_count_against_the_limit(session, clock):
    release = new_release(session, units=10, limit=3)
    claim_committed(session, release.id, 3, "ann@example.com", clock())
    clock.advance(minutes=10)
    # Not reclaimed yet: it still holds its units, but the buyer may already claim again.
    assert problems_now(session, clock) == []


def test_an_empty_database_audits_clean(session, clock):
    assert problems_now(session, clock) == []


# --- Planted violations ----------------------------------------------------------------------------------------


def test_finds_a_unit_sold_without_an_order(session, clock, backend):
    release = new_release(session, units=3)
    ignore_check_constraints(session, backend)
    session.execute(update(Unit).where(Unit.release_id == release.id, Unit.number == 2).values(status="sold"))
    session.commit()

    assert problems_now(session, clock) == [f"release {release.id}: No. 2 is sold without an order"]


def test_finds_a_number_that_exists_twice_and_an_oversold_release(session, clock, backend):
    release = new_release(session, units=3, limit=3)
    hold = claim_committed(session, release.id, 3, "ann@example.com", clock())
    hold_id, expires_at = hold.id, hold.expires_at
    session.commit()
    drop_unit_number_uniqueness(session, backend)
    extra = Hold(
        release_id=release.id,
        buyer_email="bob@example.com",
        buyer_key="bob@example.com",
        quantity=1,
        expires_at=expires_at,
    )
    session.add(extra)
    session.flush()
    insert_unit(session, release.id, 2, "held", hold_id=extra.id, held_until=expires_at)
    session.commit()

    assert hold_id != extra.id
    assert problems_now(session, clock) == sorted(
        [
            f"release {release.id}: number 2 exists 2 times",
            f"release {release.id}: has 4 unit rows for a run of 3",
            f"release {release.slug}: 4 sold or held of a run of 3",
        ]
    )


def test_finds_numbers_outside_the_run(session, clock, backend):
    release = new_release(session, units=3)
    ignore_check_constraints(session, backend)
    session.execute(update(Unit).where(Unit.release_id == release.id, Unit.number == 3).values(number=7))
    session.execute(update(Unit).where(Unit.release_id == release.id, Unit.number == 1).values(number=0))
    session.commit()

    assert problems_now(session, clock) == sorted(
        [
            f"release {release.id}: unit number 0 is outside 1..3",
            f"release {release.id}: unit number 7 is outside 1..3",
        ]
    )


def test_finds_a_release_with_more_taken_than_its_run(session, clock):
    release = new_release(session, units=4, limit=4)
    claim_committed(session, release.id, 3, "ann@example.com", clock())
    # The producer "corrects" the run size to 2 after three were taken.
    session.execute(update(Release).where(Release.id == release.id).values(total_units=2, per_customer_limit=3))
    session.commit()

    assert problems_now(session, clock) == sorted(
        [
            f"release {release.id}: unit number 3 is outside 1..2",
            f"release {release.id}: unit number 4 is outside 1..2",
            f"release {release.id}: has 4 unit rows for a run of 2",
            f"release {release.slug}: 3 sold or held of a run of 2",
        ]
    )


def test_finds_held_units_in_a_released_hold(session, clock):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    session.execute(update(Hold).where(Hold.id == hold.id).values(status="released", end_reason="cancelled"))
    session.commit()

    assert problems_now(session, clock) == sorted(
        [
            f"release {release.id}: No. 1 is held by hold {hold.id}, which is released",
            f"release {release.id}: No. 2 is held by hold {hold.id}, which is released",
        ]
    )


def test_finds_a_sold_unit_still_in_a_live_hold(session, clock):
    release = new_release(session, units=5, limit=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    convert_committed(session, hold, new_order_for(hold), clock())
    session.execute(update(Hold).where(Hold.id == hold.id).values(status="active"))
    session.commit()

    assert problems_now(session, clock) == sorted(
        [
            f"release {release.id}: No. 1 is sold but still in live hold {hold.id}",
            f"release {release.id}: No. 2 is sold but still in live hold {hold.id}",
            f"hold {hold.id}: holds 0 units for a quantity of 2",
        ]
    )


def test_finds_a_hold_with_fewer_units_than_its_quantity(session, clock):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    session.execute(update(Hold).where(Hold.id == hold.id).values(quantity=3))
    session.commit()

    assert problems_now(session, clock) == [f"hold {hold.id}: holds 2 units for a quantity of 3"]


def test_finds_a_buyer_above_the_limit_across_holds_and_orders(session, clock):
    release = new_release(session, units=10, limit=3)
    paid = claim_committed(session, release.id, 2, "ann@example.com", clock())
    convert_committed(session, paid, new_order_for(paid), clock())
    claim_committed(session, release.id, 1, "ann@example.com", clock())
    claim_committed(session, release.id, 3, "bob@example.com", clock())
    session.execute(update(Release).where(Release.id == release.id).values(per_customer_limit=2))
    session.commit()

    assert problems_now(session, clock) == sorted(
        [
            f"release {release.slug}: ann@example.com has 3, above the limit of 2",
            f"release {release.slug}: bob@example.com has 3, above the limit of 2",
        ]
    )


def test_finds_a_buyer_above_the_limit_through_a_planted_hold(session, clock):
    release = new_release(session, units=10, limit=2)
    first = claim_committed(session, release.id, 2, "ann@example.com", clock())
    # Typed another way, the same mailbox is the same buyer: the auditor counts by the canonical key.
    planted = Hold(
        release_id=release.id,
        buyer_email="Ann+again@Example.com",
        buyer_key="ann@example.com",
        quantity=1,
        expires_at=first.expires_at,
    )
    session.add(planted)
    session.commit()
    session.execute(
        update(Unit)
        .where(Unit.release_id == release.id, Unit.number == 9)
        .values(status="held", hold_id=select(Hold.id).where(Hold.quantity == 1).scalar_subquery(), held_until=clock())
    )
    session.commit()

    assert problems_now(session, clock) == [f"release {release.slug}: ann@example.com has 3, above the limit of 2"]


def test_finds_a_hold_still_active_long_after_its_time(session, clock):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    # Its buyer may still be paying on the gateway's page, so no claim reclaims it: the sweeper must end it.
    session.execute(update(Hold).where(Hold.id == hold.id).values(payment_session_id="cs_test_stuck"))
    session.commit()
    clock.set(hold.expires_at + timedelta(hours=1))
    assert problems_now(session, clock) == []  # late, but within what a slow sweep may take

    clock.advance(minutes=1)
    assert problems_now(session, clock) == [
        f"hold {hold.id}: still active 1:01:00 after its time (session cs_test_stuck); is the sweeper running?"
    ]


def test_finds_an_order_that_owns_fewer_units_than_it_paid_for(session, clock):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    convert_committed(session, hold, new_order_for(hold), clock())
    order = session.scalar(select(Order))
    session.execute(update(Order).where(Order.id == order.id).values(quantity=3, amount_total=3 * 8900))
    session.commit()

    assert problems_now(session, clock) == [f"order {order.reference}: paid for 3 units but owns 2"]


def test_finds_an_order_without_any_unit(session, clock):
    release = new_release(session, units=5)
    session.add(
        Order(
            release_id=release.id,
            email="ann@example.com",
            buyer_key="ann@example.com",
            quantity=1,
            unit_amount=8900,
            amount_total=8900,
            currency="EUR",
        )
    )
    session.commit()
    order = session.scalar(select(Order))

    assert problems_now(session, clock) == [f"order {order.reference}: paid for 1 units but owns 0"]


def test_finds_a_unit_sold_to_an_order_of_another_release(session, clock):
    release = new_release(session, units=5)
    other = new_release(session, units=5)
    hold = claim_committed(session, release.id, 1, "ann@example.com", clock())
    convert_committed(session, hold, new_order_for(hold), clock())
    order = session.scalar(select(Order))
    session.execute(update(Order).where(Order.id == order.id).values(release_id=other.id))
    session.commit()

    assert problems_now(session, clock) == [
        f"release {release.id}: No. 1 belongs to order {order.reference} of another release"
    ]


def test_finds_a_unit_that_points_at_an_order_but_is_not_sold(session, clock, backend):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 1, "ann@example.com", clock())
    convert_committed(session, hold, new_order_for(hold), clock())
    ignore_check_constraints(session, backend)
    session.execute(update(Unit).where(Unit.release_id == release.id, Unit.number == 1).values(status="withheld"))
    session.commit()

    assert problems_now(session, clock) == [f"release {release.id}: No. 1 points at an order but is withheld"]


# --- The command -----------------------------------------------------------------------------------------------


def test_the_audit_command_exits_0_on_sound_books(app, session, clock):
    release = new_release(session, units=5)
    claim_committed(session, release.id, 2, "ann@example.com", clock())

    result = app.test_cli_runner().invoke(args=["storefront", "audit"])

    assert result.exit_code == 0, result.output
    assert "Audit clean" in result.output
    assert "VIOLATION" not in result.output


def test_the_audit_command_prints_each_violation_and_exits_1(app, session, clock):
    release = new_release(session, units=5)
    hold = claim_committed(session, release.id, 2, "ann@example.com", clock())
    session.execute(update(Hold).where(Hold.id == hold.id).values(status="released"))
    session.commit()

    result = app.test_cli_runner().invoke(args=["storefront", "audit"])

    assert result.exit_code == 1, result.output
    violations = [line for line in result.stderr.splitlines() if line.startswith("VIOLATION ")]
    assert violations == [
        f"VIOLATION release {release.id}: No. 1 is held by hold {hold.id}, which is released",
        f"VIOLATION release {release.id}: No. 2 is held by hold {hold.id}, which is released",
    ]
    assert "Audit clean" not in result.output
