"""The buyer's "on its way" mail, queued through the outbox in the transaction that shipped the order.

The domain (storefront.domain.shipping) decides who must hear, once; this renders what they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from storefront import notifications
from storefront.domain.exports import address_lines
from storefront.domain.orders import numbers_text
from storefront.domain.shipping import ShippingNotice
from storefront.models import Order, OutboxMessage
from storefront.urls import external_url


def shipping_address_lines(order: Order) -> list[str]:
    """The order's name and address as lines to print or read, the country written out when it is known."""
    return address_lines(order.shipping_name or "", order.shipping_address)


def queue_shipping_mails(session: Session, notices: Iterable[ShippingNotice]) -> list[OutboxMessage]:
    """Queue one "on its way" mail per notice (a corrected tracking says so), each tied to its order."""
    messages = []
    for notice in notices:
        order = notice.order
        release = order.release
        messages.append(
            notifications.queue_mail(
                session,
                order.email,
                "order_shipped",
                order_id=order.id,
                order=order,
                release=release,
                numbers=notice.numbers,
                numbers_written=numbers_text(notice.numbers, release.total_units),
                tracking=notice.tracking,
                corrected=notice.corrected,
                address=shipping_address_lines(order),
                story_url=external_url("story.show_batch", slug=release.batch.slug),
            )
        )
    return messages
