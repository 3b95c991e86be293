"""The producer's orders: the list (filter, search, pages, bulk packing and shipping) and one order's page.

Every test runs on SQLite and PostgreSQL through the test client, CSRF included. The shop's clock stands at
2026-07-01 09:00 UTC, 10:00 in Dublin (Irish Standard Time, UTC+1). Who may come in at all (anonymous -> sign in,
customer -> 403) is walked for every workspace URL by test_access.py, these included.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from storefront.domain.orders import ORDERS_PAGE_SIZE
from storefront.extensions import db
from storefront.models import (
    ActivityEntry,
    Order,
    OrderEvent,
    OrderStatus,
    OutboxMessage,
    Refund,
    RefundLine,
    RefundStatus,
    Release,
    Unit,
    UnitStatus,
)
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.web.producer.conftest import PRODUCER_EMAIL, csrf_from

ADDRESS = {"line1": "1 Quay Street", "city": "Galway", "postal_code": "H91 XK2C", "country": "IE"}
AN_POST = "RR123456789IE"
START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def place(
    session,
    release: Release,
    numbers: list[int],
    *,
    at: datetime = START,
    email: str = "buyer@example.com",
    name: str = "Buyer",
    status: str = OrderStatus.PAID,
    address: dict | None = None,
) -> Order:
    """An order for these numbers of the release, placed `at`, as a paid checkout leaves it (committed)."""
    with write_transaction(session):
        order = Order(
            release_id=release.id,
            email=email,
            buyer_key=email.lower(),
            quantity=len(numbers),
            unit_amount=release.price_amount,
            amount_total=release.price_amount * len(numbers),
            currency=release.currency,
            status=status,
            created_at=at,
            checkout_session_id=f"cs_test_{email}_{numbers[0]}_{release.id}",
            payment_intent_id=f"pi_test_{numbers[0]}_{release.id}",
            shipping_name=name,
            shipping_address=ADDRESS if address is None else address,
        )
        session.add(order)
        session.flush()
        session.execute(
            sa.update(Unit)
            .where(Unit.release_id == release.id, Unit.number.in_(numbers))
            .values(status=UnitStatus.SOLD, order_id=order.id, sold_at=at)
        )
    return order


@pytest.fixture
def release(session) -> Release:
    batch = make_batch(session)
    batch.title = "Carlow Rye"
    batch.code = "CR-08"
    release = make_release(session, batch=batch, units=240, limit=10)
    session.commit()
    return session.get(Release, release.id)


def page(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def references_on(text: str) -> list[str]:
    return re.findall(r'<tr data-order="(SB-[A-Z0-9]+)"', text)


def fresh(session, order_id: int) -> Order:
    session.expire_all()
    return session.get(Order, order_id)


def mails_about(session, order_id: int) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.order_id == order_id)))


def bulk(client, data: dict, query: str = ""):
    token = csrf_from(page(client, "/producer/orders" + query))
    return client.post("/producer/orders/bulk" + query, data={"csrf_token": token, **data})


def test_the_orders_routes_are_in_the_workspace_and_its_nav(app, producer_client):
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {
        "/producer/orders",
        "/producer/orders/bulk",
        "/producer/orders/<int:order_id>",
        "/producer/orders/<int:order_id>/notes",
        "/producer/orders/<int:order_id>/packed",
        "/producer/orders/<int:order_id>/shipped",
    } <= rules
    assert '<a href="/producer/orders" aria-current="page">Orders</a>' in page(producer_client, "/producer/orders")
    assert '<a href="/producer/orders">Orders</a>' in page(producer_client, "/producer/")


# --- The list -----------------------------------------------------------------------------------------------------


def test_the_list_shows_each_order_newest_first_with_its_buyer_numbers_amount_and_status(
    producer_client, session, release
):
    older = place(session, release, [17, 18], at=START, email="ann@example.ie", name="Ann Byrne")
    newer = place(session, release, [20, 21, 22, 23], at=START + timedelta(hours=1), email="bob@example.ie")
    lone = place(session, release, [5], at=START + timedelta(hours=2), status=OrderStatus.REFUNDED)

    text = page(producer_client, "/producer/orders")

    assert references_on(text) == [lone.reference, newer.reference, older.reference]
    assert "3 orders." in text
    row = text[text.index(f'data-order="{older.reference}"') :].split("</tr>")[0]
    assert f'href="/producer/orders/{older.id}"' in row
    assert "Wed 1 July 2026, 10:00 IST" in row
    assert "ann@example.ie" in row and "Ann Byrne" in row
    assert "No. 17, 18 of 240" in row and "€178.00" in row
    assert 'data-order-status="paid"' in row
    assert f'name="order" value="{older.id}"' in row
    row = text[text.index(f'data-order="{newer.reference}"') :].split("</tr>")[0]
    assert "No. 20–23 of 240" in row and "€356.00" in row
    refunded_row = text[text.index(f'data-order="{lone.reference}"') :].split("</tr>")[0]
    assert 'data-order-status="refunded"' in refunded_row
    assert 'name="order"' not in refunded_row, "a refunded order offers nothing to tick"


def test_the_release_filter_offers_every_release_by_batch_and_title(producer_client, session, release):
    other = make_release(session, units=5)
    session.commit()
    text = page(producer_client, "/producer/orders")
    assert f'<option value="{release.id}">Carlow Rye: {release.title}</option>' in text
    assert f'<option value="{other.id}">{other.batch.title}: {other.title}</option>' in text


def test_downloads_carry_the_current_filter(producer_client, session, release):
    place(session, release, [1])
    text = page(producer_client, f"/producer/orders?release={release.id}&status=paid&q=ann")
    for marker, path in (
        ("data-csv-link", "/producer/orders.csv"),
        ("data-packing-sheet-link", "/producer/orders/packing-sheet"),
    ):
        href = re.search(rf'<a href="([^"]+)" {marker}>', text).group(1).replace("&amp;", "&")
        assert urlsplit(href).path == path
        assert parse_qs(urlsplit(href).query) == {"release": [str(release.id)], "status": ["paid"], "q": ["ann"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=17", ["ann"]),
        ("q=No.+17", ["ann"]),
        ("q=%23240", ["cat"]),
        ("q=BOB%40example", ["bob"]),
        ("q=Byrne", ["ann"]),
        ("status=shipped", ["cat"]),
        ("status=packed", ["bob"]),
        ("status=paid", ["ann"]),
        ("status=refunded", ["dan"]),
        ("placed_from=2026-07-02", ["dan", "cat"]),
        ("placed_to=2026-07-01", ["bob", "ann"]),
        ("placed_from=2026-07-02&placed_to=2026-07-02", ["cat"]),
    ],
)
def test_the_filter_finds_orders_by_number_email_name_status_and_shop_day(
    producer_client, session, release, query, expected
):
    orders = {
        "ann": place(session, release, [17, 18], at=START, email="ann@example.ie", name="Ann Byrne"),
        "bob": place(session, release, [3], at=START + timedelta(hours=1), email="bob@example.ie"),
        # 23:30 UTC on 1 July is 00:30 on 2 July in Dublin: a day on the shop's clock.
        "cat": place(session, release, [240], at=datetime(2026, 7, 1, 23, 30, tzinfo=UTC), email="cat@example.ie"),
        "dan": place(session, release, [4], at=datetime(2026, 7, 3, 8, 0, tzinfo=UTC), status=OrderStatus.REFUNDED),
    }
    with write_transaction(session):
        session.get(Order, orders["bob"].id).fulfilment_status = "packed"
        session.get(Order, orders["cat"].id).fulfilment_status = "shipped"
    names = {order.reference: name for name, order in orders.items()}

    text = page(producer_client, f"/producer/orders?{query}")

    assert [names[reference] for reference in references_on(text)] == expected


def test_search_by_reference(producer_client, session, release):
    ann = place(session, release, [1])
    place(session, release, [2])
    assert references_on(page(producer_client, f"/producer/orders?q={ann.reference.lower()}")) == [ann.reference]


def test_the_release_filter_keeps_to_its_release(producer_client, session, release):
    other = make_release(session, units=5)
    session.commit()
    mine = place(session, release, [1])
    place(session, session.get(Release, other.id), [1])
    assert references_on(page(producer_client, f"/producer/orders?release={release.id}")) == [mine.reference]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("release=abc", "Release: "),
        ("status=lost", "Status: Not a valid choice."),
        ("placed_from=yesterday", "Placed from: Not a valid date value."),
        ("placed_from=2026-07-05&placed_to=2026-07-01", "the end date is before the start date"),
        ("placed_to=2026-13-45&release=1&release=2", "Placed to (inclusive): Not a valid date value."),
        ("q=" + "x" * 400, "Email, name, reference or number: "),
        ("before=abc", "That page link is broken"),
        ("after=-1", "That page link is broken"),
        ("before=99999999", "That page of the list no longer exists"),
        ("after=99999999", "That page of the list no longer exists"),
    ],
)
def test_garbage_in_the_query_string_shows_the_list_with_a_message(producer_client, session, release, query, problem):
    one = place(session, release, [1])
    text = page(producer_client, f"/producer/orders?{query}")
    problems = text[text.index("data-filter-problems") :].split("</div>")[0]
    assert problem in problems
    assert "data-order-count" in text
    if "placed_from" not in query and "q=" not in query:
        assert references_on(text) == [one.reference]


@pytest.mark.parametrize("query", ["release=99999", "q=%ff%fe", "q=%25%5F%5C", "status=&release=&q="])
def test_odd_but_harmless_queries_show_the_list(producer_client, session, release, query):
    place(session, release, [1])
    text = page(producer_client, f"/producer/orders?{query}")
    assert "data-order-count" in text and "data-filter-problems" not in text


def test_pages_of_fifty_newest_first_neither_skip_nor_repeat_when_orders_arrive(producer_client, session, release):
    placed = [
        place(session, release, [number], at=START + timedelta(minutes=number // 2), email=f"b{number}@example.ie")
        for number in range(1, 121)
    ]
    newest_first = [order.reference for order in sorted(placed, key=lambda o: (o.created_at, o.id), reverse=True)]

    first = page(producer_client, "/producer/orders")
    assert references_on(first) == newest_first[:ORDERS_PAGE_SIZE]
    assert "120 orders." in first and "Newer orders" not in first
    older = re.search(r'href="([^"]+)">Older orders', first).group(1).replace("&amp;", "&")

    # A new order arrives while the producer reads: the next page still starts where the first ended.
    place(session, release, [200], at=START + timedelta(days=1))
    second = page(producer_client, older)
    assert references_on(second) == newest_first[ORDERS_PAGE_SIZE : 2 * ORDERS_PAGE_SIZE]
    third = page(producer_client, re.search(r'href="([^"]+)">Older orders', second).group(1).replace("&amp;", "&"))
    assert references_on(third) == newest_first[2 * ORDERS_PAGE_SIZE :]
    assert "Older orders" not in third

    back = page(producer_client, re.search(r'href="([^"]+)">Newer orders', third).group(1).replace("&amp;", "&"))
    assert references_on(back) == newest_first[ORDERS_PAGE_SIZE : 2 * ORDERS_PAGE_SIZE]


def test_pages_keep_the_filter(producer_client, session, release):
    for number in range(1, 56):
        place(session, release, [number], at=START + timedelta(minutes=number), email=f"match{number}@example.ie")
    place(session, release, [100], email="other@example.ie")
    first = page(producer_client, "/producer/orders?q=match")
    older = re.search(r'href="([^"]+)">Older orders', first).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(older).query)["q"] == ["match"]
    assert len(references_on(page(producer_client, older))) == 5


class StatementCounter:
    """Count the SQL statements the app's engine runs while the block runs."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def __enter__(self) -> StatementCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self.record)

    def record(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(statement)


def test_a_page_of_fifty_orders_costs_as_many_queries_as_a_page_of_two(app, producer_client, session, release):
    other = make_release(session, units=100)
    session.commit()
    other = session.get(Release, other.id)
    for number in (1, 2):
        place(session, release if number == 1 else other, [number, number + 50])
    page(producer_client, "/producer/orders")  # a first visit warms caches (the signed-in user, the nav)
    with StatementCounter(db.engine) as few:
        assert len(references_on(page(producer_client, "/producer/orders"))) == 2

    for number in range(3, 51):
        place(session, release if number % 2 else other, [number, number + 50], email=f"b{number}@example.ie")
    with StatementCounter(db.engine) as many:
        assert len(references_on(page(producer_client, "/producer/orders"))) == 50

    assert len(many.statements) == len(few.statements), many.statements


def test_no_orders_yet(producer_client):
    assert "No orders yet." in page(producer_client, "/producer/orders")


# --- Bulk actions ---------------------------------------------------------------------------------------------------


def test_bulk_packing_marks_the_ticked_orders_and_returns_to_the_same_list(producer_client, session, release):
    one, two, left = (place(session, release, [n], email=f"b{n}@example.ie") for n in (1, 2, 3))

    response = bulk(producer_client, {"action": "packed", "order": [one.id, two.id]}, "?status=paid")

    assert response.status_code == 303
    assert response.headers["Location"] == "/producer/orders?status=paid"
    assert [fresh(session, order.id).fulfilment_status for order in (one, two, left)] == [
        "packed",
        "packed",
        "unfulfilled",
    ]
    assert "Marked 2 orders packed." in page(producer_client, "/producer/orders")
    assert mails_about(session, one.id) == []


def test_bulk_shipping_takes_each_rows_tracking_number_and_mails_each_buyer(producer_client, session, release):
    one, two = (place(session, release, [n], email=f"b{n}@example.ie") for n in (1, 2))

    response = bulk(
        producer_client,
        {
            "action": "shipped",
            "carrier": "an_post",
            "order": [one.id, two.id],
            f"tracking-{one.id}": "RR 000 000 001 IE",
            f"tracking-{two.id}": "RR000000002IE",
        },
    )

    assert response.status_code == 303
    assert (fresh(session, one.id).fulfilment_status, fresh(session, one.id).tracking_number) == (
        "shipped",
        "RR000000001IE",
    )
    assert fresh(session, two.id).tracking_number == "RR000000002IE"
    (mail,) = mails_about(session, one.id)
    assert mail.recipient == "b1@example.ie" and "RR000000001IE" in mail.body
    assert len(mails_about(session, two.id)) == 1
    assert "Marked 2 orders shipped." in page(producer_client, "/producer/orders")


def test_bulk_hand_delivery_needs_no_tracking(producer_client, session, release):
    one = place(session, release, [1])
    response = bulk(producer_client, {"action": "shipped", "carrier": "hand", "order": [one.id]})
    assert response.status_code == 303
    assert (fresh(session, one.id).carrier, fresh(session, one.id).tracking_number) == ("hand", "")


def test_bulk_shipping_without_a_tracking_number_changes_nothing_and_keeps_what_was_typed(
    producer_client, session, release
):
    one, two = (place(session, release, [n], email=f"b{n}@example.ie") for n in (1, 2))

    response = bulk(
        producer_client,
        {"action": "shipped", "carrier": "dhl", "order": [one.id, two.id], f"tracking-{one.id}": "JD014600006281"},
    )

    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Nothing was changed" in text
    assert f"DHL parcels have tracking numbers: type one in the row of {two.reference}" in text
    assert 'value="JD014600006281"' in text
    assert f'value="{one.id}" id="order-{one.id}" checked' in text
    assert [fresh(session, order.id).fulfilment_status for order in (one, two)] == ["unfulfilled", "unfulfilled"]
    assert mails_about(session, one.id) == []


def test_bulk_shipping_with_a_malformed_tracking_number_marks_its_row(producer_client, session, release):
    one = place(session, release, [1])
    response = bulk(
        producer_client, {"action": "shipped", "carrier": "ups", "order": [one.id], f"tracking-{one.id}": "<b>1Z</b>"}
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert f'id="tracking-{one.id}-error"' in text and "letters, digits or dashes" in text
    assert "<b>1Z</b>" not in text
    assert fresh(session, one.id).fulfilment_status == "unfulfilled"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "packed"}, "Tick at least one order first."),
        ({"action": "shipped", "carrier": "pigeon"}, "Choose a carrier from the list"),
        ({"action": "shipped", "carrier": "other"}, "Choose a carrier from the list"),
        ({"action": "unpack"}, "Action: Not a valid choice."),
    ],
)
def test_bulk_refusals_say_why_and_change_nothing(producer_client, session, release, data, message):
    one = place(session, release, [1])
    if data["action"] != "packed":
        data = {**data, "order": [one.id], f"tracking-{one.id}": AN_POST}
    response = bulk(producer_client, data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert fresh(session, one.id).fulfilment_status == "unfulfilled"


def test_bulk_packing_a_refunded_order_refuses_the_lot(producer_client, session, release):
    fine = place(session, release, [1])
    refunded = place(session, release, [2], status=OrderStatus.REFUNDED)
    response = bulk(producer_client, {"action": "packed", "order": [fine.id, refunded.id]})
    assert response.status_code == 422
    assert f"order {refunded.reference} is refunded" in response.get_data(as_text=True)
    assert fresh(session, fine.id).fulfilment_status == "unfulfilled"


@pytest.mark.parametrize("order_value", ["abc", "99999", "1 OR 1=1", "-1"])
def test_bulk_with_a_tampered_order_id_is_not_found(producer_client, session, release, order_value):
    one = place(session, release, [1])
    response = bulk(producer_client, {"action": "packed", "order": [one.id, order_value]})
    assert response.status_code == 404
    assert fresh(session, one.id).fulfilment_status == "unfulfilled"


def test_posts_without_a_csrf_token_are_refused(producer_client, session, release):
    one = place(session, release, [1])
    for path, data in [
        ("/producer/orders/bulk", {"action": "packed", "order": [one.id]}),
        (f"/producer/orders/{one.id}/packed", {}),
        (f"/producer/orders/{one.id}/shipped", {"carrier": "an_post", "tracking_number": AN_POST}),
        (f"/producer/orders/{one.id}/notes", {"text": "hello"}),
    ]:
        assert producer_client.post(path, data=data).status_code == 400, path
    assert fresh(session, one.id).fulfilment_status == "unfulfilled"
    assert session.scalar(select(func.count()).select_from(OrderEvent)) == 0


# --- One order ------------------------------------------------------------------------------------------------------


def test_an_unknown_order_is_not_found(producer_client, session, release):
    one = place(session, release, [1])
    token = csrf_from(page(producer_client, f"/producer/orders/{one.id}"))
    assert producer_client.get(f"/producer/orders/{one.id + 100}").status_code == 404
    for action in ("packed", "shipped", "notes"):
        response = producer_client.post(f"/producer/orders/{one.id + 100}/{action}", data={"csrf_token": token})
        assert response.status_code == 404


def test_the_order_page_shows_buyer_address_numbers_money_and_payment(producer_client, session, release):
    order = place(session, release, [17, 18], email="ann@example.ie", name="Ann Byrne")

    text = page(producer_client, f"/producer/orders/{order.id}")

    assert f'Order <span class="code">{order.reference}</span>' in text
    assert 'href="mailto:ann@example.ie"' in text
    assert "Ann Byrne<br>1 Quay Street<br>Galway<br>H91 XK2C<br>Ireland" in text
    assert "<dd data-numbers>No. 17, 18 of 240</dd>" in text
    assert "€89.00" in text and "<dd data-amount>€178.00</dd>" in text
    assert order.checkout_session_id in text and order.payment_intent_id in text
    assert "data-stripe-link" not in text, "the simulator has no dashboard to link to"
    assert "Carlow Rye" in text and "CR-08" in text


@pytest.mark.parametrize(
    ("key", "link"),
    [
        ("sk_live_abc", "https://dashboard.stripe.com/payments/"),
        ("sk_test_abc", "https://dashboard.stripe.com/test/payments/"),
    ],
)
def test_the_payment_links_to_stripes_dashboard_when_real_stripe_is_used(
    app, producer_client, session, release, key, link
):
    order = place(session, release, [1])
    app.config.update(STRIPE_API_BASE="", STRIPE_SECRET_KEY=key)
    text = page(producer_client, f"/producer/orders/{order.id}")
    assert f'href="{link}{order.payment_intent_id}"' in text


def test_the_order_page_shows_why_the_buyer_got_other_numbers_and_its_refunds(producer_client, session, release, clock):
    order = place(session, release, [5, 6, 7])
    with write_transaction(session):
        order = session.get(Order, order.id)
        order.note = "Paid after its hold had ended; No. 5, 6, 7 assigned instead."
        refund = Refund(
            order_id=order.id,
            payment_intent_id=order.payment_intent_id,
            amount=8900,
            currency="EUR",
            reason="damaged",
            status=RefundStatus.SUCCEEDED,
            retry_until=clock() + timedelta(days=3),
            requested_by=PRODUCER_EMAIL,
        )
        session.add(refund)
        session.flush()
        unit = session.scalar(select(Unit).where(Unit.order_id == order.id, Unit.number == 6))
        session.add(
            RefundLine(
                refund_id=refund.id,
                order_id=order.id,
                unit_id=unit.id,
                release_id=release.id,
                number=6,
                return_to_sale=False,
            )
        )

    text = page(producer_client, f"/producer/orders/{order.id}")

    assert "assigned instead" in text
    assert "€89.00</strong>, refunded (damaged), asked for by ann@distillery.ie" in text
    assert "No. 6 of 240: retired (stays with the order)" in text
    assert "<dd data-refunded>€89.00</dd>" in text
    assert "<dd data-numbers-to-ship>No. 5, 7 of 240</dd>" in text


def test_the_refund_link_appears_once_the_refund_page_exists(app, producer_client, session, release):
    order = place(session, release, [1])
    text = page(producer_client, f"/producer/orders/{order.id}")
    if "producer.new_refund" in app.view_functions:
        assert f'href="/producer/orders/{order.id}/refund" data-refund-link' in text
    else:
        assert "data-refund-link" not in text


def test_marking_packed_from_the_order_page(producer_client, session, release, clock):
    order = place(session, release, [1])
    token = csrf_from(page(producer_client, f"/producer/orders/{order.id}"))

    response = producer_client.post(f"/producer/orders/{order.id}/packed", data={"csrf_token": token})

    assert response.status_code == 303 and response.headers["Location"] == f"/producer/orders/{order.id}"
    assert fresh(session, order.id).packed_at == clock()
    text = page(producer_client, f"/producer/orders/{order.id}")
    assert "Marked packed." in text and 'data-timeline="packed"' in text and "Mark packed</button>" not in text
    entry = session.scalar(select(ActivityEntry).where(ActivityEntry.action == "order.packed"))
    assert (entry.actor_email, entry.subject_id) == (PRODUCER_EMAIL, order.id)
    assert f'href="/producer/orders/{order.id}"' in page(producer_client, "/producer/activity")


def test_a_refunded_order_offers_no_packing_and_refuses_a_forged_one(producer_client, session, release):
    order = place(session, release, [1], status=OrderStatus.REFUNDING)
    text = " ".join(page(producer_client, f"/producer/orders/{order.id}").split())
    assert "This order is being refunded, so it is neither packed nor shipped." in text
    assert "Mark packed</button>" not in text
    token = csrf_from(page(producer_client, "/producer/orders"))

    packed = producer_client.post(f"/producer/orders/{order.id}/packed", data={"csrf_token": token})
    shipped = producer_client.post(
        f"/producer/orders/{order.id}/shipped",
        data={"csrf_token": token, "carrier": "an_post", "tracking_number": AN_POST},
    )

    for response in (packed, shipped):
        assert response.status_code == 422
        assert f"order {order.reference} is being refunded" in response.get_data(as_text=True)
    assert fresh(session, order.id).fulfilment_status == "unfulfilled"
    assert mails_about(session, order.id) == []


def ship_from_page(client, order_id: int, **fields):
    token = csrf_from(page(client, f"/producer/orders/{order_id}"))
    return client.post(f"/producer/orders/{order_id}/shipped", data={"csrf_token": token, **fields})


def test_shipping_from_the_order_page_mails_the_buyer_once(producer_client, session, release):
    order = place(session, release, [17], email="ann@example.ie")

    response = ship_from_page(producer_client, order.id, carrier="an_post", tracking_number=f" {AN_POST} ")
    assert response.status_code == 303
    text = page(producer_client, f"/producer/orders/{order.id}")
    assert "Marked shipped; the buyer is told it is on its way." in text
    assert "<dd data-carrier>An Post</dd>" in text and f"data-tracking-number>{AN_POST}<" in text
    assert f'href="https://www.anpost.com/Post-Parcels/Track/History?item={AN_POST}"' in text
    assert "Correct the tracking" in text
    assert 'data-timeline="shipped"' in text and 'data-timeline="mail"' in text
    assert f"Your No. 17 of 240 is on its way (order {order.reference})" in text

    again = ship_from_page(producer_client, order.id, carrier="an_post", tracking_number=AN_POST)
    assert again.status_code == 303
    assert "Nothing changed: it was shipped with these details already." in page(
        producer_client, f"/producer/orders/{order.id}"
    )
    assert len(mails_about(session, order.id)) == 1


def test_correcting_the_tracking_from_the_order_page_mails_once_more(producer_client, session, release):
    order = place(session, release, [17])
    ship_from_page(producer_client, order.id, carrier="an_post", tracking_number=AN_POST)
    response = ship_from_page(producer_client, order.id, carrier="gls", tracking_number="ZX0123456789")
    assert response.status_code == 303
    assert "Tracking corrected" in page(producer_client, f"/producer/orders/{order.id}")
    first, corrected = mails_about(session, order.id)
    assert corrected.subject.startswith("Corrected tracking:")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"carrier": "an_post", "tracking_number": ""}, "An Post parcels have a tracking number: type it in."),
        ({"carrier": "", "tracking_number": AN_POST}, "Choose a carrier from the list."),
        ({"carrier": "pigeon", "tracking_number": AN_POST}, "Choose a carrier from the list."),
        ({"carrier": "dpd", "tracking_number": "no spaces allowed!"}, "letters, digits or dashes"),
        ({"carrier": "other", "tracking_number": "X1", "tracking_url": "http://track.example/X1"}, "https://"),
        ({"carrier": "other", "tracking_number": "X1", "tracking_url": ""}, "tracking page for this parcel"),
    ],
)
def test_shipping_with_bad_tracking_shows_the_form_again_and_changes_nothing(
    producer_client, session, release, fields, message
):
    order = place(session, release, [1])
    response = ship_from_page(producer_client, order.id, **fields)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert message in text and 'aria-invalid="true"' in text
    assert fresh(session, order.id).fulfilment_status == "unfulfilled"
    assert mails_about(session, order.id) == []


