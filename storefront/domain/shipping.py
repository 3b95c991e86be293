"""Getting the goods to the door: carriers, packing and shipping orders, each step on the order's timeline.

The goods status (`Order.fulfilment_status`) moves unfulfilled -> packed -> shipped and never back; the money
status decides whether it may move at all: an order being refunded, or refunded, is neither packed nor shipped (a
partly refunded order is paid again and ships the units it still has). Shipping locks the order rows first, so two
tabs shipping the same order at once ship it once; shipping it again with the same details changes nothing, and
new details are a correction the buyer hears about once.

The mail itself is queued by the edge in the same transaction (storefront.producer.order_mail), from what
`ship_orders` returns: the domain decides who must hear, and knows nothing of templates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain.activity import Actor, record_activity
from storefront.domain.errors import DomainError
from storefront.domain.orders import OrderNotFound, numbers_text, record_order_event
from storefront.models import FulfilmentStatus, Order, OrderStatus, RefundLine, Release, Unit

# Tracking numbers as carriers print them: letters, digits and dashes (spaces are dropped: "RR 1234 5678 9IE").
TRACKING_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{3,39}")
TRACKING_NUMBER_MAX = 40
TRACKING_URL_MAX = 500
# Activity lines name at most this many orders; the rest are counted.
NAMED_IN_ACTIVITY = 5


@dataclass(frozen=True)
class Carrier:
    """A way a parcel travels: whether it has a tracking number, and the page that follows one."""

    code: str
    name: str
    # "{number}" is replaced by the (URL-quoted) tracking number; empty when the carrier has no tracking page.
    tracking_url_template: str = ""
    needs_tracking: bool = True
    # "Other": the producer types the tracking page's address themselves.
    url_typed: bool = False

    def tracking_url(self, number: str) -> str:
        if not self.tracking_url_template or not number:
            return ""
        return self.tracking_url_template.format(number=quote(number, safe=""))


OTHER = "other"
HAND = "hand"
CARRIERS: tuple[Carrier, ...] = (
    Carrier("an_post", "An Post", "https://www.anpost.com/Post-Parcels/Track/History?item={number}"),
    Carrier("dpd", "DPD", "https://tracking.dpd.de/status/en_US/parcel/{number}"),
    Carrier("dhl", "DHL", "https://www.dhl.com/global-en/home/tracking/tracking-parcel.html?tracking-id={number}"),
    Carrier("ups", "UPS", "https://www.ups.com/track?tracknum={number}"),
    Carrier("fedex", "FedEx", "https://www.fedex.com/fedextrack/?trknbr={number}"),
    Carrier("royal_mail", "Royal Mail", "https://www.royalmail.com/track-your-item#/tracking-results/{number}"),
    Carrier("gls", "GLS", "https://gls-group.com/GROUP/en/parcel-tracking?match={number}"),
    Carrier("postnl", "PostNL", "https://jouw.postnl.nl/track-and-trace/{number}"),
    Carrier(OTHER, "Other carrier", url_typed=True),
    Carrier(HAND, "Hand delivery or collection", needs_tracking=False),
)
CARRIERS_BY_CODE = {carrier.code: carrier for carrier in CARRIERS}


def carrier_name(code: str) -> str:
    """The carrier's name for a stored code ("an_post" -> "An Post"); the code itself if no longer known."""
    carrier = CARRIERS_BY_CODE.get(code)
    return carrier.name if carrier is not None else code


class FulfilmentRefused(DomainError):
    """An order cannot move that way: it is being refunded, refunded, or has nothing left to ship."""


