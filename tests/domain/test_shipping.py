"""Packing and shipping orders: carriers and tracking, guards, one mail per shipment, bulk, and two tabs at once.

The mail is queued the way the workspace queues it (storefront.producer.order_mail, in the same transaction as the
domain's change), so "no second mail" is counted in the outbox itself.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain.activity import Actor
from storefront.domain.orders import OrderNotFound, add_order_note, numbers_text
from storefront.domain.shipping import (
    CARRIERS,
    FulfilmentRefused,
    InvalidTracking,
    Tracking,
    check_tracking,
    mark_packed,
    mark_shipped,
    ship_orders,
)
from storefront.extensions import db
from storefront.models import (
    ActivityEntry,
    FulfilmentStatus,
    Order,
    OrderEvent,
    OrderStatus,
    OutboxMessage,
    Refund,
    RefundLine,
    RefundStatus,
    Release,
    Unit,
)
from storefront.producer.order_mail import queue_shipping_mails
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.integration.helpers import run_concurrently, unexpected
from tests.sales_data import sell_units

PRODUCER = Actor(id=None, email="ann@distillery.ie")
ADDRESS = {"line1": "1 Quay Street", "city": "Galway", "postal_code": "H91 XK2C", "country": "IE"}
AN_POST_NUMBER = "RR123456789IE"


def sell(session, clock, *, orders: int = 1, quantity: int = 1, units: int = 240) -> list[int]:
    """Committed orders of one release, each with a shipping name and address; returns their ids."""
    release = make_release(session, units=units)
    with write_transaction(session):
        sold = sell_units(session, session.get(Release, release.id), [clock()] * orders, quantity=quantity)
        for index, order in enumerate(sold):
            order.email = f"buyer{index}@example.com"
            order.shipping_name = f"Buyer {index}"
            order.shipping_address = ADDRESS
        return [order.id for order in sold]


def ship(session, order_ids, clock, carrier="an_post", number=AN_POST_NUMBER, url=""):
    """Ship as the workspace does: the domain's change and the buyers' mails in one transaction."""
    with write_transaction(session):
        notices = mark_shipped(session, order_ids, carrier, number, url, clock(), PRODUCER)
        queue_shipping_mails(session, notices)
    return notices


def pack(session, order_ids, clock):
    with write_transaction(session):
        return [order.id for order in mark_packed(session, order_ids, clock(), PRODUCER)]


def mails(session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def events(session, order_id: int) -> list[tuple[str, str, str]]:
    rows = session.execute(
        select(OrderEvent.kind, OrderEvent.summary, OrderEvent.actor_email)
        .where(OrderEvent.order_id == order_id)
        .order_by(OrderEvent.id)
    )
    return [tuple(row) for row in rows]


def set_status(session, order_id: int, status: str) -> None:
    with write_transaction(session):
        session.get(Order, order_id).status = status


def refund_units(session, order_id: int, numbers: list[int], clock) -> None:
    """A succeeded refund of some of the order's units, retired (they stay with the order): it is paid again."""
    with write_transaction(session):
        order = session.get(Order, order_id)
        refund = Refund(
            order_id=order.id,
            payment_intent_id="pi_test_partial",
            amount=order.unit_amount * len(numbers),
            currency=order.currency,
            reason="broken",
            status=RefundStatus.SUCCEEDED,
            retry_until=clock() + timedelta(days=3),
            created_at=clock(),
            updated_at=clock(),
        )
        session.add(refund)
        session.flush()
        for unit in session.scalars(select(Unit).where(Unit.order_id == order.id, Unit.number.in_(numbers))):
            session.add(
                RefundLine(
                    refund_id=refund.id,
                    order_id=order.id,
                    unit_id=unit.id,
                    release_id=unit.release_id,
                    number=unit.number,
                )
            )


# --- Carriers and tracking ------------------------------------------------------------------------------------


def test_a_tracking_number_is_tidied_and_its_page_built_from_the_carrier():
    tracking = check_tracking("an_post", "  RR 1234 5678 9IE ")
    assert tracking == Tracking(
        "an_post", AN_POST_NUMBER, f"https://www.anpost.com/Post-Parcels/Track/History?item={AN_POST_NUMBER}"
    )
    assert tracking.carrier_name == "An Post"
    assert check_tracking("ups", "1Z999AA10123456784").url == "https://www.ups.com/track?tracknum=1Z999AA10123456784"


