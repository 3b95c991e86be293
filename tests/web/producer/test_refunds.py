"""The producer's refund page: refund some of an order's units through Stripe (the simulator), each retired or
returned to sale, and see at once what came of it; bad input is refused with a message and changes nothing.

Orders are real payments on the simulator; the page sends the refund there once, at once, as the worker would.
Anonymous visitors and customers are refused by tests/web/producer/test_access.py, which walks every route.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.checkout import flows
from storefront.domain.audit import audit
from storefront.models import ActivityEntry, Order, OutboxMessage, Refund, Unit
from storefront.payments import gateway
from tests.domain.test_refunds import add_fault, paid_order
from tests.factories import make_release
from tests.payments import hold_with_checkout, pay
from tests.refund_data import fresh
from tests.web.producer.conftest import csrf_from, csrf_token

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
PRICE = 8900


@pytest.fixture
def release_id(session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=3, on_sale_at=ON_SALE, limit=3, price=PRICE)
    session.commit()
    return release.id


@pytest.fixture
def order_of_two(app, session, clock, stripe_sim, release_id) -> Order:
    """Bob's order of Nos. 1 and 2, paid on the simulator."""
    hold = hold_with_checkout(app, release_id, "bob@example.com", clock(), quantity=2)
    pay(stripe_sim, hold.payment_session_id)
    result = flows.complete_checkout(session, gateway(), gateway().retrieve_session(hold.payment_session_id), clock())
    return session.get(Order, result.order.id)


def refund_path(order_id: int) -> str:
    return f"/producer/orders/{order_id}/refund"


def unit_id(session, release_id: int, number: int) -> int:
    return session.scalar(select(Unit.id).where(Unit.release_id == release_id, Unit.number == number))


def post_refund(client, order_id: int, **fields):
    page = client.get(refund_path(order_id))
    assert page.status_code == 200
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "reason": "damaged", "note": "", **fields}
    return client.post(refund_path(order_id), data=data)


def flashes(client) -> list[tuple[str, str]]:
    with client.session_transaction() as browser_session:
        return list(browser_session.get("_flashes", []))


def count(session, model) -> int:
    session.commit()
    return session.scalar(select(func.count()).select_from(model))


def test_the_page_lists_the_orders_units_with_their_boxes(producer_client, session, order_of_two, release_id):
    page = producer_client.get(refund_path(order_of_two.id))

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f'Refund order <span class="code">{order_of_two.reference}</span>' in text
    for number in (1, 2):
        unit = unit_id(session, release_id, number)
        assert f'name="refund" value="{unit}"' in text
        assert f'name="return_to_sale" value="{unit}"' in text
    amounts = re.search(r"data-amounts='([^']*)'", text).group(1)
    assert json.loads(html.unescape(amounts)) == ["€0.00", "€89.00", "€178.00"]
    assert "<dd data-remaining>€178.00</dd>" in text
    assert "Lost in transit" in text and "Buyer cancelled" in text
    assert 'src="/static/js/refund_form.js?v=' in text
    assert "style=" not in text


