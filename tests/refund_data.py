"""Orders paid through the real fulfilment rules, and producer refunds asked for, sent and refused, for the domain
tests of refunds, the auditor and the sales summary. The gateway's answers are recorded as the worker records them
(lease, then sent or failed); tests that need Stripe itself use the simulator (tests/payments.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from storefront.domain.fulfilment import PaidCheckout, client_reference, fulfil_paid_checkout, record_checkout_request
from storefront.domain.inventory import held_numbers
from storefront.domain.refunds import lease_refund, record_refund_failure, record_refund_sent, request_refund
from storefront.models import Hold, Order, Refund, Release, Unit
from storefront.unit_of_work import write_transaction
from tests.integration.helpers import claim_committed

PRODUCER = "ann@distillery.ie"


def paid_order(session, release: Release, email: str, now: datetime, quantity: int = 1) -> Order:
    """A hold claimed, its Checkout Session recorded and paid at the right amount: the order it became."""
    hold = claim_committed(session, release.id, quantity, email, now)
    with write_transaction(session):
        hold = session.get(Hold, hold.id)
        record_checkout_request(session, hold, held_numbers(session, hold), release.price_amount, release.currency)
        hold.payment_session_id = f"cs_test_{hold.id}"
        hold.payment_status = "unpaid"
    payment = PaidCheckout(
        session_id=f"cs_test_{hold.id}",
        payment_intent_id=f"pi_test_{hold.id}",
        amount_total=release.price_amount * quantity,
        currency=release.currency,
        email=email,
        claimed_hold_id=hold.id,
        client_reference_id=client_reference(hold.id),
    )
    with write_transaction(session):
        order_id = fulfil_paid_checkout(session, payment, now).order.id
    return session.get(Order, order_id)


def unit_ids(session, order: Order, numbers: Iterable[int]) -> list[int]:
    """The ids of the order's release's units with these numbers."""
    numbers = list(numbers)
    by_number = dict(
        session.execute(
            select(Unit.number, Unit.id).where(Unit.release_id == order.release_id, Unit.number.in_(numbers))
        ).all()
    )
    return [by_number[number] for number in numbers]


def ask_refund(
    session,
    order: Order,
    numbers: Iterable[int],
    now: datetime,
    *,
    returning: Iterable[int] = (),
    reason: str = "damaged",
    note: str = "",
) -> Refund:
    """The producer asks for a refund of these numbers of the order (committed), `returning` going back on sale."""
    with write_transaction(session):
        return request_refund(
            session,
            order.id,
            unit_ids(session, order, numbers),
            unit_ids(session, order, returning),
            reason,
            now,
            PRODUCER,
            note=note,
        )


def send(session, refund_id: int, gateway_refund_id: str, now: datetime) -> Refund | None:
    """One attempt at the refund, which the gateway makes (as the worker records it)."""
    with write_transaction(session):
        assert lease_refund(session, refund_id, now) is not None, "the refund was not due"
        return record_refund_sent(session, refund_id, gateway_refund_id, now)


def refuse(session, refund_id: int, error: str, now: datetime, *, retryable: bool = False) -> Refund | None:
    """One attempt at the refund, which the gateway refuses (for good, unless `retryable`)."""
    with write_transaction(session):
        attempt = lease_refund(session, refund_id, now)
        assert attempt is not None, "the refund was not due"
        return record_refund_failure(session, refund_id, attempt, error, now, retryable=retryable)


def fresh(session, model, object_id: int):
    """A row as it is in the database now (a new read)."""
    session.commit()
    session.expire_all()
    return session.get(model, object_id)
