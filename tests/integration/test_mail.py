"""Order mail through the outbox, delivered to a real SMTP server running in this process (aiosmtpd).

Payments are real Checkout Sessions on the Stripe simulator, paid there and posted to the shop's webhook with
Stripe's signature. Tasks run inline (Huey's immediate mode), so the webhook sends the mail before it answers.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from storefront import notifications, tasks
from storefront.models import Order, OutboxMessage
from tests.factories import make_release
from tests.integration.smtp import SHOP_URL, SmtpServer
from tests.payments import event_for, hold_webhooks, hold_with_checkout, pay, post_event

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
# Not the address any test request uses: links in mail must come from SHOP_URL, not from the webhook's Host.
UNITS = 12


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


@dataclass(frozen=True)
class Sale:
    release_id: int
    batch_slug: str


@pytest.fixture
def sale(app, session, clock, stripe_sim) -> Sale:
    """A release on sale for a minute; the simulator keeps its webhooks until a test posts them."""
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    release = make_release(session, units=UNITS, on_sale_at=ON_SALE)
    result = Sale(release.id, release.batch.slug)
    session.commit()
    return result


def buy_one(app, client, stripe_sim, sale: Sale, now: datetime, buyer: str = "ann@example.com") -> str:
    """Hold a unit, pay for it on the simulator and deliver the signed completion event; returns the session id."""
    hold = hold_with_checkout(app, sale.release_id, buyer, now)
    pay(stripe_sim, hold.payment_session_id, name="Ann Byrne", address={"line1": "1 Quay St", "city": "Cork"})
    response = post_event(client, event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id))
    assert response.status_code == 200
    return hold.payment_session_id


def only_order(session) -> Order:
    session.commit()  # a fresh snapshot: the webhook committed in a transaction of its own
    (order,) = session.scalars(select(Order)).all()
    return order


def outbox(session) -> list[OutboxMessage]:
    session.commit()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def run_mail_task(session) -> None:
    """Run the worker's mail task here, as the consumer would: with no transaction of ours left open."""
    session.commit()
    tasks.send_outbox.call_local()


def assert_order_confirmation(message: EmailMessage, body: str, order: Order, sale: Sale, buyer: str) -> None:
    assert message["To"] == buyer
    assert message["From"] == "Small Batch <shop@localhost>"
    assert message["Subject"] == f"No. 1 of {UNITS} is yours (order {order.reference})"
    assert re.fullmatch(r"SB-[A-Z0-9-]+", order.reference)
    assert f"No. 1 of {UNITS}" in body
    assert "Paid: €89.00" in body
    assert f"Order: {order.reference}" in body
    assert f"{SHOP_URL}/batches/{sale.batch_slug}" in body


def test_a_paid_order_is_confirmed_over_smtp(app, session, client, clock, stripe_sim, smtp_server, sale):
    buy_one(app, client, stripe_sim, sale, clock())

    order = only_order(session)
    (delivery,) = smtp_server.received()
    assert delivery.recipients == ["ann@example.com"]
    assert_order_confirmation(delivery.message, delivery.body, order, sale, "ann@example.com")
    assert "Shipping to:\n  Ann Byrne\n  1 Quay St" in delivery.body
    (queued,) = outbox(session)
    assert (queued.recipient, queued.sent_at, queued.attempts, queued.last_error) == (
        "ann@example.com",
        clock(),
        1,
        "",
    )


def test_mail_waits_while_the_smtp_server_is_down_and_goes_out_once_when_it_is_back(
    app, session, client, clock, stripe_sim, smtp_server, sale
):
    smtp_server.stop()

    buy_one(app, client, stripe_sim, sale, clock())

    order = only_order(session)  # the payment is kept whatever happens to the mail
    (queued,) = outbox(session)
    assert queued.sent_at is None
    assert queued.attempts == 1
    assert "refused" in queued.last_error.lower()
    assert queued.lease_until == clock() + timedelta(minutes=1)

    smtp_server.start()
    run_mail_task(session)
    assert smtp_server.received() == [], "sent again before its back-off ended"

    clock.advance(minutes=1, seconds=1)
    run_mail_task(session)
    run_mail_task(session)

    (delivery,) = smtp_server.received()
    assert_order_confirmation(delivery.message, delivery.body, order, sale, "ann@example.com")
    (queued,) = outbox(session)
    assert queued.sent_at == clock()
    assert queued.attempts == 2


def test_the_same_payment_delivered_five_times_mails_once(app, session, client, clock, stripe_sim, smtp_server, sale):
    session_id = buy_one(app, client, stripe_sim, sale, clock())
    event = event_for(stripe_sim, "checkout.session.completed", session_id)

    assert [post_event(client, event).status_code for _ in range(4)] == [200] * 4
    run_mail_task(session)

    assert len(smtp_server.received()) == 1
    assert len(outbox(session)) == 1


def refund_mail_context() -> dict:
    """What the refund_sent template reads, without making a refund (this test is about the transaction)."""
    return {"order": SimpleNamespace(reference="SB-TESTMAIL"), "refund": SimpleNamespace(amount=8900, currency="EUR")}


def test_a_rolled_back_transaction_never_mails(app, session, clock, smtp_server):
    session.commit()
    notifications.queue_mail(session, "rolled-back@example.com", "refund_sent", **refund_mail_context())
    session.rollback()
    notifications.queue_mail(session, "committed@example.com", "refund_sent", **refund_mail_context())
    session.commit()

    run_mail_task(session)

    assert [message.recipient for message in outbox(session)] == ["committed@example.com"]
    assert [delivery.recipients for delivery in smtp_server.received()] == [["committed@example.com"]]
    assert smtp_server.received()[0].message["Subject"] == "Refund sent for order SB-TESTMAIL"


class TestWithoutMailUrl:
    """The default for a new user: each mail is written to MAIL_DIR as a .eml file they can open."""

    @pytest.fixture
    def app_overrides(self, smtp_server: SmtpServer) -> dict:
        return {"MAIL_URL": "", "SHOP_URL": SHOP_URL}

    def test_a_paid_order_is_written_as_an_eml_file(
        self, app, session, client, clock, stripe_sim, smtp_server, sale, tmp_path: Path
    ):
        buy_one(app, client, stripe_sim, sale, clock())

        order = only_order(session)
        (queued,) = outbox(session)
        files = sorted((tmp_path / "mail").glob("*.eml"))
        assert [file.name for file in files] == [f"{clock():%Y%m%dT%H%M%S}-{queued.id}.eml"]
        message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert_order_confirmation(message, text, order, sale, "ann@example.com")
        assert message["Date"]
        assert f".outbox-{queued.id}@" in message["Message-ID"]
        assert queued.sent_at == clock()
        assert smtp_server.received() == [], "no MAIL_URL: nothing may go over SMTP"