def test_refunding_a_unit_returned_to_sale_refunds_it_through_stripe_at_once(
    producer_client, session, clock, order_of_two, release_id
):
    second = unit_id(session, release_id, 2)

    response = post_refund(
        producer_client, order_of_two.id, refund=[str(second)], return_to_sale=[str(second)], note="cork broken"
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/producer/orders/{order_of_two.id}"
    assert flashes(producer_client) == [("success", "Refunded €89.00 for No. 2 of 3. No. 2 of 3 is back on sale.")]
    order = fresh(session, Order, order_of_two.id)
    assert (order.status, [unit.number for unit in order.units]) == ("paid", [1])
    assert session.get(Unit, second).status == "available"
    (refund,) = order.refunds
    assert (refund.status, refund.amount, refund.requested_by, refund.reason) == (
        "succeeded",
        PRICE,
        "ann@distillery.ie",
        "damaged",
    )
    (mail,) = session.scalars(select(OutboxMessage).where(OutboxMessage.subject.startswith("Refund sent"))).all()
    assert (mail.recipient, mail.order_id) == ("bob@example.com", order.id)
    assert "We have refunded €89.00 for No. 2 of 3 on order" in mail.body
    assert session.scalar(select(ActivityEntry.action).order_by(ActivityEntry.id.desc())) == "order.refund"
    assert audit(session, clock()) == []

    # The page now shows No. 2 as back on sale and offers only No. 1.
    text = producer_client.get(refund_path(order.id)).get_data(as_text=True)
    assert 'data-state="returned"' in text and f'value="{second}"' not in text


def test_a_refund_stripe_refuses_leaves_the_order_as_it_was_and_says_why(
    producer_client, session, clock, stripe_sim, order_of_two, release_id
):
    add_fault(stripe_sim, 400, error={"type": "invalid_request_error", "message": "This charge is disputed."})
    first = unit_id(session, release_id, 1)

    response = post_refund(producer_client, order_of_two.id, refund=[str(first)], return_to_sale=[str(first)])

    assert response.status_code == 303
    ((category, message),) = flashes(producer_client)
    assert category == "error"
    assert message.startswith("Stripe refused the refund of €89.00: ")
    assert "This charge is disputed." in message and message.endswith("The order is unchanged.")
    order = fresh(session, Order, order_of_two.id)
    assert (order.status, [unit.number for unit in order.units]) == ("paid", [1, 2])
    (refund,) = order.refunds
    assert refund.status == "failed" and all(line.voided_at is not None for line in refund.lines)
    assert audit(session, clock()) == []
    # The unit can be refunded again once Stripe agrees.
    assert f'value="{first}"' in producer_client.get(refund_path(order.id)).get_data(as_text=True)


def test_when_stripe_does_not_answer_the_shop_retries_and_says_so(
    producer_client, session, clock, stripe_sim, order_of_two, release_id
):
    add_fault(stripe_sim, 503, error={"type": "api_error", "message": "Stripe is having a bad day."})

    response = post_refund(producer_client, order_of_two.id, refund=[str(unit_id(session, release_id, 1))])

    assert response.status_code == 303
    ((category, message),) = flashes(producer_client)
    assert category == "info" and "Stripe did not answer the refund of €89.00" in message and "retry" in message
    order = fresh(session, Order, order_of_two.id)
    (refund,) = order.refunds
    assert (order.status, refund.status, refund.next_attempt_at) == (
        "refunding",
        "pending",
        clock() + timedelta(minutes=1),
    )
    assert audit(session, clock()) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({}, "Tick “refund” for at least one unit.", id="nothing-ticked"),
        pytest.param({"return_to_sale": ["{one}"]}, "only a refunded unit can go back on sale", id="return-only"),
        pytest.param({"refund": ["{one}"], "reason": ""}, "Choose why you are refunding.", id="no-reason"),
        pytest.param({"refund": ["{one}"], "reason": "bored"}, "Not a valid choice", id="unknown-reason"),
        pytest.param(
            {"refund": ["{one}"], "reason": "other"}, "Say in a few words why you are refunding.", id="other-no-note"
        ),
        pytest.param({"refund": ["{three}"]}, "Only units still sold to this order", id="another-orders-unit"),
        pytest.param({"refund": ["abc"]}, "Only units still sold to this order", id="not-a-number"),
        pytest.param({"refund": ["{one}"], "note": "x" * 501}, "Keep the note to 500 characters.", id="long-note"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    producer_client, session, clock, app, stripe_sim, order_of_two, release_id, fields, message
):
    # No. 3 belongs to Cat's order.
    paid_order(app, session, stripe_sim, release_id, clock(), email="cat@example.com")
    ids = {"one": unit_id(session, release_id, 1), "three": unit_id(session, release_id, 3)}
    fields = {
        name: [value.format(**ids) for value in values] if isinstance(values, list) else values
        for name, values in fields.items()
    }

    response = post_refund(producer_client, order_of_two.id, **fields)

    assert response.status_code == 422
    assert message in response.get_data(as_text=True).replace("&#34;", '"').replace("&#39;", "'")
    assert count(session, Refund) == 0
    assert fresh(session, Order, order_of_two.id).status == "paid"


def test_a_refunded_order_cannot_be_refunded_again(producer_client, session, clock, order_of_two, release_id):
    units = [str(unit_id(session, release_id, number)) for number in (1, 2)]
    assert post_refund(producer_client, order_of_two.id, refund=units).status_code == 303
    assert fresh(session, Order, order_of_two.id).status == "refunded"
    flashes(producer_client)

    page = producer_client.get(refund_path(order_of_two.id))
    assert "Nothing is left to refund on this order." in page.get_data(as_text=True)
    response = producer_client.post(
        refund_path(order_of_two.id),
        data={
            "csrf_token": csrf_token(producer_client, "/logout"),
            "refund": units,
            "reason": "damaged",
        },
    )
    assert response.status_code == 422
    assert "Nothing is left to refund on this order." in response.get_data(as_text=True)
    assert count(session, Refund) == 1


def test_an_unknown_order_is_not_found(producer_client, session):
    token = csrf_token(producer_client, "/logout")
    assert producer_client.get(refund_path(999)).status_code == 404
    assert producer_client.post(refund_path(999), data={"csrf_token": token, "reason": "damaged"}).status_code == 404


def test_a_refund_without_its_csrf_token_is_refused(producer_client, session, order_of_two, release_id):
    response = producer_client.post(
        refund_path(order_of_two.id), data={"refund": [str(unit_id(session, release_id, 1))], "reason": "damaged"}
    )

    assert response.status_code == 400
    assert count(session, Refund) == 0


def test_the_dashboard_and_the_release_page_show_sales_after_refunds(
    producer_client, session, order_of_two, release_id
):
    second = str(unit_id(session, release_id, 2))
    assert post_refund(producer_client, order_of_two.id, refund=[second], return_to_sale=[second]).status_code == 303

    dashboard = producer_client.get("/producer/").get_data(as_text=True)
    row = dashboard[dashboard.index(f'data-release-row="{release_id}"') :].split("</tr>")[0]
    assert 'data-sold="1"' in row
    assert 'data-units-refunded="1"' in row and 'data-units-returned="1"' in row
    assert 'data-net-revenue="€89.00"' in row

    page = producer_client.get(f"/producer/releases/{release_id}").get_data(as_text=True)
    for attribute in (
        'data-summary-sold="1"',
        'data-summary-refunded="1"',
        'data-summary-returned="1"',
        'data-summary-net-revenue="€89.00"',
    ):
        assert attribute in page


def test_an_order_id_beyond_any_integer_column_is_not_found(producer_client):
    assert producer_client.get(refund_path(10**20)).status_code == 404