def test_shipping_with_another_carrier_uses_the_typed_https_page(producer_client, session, release):
    order = place(session, release, [1])
    response = ship_from_page(
        producer_client, order.id, carrier="other", tracking_number="", tracking_url="https://track.example/p/9"
    )
    assert response.status_code == 303
    assert fresh(session, order.id).tracking_url == "https://track.example/p/9"
    (mail,) = mails_about(session, order.id)
    assert "Follow your parcel: https://track.example/p/9" in mail.body


def test_a_note_is_added_to_the_timeline_with_its_author(producer_client, session, release):
    order = place(session, release, [1])
    token = csrf_from(page(producer_client, f"/producer/orders/{order.id}"))

    response = producer_client.post(
        f"/producer/orders/{order.id}/notes", data={"csrf_token": token, "text": "  Rang <Ann>: leave at no. 3  "}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/producer/orders/{order.id}#timeline"
    text = page(producer_client, f"/producer/orders/{order.id}")
    assert 'Rang &lt;Ann&gt;: leave at no. 3 <span class="order-timeline__who">(ann@distillery.ie)</span>' in text


@pytest.mark.parametrize("note", ["", "   ", "x" * 2001])
def test_an_empty_or_overlong_note_is_refused(producer_client, session, release, note):
    order = place(session, release, [1])
    token = csrf_from(page(producer_client, f"/producer/orders/{order.id}"))
    response = producer_client.post(f"/producer/orders/{order.id}/notes", data={"csrf_token": token, "text": note})
    assert response.status_code == 422
    assert 'id="text-error"' in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(OrderEvent)) == 0


def test_the_timeline_merges_events_and_mails_in_time_order(producer_client, session, release, clock):
    order = place(session, release, [1])
    token = csrf_from(page(producer_client, f"/producer/orders/{order.id}"))
    producer_client.post(f"/producer/orders/{order.id}/notes", data={"csrf_token": token, "text": "First"})
    clock.advance(minutes=5)
    ship_from_page(producer_client, order.id, carrier="hand")
    clock.advance(minutes=5)
    producer_client.post(f"/producer/orders/{order.id}/notes", data={"csrf_token": token, "text": "Last"})

    text = page(producer_client, f"/producer/orders/{order.id}")

    kinds = re.findall(r'data-timeline="([a-z_]+)"', text)
    assert kinds == ["note", "shipped", "mail", "note"]
    assert "(sent Wed 1 July 2026, 10:05 IST)" in text or "(waiting to send)" in text
