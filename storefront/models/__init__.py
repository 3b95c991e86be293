"""All models, imported here so Alembic and `create_all` see the whole schema."""

from storefront.models.accounts import Role, User
from storefront.models.activity import ActivityEntry
from storefront.models.audience import Announcement, Subscriber, SubscriberStatus
from storefront.models.base import Base, UTCDateTime
from storefront.models.catalog import (
    Batch,
    BatchFact,
    BatchImage,
    InvalidValue,
    Product,
    Release,
    ReleaseStatus,
)
from storefront.models.inventory import Hold, HoldStatus, Unit, UnitStatus
from storefront.models.notifications import OutboxMessage
from storefront.models.orders import (
    FulfilmentStatus,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentEvent,
    PeriodicRun,
    Refund,
    RefundLine,
    RefundStatus,
    UnmatchedPayment,
)
from storefront.models.shop import ShopPage, ShopPageKind, ShopSettings
from storefront.models.waitlist import (
    LIVE_OFFER_STATUSES,
    OfferStatus,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)

__all__ = [
    "ActivityEntry",
    "Announcement",
    "Subscriber",
    "SubscriberStatus",
    "Base",
    "Batch",
    "BatchFact",
    "BatchImage",
    "Hold",
    "HoldStatus",
    "InvalidValue",
    "FulfilmentStatus",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "OutboxMessage",
    "PaymentEvent",
    "PeriodicRun",
    "Refund",
    "RefundLine",
    "RefundStatus",
    "Role",
    "Product",
    "Release",
    "ShopPage",
    "ShopPageKind",
    "ShopSettings",
    "ReleaseStatus",
    "UTCDateTime",
    "Unit",
    "UnmatchedPayment",
    "User",
    "UnitStatus",
    "LIVE_OFFER_STATUSES",
    "OfferStatus",
    "WaitlistEntry",
    "WaitlistOffer",
    "WaitlistStatus",
]