class InvalidTracking(DomainError):
    """Shipping details that cannot be used; `problems` names the field ("carrier", "tracking_number", ...)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(" ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class Tracking:
    """How one parcel travels, checked: a known carrier, its tracking number, and the page to follow it."""

    carrier: str
    number: str = ""
    url: str = ""

    @property
    def carrier_name(self) -> str:
        return carrier_name(self.carrier)


def check_tracking(carrier_code: str, number: str = "", url: str = "") -> Tracking:
    """Check and tidy what the producer typed; raise InvalidTracking naming each field to fix.

    The tracking page is built from the carrier's template; only "Other" takes a typed address, which must be
    https. A carrier without tracking (hand delivery) keeps neither number nor link.
    """
    carrier = CARRIERS_BY_CODE.get((carrier_code or "").strip())
    if carrier is None:
        raise InvalidTracking({"carrier": "Choose a carrier from the list."})
    problems = {}
    number = "".join((number or "").split())
    if not carrier.needs_tracking:
        return Tracking(carrier.code)
    if not number and not carrier.url_typed:
        problems["tracking_number"] = f"{carrier.name} parcels have a tracking number: type it in."
    elif number and not TRACKING_NUMBER.fullmatch(number):
        problems["tracking_number"] = (
            f"A tracking number is 4 to {TRACKING_NUMBER_MAX} letters, digits or dashes, as on the label."
        )
    if carrier.url_typed:
        url = (url or "").strip()
        problem = tracking_url_problem(url)
        if problem:
            problems["tracking_url"] = problem
    else:
        url = carrier.tracking_url(number)
    if problems:
        raise InvalidTracking(problems)
    return Tracking(carrier.code, number, url)


def tracking_url_problem(url: str) -> str | None:
    """Why a typed tracking address cannot go in the buyer's mail, or None when it can."""
    if not url:
        return "Give the address of the carrier's tracking page for this parcel."
    if len(url) > TRACKING_URL_MAX:
        return f"The tracking address can be at most {TRACKING_URL_MAX} characters."
    if any(character.isspace() for character in url):
        return "The tracking address cannot contain spaces."
    try:
        parts = urlsplit(url)
    except ValueError:
        return "That is not a web address."
    if parts.scheme.lower() != "https" or not parts.hostname:
        return "The tracking address must be a secure web address starting with https://."
    if parts.username is not None or parts.password is not None:
        return "The tracking address cannot carry a user name or password."
    return None


@dataclass(frozen=True)
class ShippingNotice:
    """An order that was shipped (or had its tracking corrected) just now: its buyer is to be told."""

    order: Order
    numbers: tuple[int, ...]
    tracking: Tracking
    corrected: bool = False


