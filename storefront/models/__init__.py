"""All models, imported here so Alembic and `create_all` see the whole schema."""

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
from storefront.models.orders import Order, OrderStatus

__all__ = [
    "Base",
    "Batch",
    "BatchFact",
    "BatchImage",
    "Hold",
    "HoldStatus",
    "InvalidValue",
    "Order",
    "OrderStatus",
    "Product",
    "Release",
    "ReleaseStatus",
    "UTCDateTime",
    "Unit",
    "UnitStatus",
]
