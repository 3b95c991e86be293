"""What a buyer is told about shipping before they reserve: what it costs, where it goes, how soon it leaves.

The cost is the release's own flat amount per order (0: free), charged on the payment page as one shipping rate;
the countries are those the payment page accepts an address in (SHIPPING_COUNTRIES), the dispatch time is the
shop's setting, and the shop's shipping page, when the producer wrote one, says the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, scoped_session

from storefront.domain.shop_pages import shop_settings
from storefront.models import Release, ShopPage, ShopPageKind


@dataclass(frozen=True)
class ShippingTerms:
    """The shipping line next to a release's price."""

    amount: int  # minor units of `currency`, once per order; 0 is free shipping
    currency: str
    countries: tuple[str, ...]  # ISO codes, in the order the shop lists them
    dispatch_time: str  # "within 2 working days"; empty when the producer has not said
    has_page: bool  # the producer wrote a shipping page

    @property
    def free(self) -> bool:
        return self.amount == 0


def shipping_terms(session: Session | scoped_session, release: Release, countries: list[str]) -> ShippingTerms:
    """The shipping line for `release`, shipped to `countries` (the shop's SHIPPING_COUNTRIES)."""
    page_written = session.scalar(
        select(exists().where(ShopPage.kind == ShopPageKind.SHIPPING.value, ShopPage.body_markdown != ""))
    )
    return ShippingTerms(
        amount=release.shipping_amount,
        currency=release.currency,
        countries=tuple(countries),
        dispatch_time=shop_settings(session).dispatch_time.strip(),
        has_page=bool(page_written),
    )