def lock_orders(session: Session, order_ids: Iterable[int]) -> list[Order]:
    """Lock the orders' rows (in id order, so two bulk actions never deadlock) and read them fresh.

    Raises OrderNotFound for an id that names no order: a tampered form changes nothing.
    """
    wanted = sorted(set(order_ids))
    orders = list(
        session.scalars(
            select(Order)
            .where(Order.id.in_(wanted))
            .order_by(Order.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    found = {order.id for order in orders}
    missing = [order_id for order_id in wanted if order_id not in found]
    if missing:
        raise OrderNotFound(missing[0])
    return orders


def refuse_unless_paid(orders: Sequence[Order], doing: str) -> None:
    """Refuse (changing nothing) when any order's money is going back or has gone back."""
    refused = []
    for order in orders:
        if order.status == OrderStatus.REFUNDED:
            refused.append(f"order {order.reference} is refunded")
        elif order.status == OrderStatus.REFUNDING:
            refused.append(f"order {order.reference} is being refunded")
    if refused:
        raise FulfilmentRefused(
            f"Nothing was {doing}: {'; '.join(refused)}. A refunded order is neither packed nor shipped."
        )


def numbers_to_ship(session: Session, order_ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Each order's numbers still to go out: its units, less those refunded (or being refunded) and retired."""
    refunded = select(RefundLine.unit_id).where(RefundLine.voided_at.is_(None)).scalar_subquery()
    rows = session.execute(
        select(Unit.order_id, Unit.number)
        .where(Unit.order_id.in_(order_ids), Unit.id.not_in(refunded))
        .order_by(Unit.order_id, Unit.number)
    ).all()
    numbers: dict[int, list[int]] = {order_id: [] for order_id in order_ids}
    for order_id, number in rows:
        numbers[order_id].append(number)
    return {order_id: tuple(found) for order_id, found in numbers.items()}


def release_totals(session: Session, orders: Sequence[Order]) -> dict[int, int]:
    release_ids = {order.release_id for order in orders}
    return dict(session.execute(select(Release.id, Release.total_units).where(Release.id.in_(release_ids))).all())


def mark_packed(session: Session, order_ids: Iterable[int], now: datetime, actor: Actor) -> list[Order]:
    """Mark orders packed; returns those that changed (an order already packed or shipped is left as it is).

    All or nothing: one order that cannot be packed (being refunded, refunded, nothing to ship) refuses the lot.
    """
    require_write_transaction(session)
    orders = lock_orders(session, order_ids)
    if not orders:
        raise FulfilmentRefused("Choose at least one order to mark packed.")
    refuse_unless_paid(orders, "packed")
    numbers = numbers_to_ship(session, [order.id for order in orders])
    refuse_empty(orders, numbers, "packed")
    totals = release_totals(session, orders)
    changed = []
    for order in orders:
        if order.fulfilment_status != FulfilmentStatus.UNFULFILLED:
            continue
        order.fulfilment_status = FulfilmentStatus.PACKED
        order.packed_at = now
        record_order_event(
            session,
            order.id,
            "packed",
            f"Packed {numbers_text(numbers[order.id], totals[order.release_id])}",
            now,
            actor_email=actor.email,
        )
        changed.append(order)
    if changed:
        record_activity(
            session, actor, "order.packed", "order", single_id(changed), activity_text("Packed", changed), now
        )
    session.flush()
    return changed


def refuse_empty(orders: Sequence[Order], numbers: Mapping[int, Sequence[int]], doing: str) -> None:
    empty = [order.reference for order in orders if not numbers.get(order.id)]
    if empty:
        raise FulfilmentRefused(
            f"Nothing was {doing}: order {', '.join(empty)} has no numbers left to send (all refunded or never given)."
        )


def mark_shipped(
    session: Session,
    order_ids: Iterable[int],
    carrier: str,
    tracking_number: str,
    tracking_url: str,
    now: datetime,
    actor: Actor,
) -> list[ShippingNotice]:
    """Ship orders with one carrier and tracking (one parcel, or a carrier without tracking): see `ship_orders`."""
    tracking = check_tracking(carrier, tracking_number, tracking_url)
    return ship_orders(session, dict.fromkeys(order_ids, tracking), now, actor)


def ship_orders(
    session: Session, shipments: Mapping[int, Tracking], now: datetime, actor: Actor
) -> list[ShippingNotice]:
    """Mark each order shipped with its tracking; returns the buyers to tell, each once.

    An order shipped before with the same details is left alone (no second mail); with other details the
    tracking is corrected and its buyer told once more. All or nothing: one order that cannot ship (being
    refunded, refunded, nothing left to send) refuses the lot. Takes checked `Tracking` (see check_tracking).
    """
    require_write_transaction(session)
    orders = lock_orders(session, shipments)
    if not orders:
        raise FulfilmentRefused("Choose at least one order to mark shipped.")
    refuse_unless_paid(orders, "shipped")
    numbers = numbers_to_ship(session, [order.id for order in orders])
    refuse_empty(orders, numbers, "shipped")
    totals = release_totals(session, orders)
    notices = []
    for order in orders:
        tracking = shipments[order.id]
        shipped_before = order.fulfilment_status == FulfilmentStatus.SHIPPED
        if shipped_before and tracking == stored_tracking(order):
            continue
        previous = describe_tracking(stored_tracking(order)) if shipped_before else ""
        order.carrier = tracking.carrier
        order.tracking_number = tracking.number
        order.tracking_url = tracking.url
        numbers_written = numbers_text(numbers[order.id], totals[order.release_id])
        if shipped_before:
            summary = f"Tracking corrected to {describe_tracking(tracking)} (was {previous})"
            kind = "shipping_corrected"
        else:
            order.fulfilment_status = FulfilmentStatus.SHIPPED
            order.shipped_at = now
            summary = f"Shipped {numbers_written} with {describe_tracking(tracking)}"
            kind = "shipped"
        record_order_event(session, order.id, kind, summary, now, actor_email=actor.email)
        notices.append(ShippingNotice(order, numbers[order.id], tracking, corrected=shipped_before))
    if notices:
        changed = [notice.order for notice in notices]
        verb = "Shipped" if not any(notice.corrected for notice in notices) else "Shipped or corrected tracking of"
        record_activity(session, actor, "order.shipped", "order", single_id(changed), activity_text(verb, changed), now)
    session.flush()
    return notices


def stored_tracking(order: Order) -> Tracking:
    return Tracking(order.carrier, order.tracking_number, order.tracking_url)


def describe_tracking(tracking: Tracking) -> str:
    """ "An Post, RR123456789IE", "Hand delivery or collection", "Other carrier, https://..." """
    if tracking.number:
        return f"{tracking.carrier_name}, {tracking.number}"
    if tracking.url:
        return f"{tracking.carrier_name}, {tracking.url}"
    return tracking.carrier_name


def single_id(orders: Sequence[Order]) -> int | None:
    """The order an activity line is about, when it is about one (a bulk action's line links to none)."""
    return orders[0].id if len(orders) == 1 else None


def activity_text(verb: str, orders: Sequence[Order]) -> str:
    """ "Packed order SB-…", "Packed 12 orders: SB-…, SB-… and 7 more" """
    if len(orders) == 1:
        return f"{verb} order {orders[0].reference}"
    named = ", ".join(order.reference for order in orders[:NAMED_IN_ACTIVITY])
    rest = len(orders) - NAMED_IN_ACTIVITY
    return f"{verb} {len(orders)} orders: {named}" + (f" and {rest} more" if rest > 0 else "")