def test_every_carrier_but_hand_delivery_needs_tracking_and_every_template_is_https():
    for carrier in CARRIERS:
        assert carrier.needs_tracking == (carrier.code != "hand")
        assert carrier.tracking_url_template == "" or carrier.tracking_url_template.startswith("https://")
        assert (carrier.tracking_url_template == "") == (carrier.code in {"other", "hand"})


@pytest.mark.parametrize(
    ("carrier", "number", "url", "field"),
    [
        ("", AN_POST_NUMBER, "", "carrier"),
        ("pigeon", AN_POST_NUMBER, "", "carrier"),
        ("an_post", "", "", "tracking_number"),
        ("an_post", "   ", "", "tracking_number"),
        ("dhl", "12", "", "tracking_number"),
        ("dhl", "<script>", "", "tracking_number"),
        ("dhl", "x" * 41, "", "tracking_number"),
        ("dhl", "12345/678", "", "tracking_number"),
        ("other", "ABC123", "", "tracking_url"),
        ("other", "ABC123", "http://track.example/ABC123", "tracking_url"),
        ("other", "ABC123", "javascript:alert(1)", "tracking_url"),
        ("other", "ABC123", "https://user:pw@track.example/ABC123", "tracking_url"),
        ("other", "ABC123", "https://track.example/A BC", "tracking_url"),
        ("other", "ABC123", "https:///nohost", "tracking_url"),
    ],
)
def test_bad_tracking_is_refused_naming_the_field(carrier, number, url, field):
    with pytest.raises(InvalidTracking) as refusal:
        check_tracking(carrier, number, url)
    assert field in refusal.value.problems
    assert refusal.value.message


def test_other_takes_a_typed_https_page_and_hand_delivery_keeps_no_tracking():
    assert check_tracking("other", "", " https://track.example/p/1 ") == Tracking(
        "other", "", "https://track.example/p/1"
    )
    assert check_tracking("hand", "anything at all", "https://x.example") == Tracking("hand")


def test_numbers_are_written_with_runs_folded():
    assert numbers_text([17], 240) == "No. 17 of 240"
    assert numbers_text([18, 17], 240) == "No. 17, 18 of 240"
    assert numbers_text([17, 18, 19, 20], 240) == "No. 17–20 of 240"
    assert numbers_text([3, 17, 18, 19, 30, 31], 240) == "No. 3, 17–19, 30, 31 of 240"
    assert numbers_text([], 240) == "no numbers"


# --- Packing --------------------------------------------------------------------------------------------------


def test_packing_marks_the_orders_and_writes_the_timeline_and_the_activity_log(session, clock):
    first, second = sell(session, clock, orders=2)

    assert pack(session, [first, second], clock) == [first, second]

    for order_id in (first, second):
        order = session.get(Order, order_id)
        assert (order.fulfilment_status, order.packed_at) == (FulfilmentStatus.PACKED, clock())
        assert events(session, order_id)[-1][0::2] == ("packed", PRODUCER.email)
    entry = session.scalar(select(ActivityEntry).order_by(ActivityEntry.id.desc()))
    assert (entry.action, entry.subject_type, entry.subject_id) == ("order.packed", "order", None)
    assert entry.summary.startswith("Packed 2 orders: SB-")
    assert mails(session) == []


def test_packing_again_or_packing_a_shipped_order_changes_nothing(session, clock):
    packed, shipped = sell(session, clock, orders=2)
    pack(session, [packed], clock)
    ship(session, [shipped], clock)
    before = events(session, packed) + events(session, shipped)

    clock.advance(minutes=5)
    assert pack(session, [packed, shipped], clock) == []

    assert session.get(Order, packed).packed_at == clock() - timedelta(minutes=5)
    assert session.get(Order, shipped).fulfilment_status == FulfilmentStatus.SHIPPED
    assert events(session, packed) + events(session, shipped) == before


