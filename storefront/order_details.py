"""What a buyer is told about a paid order beside its numbers, in its mails and on the success page: where it goes,
what it cost, when it leaves, and whom to ask."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from storefront.addresses import address_lines
from storefront.domain.shop_pages import shop_settings
from storefront.models import Order
from storefront.notifications import shop_contact
from storefront.urls import external_url


@dataclass(frozen=True)
class OrderDetails:
    address: list[str]  # name, street, town lines and country, as the destination writes them
    items_amount: int  # the units alone (quantity × unit price), shipping apart
    dispatch_time: str  # "within 2 working days", as the producer wrote it; empty when not said
    contact: str  # where the buyer writes with a question
    story_url: str  # the batch's story, on SHOP_URL


def order_details(session: Session, order: Order) -> OrderDetails:
    """Gather what the order's mails and success page show besides the order itself."""
    return OrderDetails(
        address=address_lines(order.shipping_name or "", order.shipping_address),
        items_amount=order.amount_total - (order.shipping_amount or 0),
        dispatch_time=shop_settings(session).dispatch_time.strip(),
        contact=shop_contact(session),
        story_url=external_url("story.show_batch", slug=order.release.batch.slug),
    )
