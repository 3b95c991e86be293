"""Demo data for Harrow & Vale's shop settings and the six pages its footer links to.

Called by `seed_demo()` inside its write transaction. Like the rest of the demo it creates only what is missing:
settings the producer has saved, and pages they have written (or emptied), are left as they are.
The shipping page states what the demo's releases charge (storefront.demo: €6 per order for the whiskey, the
coffee free) and where Checkout ships (config.SHIPPING_COUNTRIES).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from storefront.domain import shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.shop_pages import PageDetails, SettingsDetails
from storefront.models import ShopPageKind, ShopSettings

DEMO_CONTACT_EMAIL = "orders@harrowvale.example"
DEMO_SETTINGS = SettingsDetails(
    contact_email=DEMO_CONTACT_EMAIL,
    dispatch_time="within 2 working days",
    age_restricted_categories="Whiskey",
)

SHIPPING = """\
We pack every order by hand at the distillery in the Vale of Clara, Co. Wicklow, and hand it to the carrier
**within 2 working days** of payment. You get a mail with the tracking number the day it leaves.

## What it costs

Shipping is charged **once per order**, however many numbered units are in it, and shown next to the price
before you reserve:

| What you order | Shipping per order |
| --- | --- |
| Whiskey (any release) | €6.00 |
| Coffee | Free |

## Where we ship

- **Ireland** (An Post, 1–3 working days)
- **United Kingdom** (DPD, 3–5 working days). Spirits may carry import duty and VAT, collected by the carrier on
  delivery.
- **European Union**: Austria, Belgium, Denmark, Finland, France, Germany, Italy, Luxembourg, the Netherlands,
  Portugal, Spain and Sweden (DPD, 3–6 working days)

Checkout only accepts addresses in these countries. Whiskey needs an adult to sign for it: if nobody is home,
the carrier leaves a card and tries again.
"""

RETURNS = """\
## Changed your mind

You can return anything **unopened, with its seal intact, within 14 days** of delivery. Write to us first at
the address on our [contact page](/pages/contact) with your order number; we reply with the return address.
Return postage is yours, unless the bottle or bag arrived damaged.

## Numbered units are refunded, not exchanged

Each unit carries its own number, and a run does not come back once it has sold out, so we cannot swap one
number for another. A returned unit is **refunded in full** (including shipping, if you return the whole order)
to the card you paid with, within 5 working days of it reaching us. The number goes back on sale, to the run's
waitlist first.

## Arrived damaged

Send us a photo of the parcel and the damage within 48 hours of delivery. We refund you at once and do not ask
for the broken bottle back.
"""

CONTACT = """\
Harrow & Vale is Aoife and Tom Byrne, and a small team, in an old creamery in the Vale of Clara, Co. Wicklow.

Write to us about an order, a return, a trade enquiry or anything else: we answer **within one working day**,
usually sooner. Put your order number in the subject if you have one.

**Post:** Harrow & Vale, The Old Creamery, Clara, Co. Wicklow, A67 X2Y3, Ireland

We do not take visitors at the distillery yet; when we do, the mailing list hears first.
"""

TERMS = """\
These terms cover every sale in this shop. The seller is **Harrow & Vale Distilling Ltd**, The Old Creamery,
Clara, Co. Wicklow, Ireland.

## Reserving and paying

- Pressing **Reserve** holds the numbers shown for the time stated on the page. They are yours once payment
  succeeds; if you leave or the time runs out, they go back on sale.
- Prices include Irish VAT. Shipping is charged once per order and shown before you pay.
- Each release has a limit per customer, counted per email address.

## After you pay

We confirm your order and numbers by mail, and mail again when it ships. You may return an unopened order
within 14 days, as set out on our [returns page](/pages/returns): this does not affect your rights as a
consumer under Irish and EU law.

## Age

We sell spirits only to adults of legal drinking age where the order is delivered (18 in Ireland). By ordering
whiskey you confirm you are; the carrier may ask for proof of age on delivery.
"""

PRIVACY = """\
We keep as little about you as we can, and only to sell and deliver what you ordered.

## What we store

- **Your email address**: to send your receipt, tell you when your order ships, and count the limit per
  customer. If you join a waitlist or our mailing list, to write to you about it: every such mail has a link
  to leave.
- **Your name and shipping address**: to deliver your order and print its label. We share them with the
  carrier, and nobody else.
- **Your order**: what you bought, the numbers and what you paid, for our accounts (kept for 6 years, as Irish
  tax law requires).

## Card payments

Payments are taken by **Stripe**. Your card details go straight to Stripe and never reach us; we see only
that a payment succeeded and the last four digits.

## Cookies

One cookie keeps your hold and your session while you shop. No advertising, no tracking.

Ask us at any time what we hold about you, or to delete it (what the tax law makes us keep excepted): see the
[contact page](/pages/contact).
"""

AGE_NOTICE = """\
**You must be of legal drinking age to buy our whiskey**: 18 or over in Ireland and across the countries we
ship to.

By reserving a bottle you confirm that you, and the person receiving it, are of legal drinking age where it is
delivered. The carrier may ask for photo ID on delivery and will not hand spirits to anyone underage; a
returned parcel is refunded less shipping.

Enjoy our whiskey responsibly. For information and support, see [drinkaware.ie](https://www.drinkaware.ie).
"""

DEMO_PAGES: dict[ShopPageKind, str] = {
    ShopPageKind.SHIPPING: SHIPPING,
    ShopPageKind.RETURNS: RETURNS,
    ShopPageKind.CONTACT: CONTACT,
    ShopPageKind.TERMS: TERMS,
    ShopPageKind.PRIVACY: PRIVACY,
    ShopPageKind.AGE: AGE_NOTICE,
}


def seed_shop_pages(session: Session, now: datetime) -> list[str]:
    """Save the demo's shop settings and footer pages unless they exist; name what was created."""
    created: list[str] = []
    if session.get(ShopSettings, 1) is None:
        shop_pages.save_shop_settings(session, SHOP, DEMO_SETTINGS, now)
        created.append("shop settings")
    for kind, body in DEMO_PAGES.items():
        if shop_pages.find_page(session, kind) is None:
            shop_pages.save_shop_page(session, SHOP, kind, PageDetails(shop_pages.PAGE_TITLES[kind], body), now)
            created.append(f'page "{shop_pages.PAGE_TITLES[kind]}"')
    return created