@pytest.mark.parametrize("status", [OrderStatus.REFUNDING, OrderStatus.REFUNDED])
def test_an_order_being_refunded_or_refunded_is_neither_packed_nor_shipped_and_refuses_the_lot(session, clock, status):
    fine, refunded = sell(session, clock, orders=2)
    set_status(session, refunded, status)
    reference = session.get(Order, refunded).reference

    with pytest.raises(FulfilmentRefused, match=reference):
        pack(session, [fine, refunded], clock)
    with pytest.raises(FulfilmentRefused, match="neither packed nor shipped"):
        ship(session, [fine, refunded], clock)

    session.expire_all()
    for order_id in (fine, refunded):
        assert session.get(Order, order_id).fulfilment_status == FulfilmentStatus.UNFULFILLED
        assert events(session, order_id) == []
    assert mails(session) == []


def test_an_unknown_order_changes_nothing(session, clock):
    (order_id,) = sell(session, clock)
    with pytest.raises(OrderNotFound):
        pack(session, [order_id, order_id + 1000], clock)
    with pytest.raises(OrderNotFound):
        ship(session, [order_id + 1000], clock)
    session.expire_all()
    assert session.get(Order, order_id).fulfilment_status == FulfilmentStatus.UNFULFILLED


def test_an_empty_selection_is_refused(session, clock):
    with pytest.raises(FulfilmentRefused, match="at least one"):
        pack(session, [], clock)


# --- Shipping -------------------------------------------------------------------------------------------------


def test_shipping_records_the_tracking_and_mails_the_buyer_once(session, clock):
    (order_id,) = sell(session, clock, quantity=2)
    clock.advance(hours=2)

    (notice,) = ship(session, [order_id], clock, number="rr 123 456 789 ie")

    order = session.get(Order, order_id)
    assert (order.fulfilment_status, order.shipped_at, order.carrier) == ("shipped", clock(), "an_post")
    assert order.tracking_number == "rr123456789ie"
    assert order.tracking_url.endswith("item=rr123456789ie")
    assert notice.numbers == (1, 2) and not notice.corrected
    assert events(session, order_id)[-1] == (
        "shipped",
        "Shipped No. 1, 2 of 240 with An Post, rr123456789ie",
        PRODUCER.email,
    )
    (mail,) = mails(session)
    assert (mail.recipient, mail.order_id, mail.created_at) == ("buyer0@example.com", order_id, clock())
    assert mail.subject == f"Your No. 1, 2 of 240 are on their way (order {order.reference})"
    for text in (
        "No. 1 of 240",
        "No. 2 of 240",
        "Carrier: An Post",
        "Tracking number: rr123456789ie",
        f"Follow your parcel: {order.tracking_url}",
        "Buyer 0",
        "1 Quay Street",
        "Galway",
        "H91 XK2C",
        "Ireland",
        "Small Batch",
    ):
        assert text in mail.body, text


def test_shipping_again_with_the_same_details_does_not_mail_twice(session, clock):
    (order_id,) = sell(session, clock)
    ship(session, [order_id], clock)
    clock.advance(minutes=1)

    assert ship(session, [order_id], clock, number=" RR123456789IE ") == []

    assert len(mails(session)) == 1
    assert [kind for kind, _, _ in events(session, order_id)] == ["shipped"]
    assert session.get(Order, order_id).shipped_at == clock() - timedelta(minutes=1)


def test_correcting_the_tracking_tells_the_buyer_once_more(session, clock):
    (order_id,) = sell(session, clock)
    ship(session, [order_id], clock)
    shipped_at = clock()
    clock.advance(hours=1)

    (notice,) = ship(session, [order_id], clock, carrier="dpd", number="01234567890123")
    assert notice.corrected
    assert ship(session, [order_id], clock, carrier="dpd", number="01234567890123") == []

    order = session.get(Order, order_id)
    assert (order.carrier, order.tracking_number, order.shipped_at) == ("dpd", "01234567890123", shipped_at)
    first, corrected = mails(session)
    assert corrected.subject.startswith("Corrected tracking: your No. 1 of 240 is on its way")
    assert "Carrier: DPD" in corrected.body and "01234567890123" in corrected.body
    assert events(session, order_id)[-1][:2] == (
        "shipping_corrected",
        f"Tracking corrected to DPD, 01234567890123 (was An Post, {AN_POST_NUMBER})",
    )


