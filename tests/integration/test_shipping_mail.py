"""From payment to the door: a real payment on the Stripe simulator, shipped from the workspace, and the buyer's
"on its way" mail delivered to a real SMTP server in this process (aiosmtpd).

Tasks run inline (Huey's immediate mode), so each request has sent its mail before it answers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.models import Order, OutboxMessage
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.smtp import SHOP_URL, SmtpServer
from tests.payments import event_for, hold_webhooks, hold_with_checkout, pay, post_event
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
TRACKING = "RR123456789IE"


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


def test_a_paid_order_shipped_from_the_workspace_reaches_the_buyer_with_its_tracking_link(
    app, session, client, clock, stripe_sim, smtp_server
):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    batch = make_batch(session)
    batch.title = "Carlow Rye"
    release = make_release(session, batch=batch, units=240, on_sale_at=ON_SALE)
    release_id = release.id
    session.commit()

    # Ann reserves two numbers, pays on the simulator's page, and Stripe's signed event reaches the webhook.
    hold = hold_with_checkout(app, release_id, "ann@example.ie", clock(), quantity=2)
    pay(
        stripe_sim,
        hold.payment_session_id,
        name="Ann Byrne",
        address={"line1": "1 Quay Street", "city": "Galway", "postal_code": "H91 XK2C", "country": "IE"},
    )
    assert (
        post_event(client, event_for(stripe_sim, "checkout.session.completed", hold.payment_session_id)).status_code
        == 200
    )
    session.commit()
    order = session.scalar(select(Order).where(Order.checkout_session_id == hold.payment_session_id))
    order_id, reference = order.id, order.reference
    (confirmation,) = smtp_server.received()
    assert confirmation.recipients == ["ann@example.ie"]

    # The producer finds the order by its number and ships it with An Post.
    clock.advance(days=1)
    sign_in(client, PRODUCER_EMAIL)
    found = client.get("/producer/orders?q=No.+2").get_data(as_text=True)
    assert f'data-order="{reference}"' in found and "No. 1, 2 of 240" in found
    order_page = client.get(f"/producer/orders/{order_id}").get_data(as_text=True)
    response = client.post(
        f"/producer/orders/{order_id}/shipped",
        data={"csrf_token": csrf_from(order_page), "carrier": "an_post", "tracking_number": TRACKING},
    )
    assert response.status_code == 303

    confirmation, shipped = smtp_server.received()
    assert shipped.recipients == ["ann@example.ie"]
    assert shipped.message["Subject"] == f"Your No. 1, 2 of 240 are on their way (order {reference})"
    body = shipped.body
    tracking_link = f"https://www.anpost.com/Post-Parcels/Track/History?item={TRACKING}"
    for text in (
        "Your No. 1, 2 of 240 are on their way.",
        "Carlow Rye",
        "No. 1 of 240",
        "No. 2 of 240",
        "Carrier: An Post",
        f"Tracking number: {TRACKING}",
        f"Follow your parcel: {tracking_link}",
        "Ann Byrne",
        "1 Quay Street",
        "Ireland",
        "Small Batch",
    ):
        assert text in body, text

    # Shipping again (a second tab, a double click) sends nothing more.
    client.post(
        f"/producer/orders/{order_id}/shipped",
        data={"csrf_token": csrf_from(order_page), "carrier": "an_post", "tracking_number": TRACKING},
    )
    assert len(smtp_server.received()) == 2

    # The order's timeline tells the story: paid, both mails sent, shipped.
    session.commit()
    mails = session.scalars(select(OutboxMessage).where(OutboxMessage.order_id == order_id)).all()
    assert [mail.sent_at is not None for mail in mails] == [True, True]
    timeline = client.get(f"/producer/orders/{order_id}").get_data(as_text=True)
    assert re.findall(r'data-timeline="([a-z_]+)"', timeline) == ["paid", "mail", "shipped", "mail"]
    assert "Paid €178.00 for No. 1, 2 of 240" in timeline
    assert "(sent Thu 2 July 2026, 11:01 IST)" in timeline