def test_a_packed_order_ships_and_hand_delivery_mails_without_tracking(session, clock):
    (order_id,) = sell(session, clock)
    pack(session, [order_id], clock)

    ship(session, [order_id], clock, carrier="hand", number="")

    order = session.get(Order, order_id)
    assert (order.fulfilment_status, order.carrier, order.tracking_number, order.tracking_url) == (
        "shipped",
        "hand",
        "",
        "",
    )
    (mail,) = mails(session)
    assert "Hand delivery or collection" in mail.body and "Tracking number" not in mail.body


def test_an_other_carrier_mails_the_typed_tracking_page(session, clock):
    (order_id,) = sell(session, clock)
    ship(session, [order_id], clock, carrier="other", number="CX42", url="https://track.example/CX42")
    (mail,) = mails(session)
    assert "Carrier: Other carrier" in mail.body and "Follow your parcel: https://track.example/CX42" in mail.body


def test_bulk_shipping_with_one_tracking_each_mails_each_buyer_once(session, clock):
    order_ids = sell(session, clock, orders=3)
    ship(session, [order_ids[0]], clock)

    with write_transaction(session):
        shipments = {
            order_id: check_tracking("an_post", f"RR00000000{index}IE") for index, order_id in enumerate(order_ids)
        }
        shipments[order_ids[0]] = check_tracking("an_post", AN_POST_NUMBER)  # as it was: no second mail
        notices = ship_orders(session, shipments, clock(), PRODUCER)
        queue_shipping_mails(session, notices)

    assert [notice.order.id for notice in notices] == order_ids[1:]
    assert [mail.order_id for mail in mails(session)] == order_ids
    assert [session.get(Order, order_id).tracking_number for order_id in order_ids] == [
        AN_POST_NUMBER,
        "RR000000001IE",
        "RR000000002IE",
    ]


def test_a_partly_refunded_order_ships_the_units_it_still_has(session, clock):
    (order_id,) = sell(session, clock, quantity=3)
    refund_units(session, order_id, [2], clock)

    (notice,) = ship(session, [order_id], clock)

    assert notice.numbers == (1, 3)
    (mail,) = mails(session)
    assert mail.subject.startswith("Your No. 1, 3 of 240 are on their way")
    assert "No. 2 of 240" not in mail.body


def test_an_order_with_nothing_left_to_send_is_refused(session, clock):
    (order_id,) = sell(session, clock, quantity=2)
    refund_units(session, order_id, [1, 2], clock)  # retired both, and the order is (wrongly) still paid

    with pytest.raises(FulfilmentRefused, match="no numbers left"):
        ship(session, [order_id], clock)
    assert mails(session) == []


def test_a_note_goes_on_the_timeline_with_its_author(session, clock):
    (order_id,) = sell(session, clock)
    with write_transaction(session):
        add_order_note(session, order_id, "  Rang: leave with the neighbour. ", clock(), PRODUCER)
    assert events(session, order_id) == [("note", "Rang: leave with the neighbour.", PRODUCER.email)]


# --- Two tabs at once ---------------------------------------------------------------------------------------------


def test_two_tabs_shipping_one_order_at_once_mail_once(app, session, clock):
    """Both requests lock the order's row: the second sees it shipped with the same details and does nothing."""
    for attempt in range(5):
        (order_id,) = sell(session, clock)
        session.commit()

        def ship_in_own_transaction(order_id=order_id):
            return ship(db.session, [order_id], clock)

        outcomes = run_concurrently(app, [ship_in_own_transaction, ship_in_own_transaction])

        assert unexpected(outcomes) == []
        assert sorted(len(outcome.value) for outcome in outcomes) == [0, 1], attempt
        session.expire_all()
        assert session.scalar(select(func.count()).where(OutboxMessage.order_id == order_id)) == 1
        assert [kind for kind, _, _ in events(session, order_id)] == ["shipped"]


def test_two_tabs_packing_and_shipping_a_selection_at_once_leave_it_shipped_with_one_mail_each(app, session, clock):
    order_ids = sell(session, clock, orders=4)
    session.commit()

    outcomes = run_concurrently(
        app,
        [
            lambda: ship(db.session, list(reversed(order_ids)), clock),
            lambda: ship(db.session, order_ids, clock),
            lambda: pack(db.session, order_ids, clock),
        ],
    )

    assert unexpected(outcomes) == []
    session.expire_all()
    assert sorted(mail.order_id for mail in mails(session)) == sorted(order_ids)
    assert {session.get(Order, order_id).fulfilment_status for order_id in order_ids} == {"shipped"}
