"""Demo data: Harrow & Vale, a small distillery-and-roastery, with batches, stories, photos and releases.

`flask storefront seed-demo` calls `seed_demo()` and commits. Everything is looked up by its slug or code
first, so running it again creates nothing; the photos are drawn with Pillow from a fixed seed, so they come
out the same on every machine and are only drawn when the file is missing.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storefront import photos
from storefront.demo_pages import seed_shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.releases import ReleaseTerms, open_release
from storefront.models import (
    Batch,
    BatchFact,
    BatchImage,
    Order,
    OrderStatus,
    Product,
    Release,
    Unit,
    UnitStatus,
)

DEMO_FOLDER = "demo"
CURRENCY = "EUR"

# ----------------------------------------------------------------------------------------------------------
# The producer's catalogue
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductSpec:
    slug: str
    name: str
    category: str
    description: str


@dataclass(frozen=True)
class PhotoSpec:
    subject: str  # a key of PAINTERS
    palette: str  # a key of PALETTES
    alt_text: str
    caption: str


@dataclass(frozen=True)
class BatchSpec:
    product_slug: str
    code: str
    slug: str
    title: str
    produced_on: date
    summary: str
    story_markdown: str
    facts: tuple[tuple[str, str], ...]
    photos: tuple[PhotoSpec, ...]


@dataclass(frozen=True)
class ReleaseSpec:
    batch_code: str
    slug: str
    title: str
    price_amount: int
    total_units: int
    on_sale_at: datetime
    per_customer_limit: int
    allow_number_choice: bool
    # Shipping per order, in minor units; 0 is free shipping (the coffee ships free, the whiskey does not).
    shipping_amount: int = 0
    units_sold: int = 0
    # The numbers after the sold ones that the maker keeps back (a bottle for the distillery's shelf); putting one
    # back on sale in the workspace offers it to the run's waitlist once the run has sold out.
    units_withheld: int = 0
    # Waiters of the product may reserve this long before everyone else, with their personal links.
    early_access: timedelta | None = None
    # Orders are spread over this long after the release opened (never later than "now").
    selling_time: timedelta = timedelta(hours=1)


PRODUCTS = (
    ProductSpec(
        slug="carlow-rye-whiskey",
        name="Harrow & Vale Carlow Rye",
        category="Whiskey",
        description=(
            "A rye-forward whiskey double-distilled in copper pot stills in an old creamery in the Vale "
            "of Clara, Co. Wicklow, from rye grown on one farm in Co. Carlow. Irish law files it as grain "
            "whiskey; we just call it rye. Bottled in small, numbered batches, never chill-filtered or "
            "coloured."
        ),
    ),
    ProductSpec(
        slug="ethiopia-guji-hambela",
        name="Ethiopia Guji Hambela, Washed",
        category="Coffee",
        description=(
            "A washed Ethiopian coffee from smallholders in Hambela Wamena, bought one lot a year and "
            "roasted light for filter on the drum roaster that shares a wall with our whiskey warehouse."
        ),
    ),
)

BATCH_7_STORY = """\
## The field

Every bottle of Batch 7 starts in a single eleven-acre field outside Bagenalstown, Co. Carlow, where Pat Nolan
has grown rye for us since our first spring. Rye is a stubborn crop: it roots deep, shrugs off a wet May and
grows taller than anyone expects. The 2022 harvest came in at the end of a dry August, small-grained and
*intensely* spicy, and we knew before we milled it that it would make a loud spirit.

## The stills and the casks

We mashed that rye with malted barley from a maltings in Athy, fermented it slowly for five days, long
enough for the wash to smell of green apple and rye bread, and ran it twice through our copper pot stills,
Maud and Jack. Aoife cuts the hearts by nose, not by the clock.

The new make went into casks in March 2023:

- 14 first-fill ex-bourbon barrels from a single Kentucky cooperage
- 2 barrels of virgin Irish oak, coopered in Co. Wexford, for structure and a little clove
- all of them stacked three high against the north wall of the old creamery, where the temperature swings most

## What's in the glass

Three winters later we vatted the casks together, let them rest for a month, and bottled by hand at
**46% ABV**, without chill-filtering or colouring. Expect rye bread crust, orange peel and black pepper up
front, then honey, toasted oak and a long, dry finish that keeps its spice. A few drops of water bring out
ripe pear.

There are 240 numbered bottles in this release. Each label is signed and numbered by whoever filled it:
usually Aoife, sometimes her father, who has the neater handwriting.
"""

QUARTER_CASK_STORY = """\
## An accident, mostly

Quarter Cask No. 31 was never meant to be a release. In the spring of 2024 we moved two-year-old rye from one
of our very first ex-bourbon barrels into a handful of 50-litre quarter casks, to see how quickly the small
wood would work. Most of them were too much: all tannin and sawdust. Cask 31 was different.

## Why it tastes like this

A quarter cask holds a quarter of what a barrel does, so far more of the spirit touches the oak. Cask 31 had
a heavy **No. 3 char**, and it sat in the warmest corner of the warehouse, against the roastery wall, where
the drum roaster runs four days a week. Every summer the heat pushed the spirit deep into the wood; every
winter the cold drew it back out, darker each time.

What came out after two more years:

- dark toffee, espresso and cherry stone on the nose
- rye spice that survives even at full strength
- a finish of cocoa and charred orange peel that lingers for minutes

## Just sixty

We lost almost a third of the cask to evaporation (*the angels were thirsty that year*) and bottled the rest
at natural cask strength, **58.4% ABV**, on 22 April 2026. After a sample for the library and one for Pat,
who grew the rye, there were exactly sixty 50 cl bottles.

We would suggest a few drops of water, a small glass, and patience. If you missed this one, there are two
more quarter casks in the warm corner, and they are coming along nicely.
"""

WINTER_RYE_STORY = """\
## A nod to the old mash bills

Before the big distilleries settled on barley, Irish pot still whiskey was often made with a handful of oats
and rye in the mash. For Winter Rye we borrowed the idea: **60% Carlow rye, 30% malted barley and 10% oats**
from a mill in Co. Kilkenny. The oats make the wash thick and creamy and take the edge off the rye's pepper,
and the spirit comes off the still rounder and oilier than our usual rye.

## Three years, then Jerez

The spirit spent three years in first-fill ex-bourbon barrels like all our rye. Then, in February 2026, we
emptied it into two 500-litre oloroso butts that had held sherry in a bodega in Jerez for more than twenty
years. We tasted it every fortnight. At nine months the sherry had settled in without shouting over the
grain, and we stopped.

Our notes from bottling day:

1. **Nose:** fig, walnut, rye toast and a little beeswax
2. **Palate:** dried apricot, clove and brown sugar, with the oats showing up as texture
3. **Finish:** long and nutty, black pepper coming back at the very end

## Bottling and release

Winter Rye is bottled at **48% ABV**, non-chill-filtered and at its natural colour: 120 numbered bottles, and
the two butts are already refilled with next year's spirit. It goes on sale at 10:00 UTC.

Number choice is on for this one. If a particular number matters to you (a birthday, a house, a jersey), you
can pick it while it lasts; otherwise we hand out the lowest numbers first.
"""

GUJI_STORY = """\
## From Hambela

This lot comes from about six hundred smallholder farms in the hills of Hambela Wamena, in the Guji zone of
southern Ethiopia, where coffee grows half-wild under false banana and acacia at 2,100 to 2,300 metres. Each
family brings its ripe cherry, a few kilos at a time, to the washing station, where the station manager,
Tesfaye, and his team pick out the underripe fruit by hand before anything else happens.

## How it was processed

- pulped on the day it was picked
- fermented under water for about 36 hours, then washed in cold spring water
- dried slowly for 12 days on raised beds, turned every hour through the midday heat
- rested in parchment for six weeks before milling and export

Washing strips away the fruit early, so what you taste is the seed itself: *clean, bright and very floral*.

## In the roastery

Three 60-kilo sacks arrived at the creamery in October. After roasting loss and the coffee we drink
ourselves, that makes 500 bags, and we numbered every one. Tom roasts every Tuesday on our 15-kilo drum
roaster, only as much as has been ordered that week, and we post within 48 hours, so your bag is never more
than a few days from the drum.

We roast it light, for filter, and end the roast early enough that the jasmine survives. Expect **bergamot,
peach and jasmine**, with a black-tea finish that gets sweeter as the cup cools. Brew it at about 1:16, and
give it a week off roast before you open the bag.

When the last bag is gone, that's it until next year's harvest.
"""

BATCHES = (
    BatchSpec(
        product_slug="carlow-rye-whiskey",
        code="B-2026-04",
        slug="rye-quarter-cask-b-2026-04",
        title="Quarter Cask No. 31, Cask Strength",
        produced_on=date(2026, 4, 22),
        summary=(
            "Four-year-old rye finished in a single heavily charred 50-litre quarter cask and bottled at "
            "cask strength: sixty bottles, no more."
        ),
        story_markdown=QUARTER_CASK_STORY,
        facts=(
            ("Grain bill", "70% Carlow rye, 30% malted barley"),
            ("Still", "Double-distilled in copper pot stills Maud (2,400 L) and Jack (1,200 L)"),
            ("Cask", "2 years ex-bourbon barrel, then 2 years in quarter cask No. 31 (50 L, No. 3 char)"),
            ("Distilled", "February 2022"),
            ("Bottled at", "58.4% ABV, natural cask strength, 22 April 2026"),
            ("Bottles", "60 × 50 cl"),
        ),
        photos=(
            PhotoSpec(
                "casks",
                "char",
                "The round ends of small, dark oak casks stacked in a dim warehouse, lit warm from one side",
                "The quarter casks in the warm corner, No. 31 second from the left.",
            ),
            PhotoSpec(
                "bottle",
                "char",
                "A squat bottle of dark amber whiskey silhouetted against soft points of warm light",
                "Bottle 1 of 60, the evening it was filled.",
            ),
        ),
    ),
    BatchSpec(
        product_slug="carlow-rye-whiskey",
        code="B-2026-07",
        slug="rye-b-2026-07",
        title="Batch 7: Carlow Rye, Three Winters",
        produced_on=date(2026, 7, 14),
        summary=(
            "Our seventh batch of rye: one Carlow field, two copper stills and three winters in bourbon "
            "barrels and Irish oak, bottled at 46%."
        ),
        story_markdown=BATCH_7_STORY,
        facts=(
            ("Grain bill", "70% rye from Pat Nolan's farm, Co. Carlow; 30% malted barley from Athy"),
            ("Still", "Double-distilled in copper pot stills Maud (2,400 L) and Jack (1,200 L)"),
            ("Cask", "14 first-fill ex-bourbon barrels and 2 virgin Irish oak barrels"),
            ("Age", "3 years 4 months, distilled March 2023"),
            ("Bottled at", "46% ABV, non-chill-filtered, natural colour, 14 July 2026"),
        ),
        photos=(
            PhotoSpec(
                "bottle",
                "amber",
                "A bottle of golden rye whiskey and a half-filled tumbler on a wooden table, backlit by warm light",
                "Batch 7 on the tasting-room table, late afternoon.",
            ),
            PhotoSpec(
                "casks",
                "oak",
                "Rows of oak barrel ends with iron hoops, stacked three high in a warehouse",
                "Batch 7's barrels against the north wall of the old creamery.",
            ),
            PhotoSpec(
                "field",
                "harvest",
                "A field of ripe rye glowing gold under a low evening sun, with a soft line of hills behind",
                "Pat Nolan's rye near Bagenalstown, a week before the 2022 harvest.",
            ),
        ),
    ),
    BatchSpec(
        product_slug="ethiopia-guji-hambela",
        code="B-2026-10",
        slug="guji-hambela-b-2026-10",
        title="Guji Hambela, Washed: Lot 10",
        produced_on=date(2026, 10, 6),
        summary=(
            "A washed Ethiopian lot from six hundred smallholders in Hambela Wamena, roasted light each "
            "Tuesday: bergamot, peach and jasmine."
        ),
        story_markdown=GUJI_STORY,
        facts=(
            ("Region", "Hambela Wamena, Guji zone, Ethiopia"),
            ("Altitude", "2,100 to 2,300 m"),
            ("Variety", "Ethiopian landraces and JARC selections 74110 and 74112"),
            ("Process", "Washed: 36 h underwater fermentation, 12 days on raised beds"),
            ("Harvest", "December 2025 to January 2026"),
            ("Roast level", "Light, for filter; roasted every Tuesday"),
        ),
        photos=(
            PhotoSpec(
                "beans",
                "roasted",
                "Light-roasted coffee beans scattered across a pale linen cloth, in soft focus at the edges",
                "Lot 10 out of the cooling tray on a Tuesday morning.",
            ),
            PhotoSpec(
                "beans",
                "green",
                "Pale green coffee beans spilling across rough jute sacking",
                "The green coffee as it arrived from Hambela, still smelling of the warehouse.",
            ),
        ),
    ),
    BatchSpec(
        product_slug="carlow-rye-whiskey",
        code="B-2026-11",
        slug="winter-rye-oloroso-b-2026-11",
        title="Winter Rye, Oloroso Finish",
        produced_on=date(2026, 11, 6),
        summary=(
            "Rye, barley and oats, three years in bourbon barrels and nine months in oloroso butts from "
            "Jerez: fig, walnut and clove."
        ),
        story_markdown=WINTER_RYE_STORY,
        facts=(
            ("Grain bill", "60% Carlow rye, 30% malted barley, 10% Kilkenny oats"),
            ("Still", "Double-distilled in copper pot stills Maud (2,400 L) and Jack (1,200 L)"),
            ("Cask", "3 years first-fill ex-bourbon, then 9 months in two 500 L oloroso butts"),
            ("Distilled", "January 2023"),
            ("Bottled at", "48% ABV, non-chill-filtered, natural colour, 6 November 2026"),
        ),
        photos=(
            PhotoSpec(
                "bottle",
                "sherry",
                "A bottle of deep copper-red whiskey against a dark background scattered with warm, blurred lights",
                "Winter Rye, the colour all from the oloroso butts.",
            ),
            PhotoSpec(
                "still",
                "copper",
                "The rounded copper pot of a whisky still glowing in the half-light of the still house",
                "Jack, our spirit still, where every drop of Winter Rye was cut by hand.",
            ),
            PhotoSpec(
                "casks",
                "sherry",
                "The wide, dark ends of two sherry butts, their staves stained red",
                "The two oloroso butts, refilled the week after bottling.",
            ),
        ),
    ),
)


def at_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def demo_releases(now: datetime) -> list[ReleaseSpec]:
    """Return the releases, timed around `now`: one sold out, two on sale, one upcoming."""
    upcoming_day = (now + timedelta(days=2)).date() + timedelta(days=1)
    return [
        ReleaseSpec(
            batch_code="B-2026-04",
            slug="quarter-cask-31",
            title="Quarter Cask No. 31, 50 cl",
            price_amount=12500,
            shipping_amount=600,
            total_units=60,
            on_sale_at=at_hour(now - timedelta(days=30)),
            per_customer_limit=2,
            allow_number_choice=False,
            units_sold=58,
            units_withheld=2,  # No. 59 and 60, kept by the maker
            selling_time=timedelta(hours=2),  # it went in an afternoon
        ),
        ReleaseSpec(
            batch_code="B-2026-07",
            slug="rye-batch-7",
            title="Carlow Rye, Batch 7, 70 cl",
            price_amount=8900,
            shipping_amount=600,
            total_units=240,
            on_sale_at=at_hour(now - timedelta(days=2)),
            per_customer_limit=2,
            allow_number_choice=True,
            units_sold=12,
            selling_time=timedelta(hours=40),
        ),
        ReleaseSpec(
            batch_code="B-2026-10",
            slug="guji-hambela-lot-10",
            title="Guji Hambela, Lot 10, 250 g",
            price_amount=2400,
            total_units=500,
            on_sale_at=datetime.combine((now - timedelta(days=6)).date(), time(10, tzinfo=UTC)),
            per_customer_limit=4,
            allow_number_choice=False,
            units_sold=37,
            selling_time=timedelta(days=5),
        ),
        ReleaseSpec(
            batch_code="B-2026-11",
            slug="winter-rye-oloroso",
            title="Winter Rye, Oloroso Finish, 70 cl",
            price_amount=9500,
            shipping_amount=600,
            total_units=120,
            on_sale_at=datetime.combine(upcoming_day, time(10, tzinfo=UTC)),
            per_customer_limit=2,
            allow_number_choice=True,
            early_access=timedelta(days=1),
        ),
    ]


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def seed_demo(session: Session, upload_folder: str, now: datetime) -> list[str]:
    """Load Harrow & Vale's catalogue, photos and releases, skip what exists, and name what was created."""
    if now.tzinfo is None:
        raise ValueError("seed_demo needs an aware UTC `now`")
    now = now.astimezone(UTC)
    created: list[str] = []

    products: dict[str, Product] = {}
    for spec in PRODUCTS:
        product = session.scalar(select(Product).where(Product.slug == spec.slug))
        if product is None:
            product = Product(slug=spec.slug, name=spec.name, category=spec.category, description=spec.description)
            session.add(product)
            created.append(f'product "{spec.name}"')
        products[spec.slug] = product

    batches: dict[str, Batch] = {}
    for spec in BATCHES:
        batch = session.scalar(select(Batch).where(or_(Batch.code == spec.code, Batch.slug == spec.slug)))
        if batch is None:
            batch = create_batch(session, products[spec.product_slug], spec, Path(upload_folder))
            created.append(f'batch {spec.code} "{spec.title}" ({len(spec.facts)} facts, {len(spec.photos)} photos)')
        batches[spec.code] = batch

    session.flush()  # the new batches' ids, for their releases
    for spec in demo_releases(now):
        if session.scalar(select(Release.id).where(Release.slug == spec.slug)) is not None:
            continue
        terms = ReleaseTerms(
            title=spec.title,
            slug=spec.slug,
            price_amount=spec.price_amount,
            currency=CURRENCY,
            total_units=spec.total_units,
            on_sale_at=spec.on_sale_at,
            off_sale_at=None,
            per_customer_limit=spec.per_customer_limit,
            allow_number_choice=spec.allow_number_choice,
            shipping_amount=spec.shipping_amount,
        )
        # The demo's releases opened days ago: a trusted caller may record that; the producer's form may not.
        release = open_release(session, batches[spec.batch_code].id, terms, now, SHOP, allow_past_on_sale=True)
        if spec.early_access is not None:
            release.early_access_at = spec.on_sale_at - spec.early_access
        last_sale = sell_first_units(session, release, spec, now)
        keep_back_units(session, release, spec)
        if spec.units_sold + spec.units_withheld >= spec.total_units:
            # It sold out: from now on a number that comes free goes to its waitlist first.
            release.sold_out_at = last_sale
        kept = f", {spec.units_withheld} kept by the maker" if spec.units_withheld else ""
        created.append(f'release "{spec.title}" ({spec.total_units} numbered, {spec.units_sold} sold{kept})')

    created += seed_shop_pages(session, now)  # settings and footer pages: storefront/demo_pages.py
    session.flush()
    return created


def create_batch(session: Session, product: Product, spec: BatchSpec, upload_folder: Path) -> Batch:
    batch = Batch(
        product=product,
        code=spec.code,
        slug=spec.slug,
        title=spec.title,
        produced_on=spec.produced_on,
        summary=spec.summary,
        story_markdown=spec.story_markdown,
        facts=[
            BatchFact(position=position, label=label, value=value) for position, (label, value) in enumerate(spec.facts)
        ],
    )
    for position, photo in enumerate(spec.photos):
        drawing_path = f"{DEMO_FOLDER}/{spec.slug}-{position + 1}.jpg"
        variants = ensure_photo(upload_folder, drawing_path, photo, f"{DEMO_FOLDER}/{spec.slug}")
        largest = variants[-1]
        batch.images.append(
            BatchImage(
                position=position,
                path=largest["path"],
                alt_text=photo.alt_text,
                caption=photo.caption,
                width=largest["width"],
                height=largest["height"],
                variants=variants,
            )
        )
    session.add(batch)
    return batch


def sell_first_units(session: Session, release: Release, spec: ReleaseSpec, now: datetime) -> datetime | None:
    """Sell the first `units_sold` numbers, in order, to paid orders of one or two; return the last sale's time."""
    rng = random.Random(zlib.crc32(spec.slug.encode()))
    quantities: list[int] = []
    while sum(quantities) < spec.units_sold:
        wanted = min(rng.choice((1, 1, 2)), spec.per_customer_limit)
        quantities.append(min(wanted, spec.units_sold - sum(quantities)))

    # Most buyers come in the first minutes after the release opens; the rest trickle in later.
    selling_ends = min(spec.on_sale_at + spec.selling_time, now - timedelta(minutes=5))
    selling_seconds = max((selling_ends - spec.on_sale_at).total_seconds(), 60.0)
    moments = sorted(spec.on_sale_at + timedelta(seconds=20 + selling_seconds * rng.random() ** 2) for _ in quantities)
    buyer_numbers = rng.sample(range(1, 1000), k=len(quantities))
    orders = [
        Order(
            release_id=release.id,
            email=f"buyer{buyer_number}@example.com",
            buyer_key=f"buyer{buyer_number}@example.com",
            quantity=quantity,
            unit_amount=spec.price_amount,
            shipping_amount=spec.shipping_amount,
            amount_total=quantity * spec.price_amount + spec.shipping_amount,
            currency=CURRENCY,
            status=OrderStatus.PAID,
            created_at=moment,
            **demo_recipient(rng),
        )
        for quantity, moment, buyer_number in zip(quantities, moments, buyer_numbers, strict=True)
    ]
    session.add_all(orders)
    session.flush()

    sold = 0
    for order in orders:
        session.execute(
            update(Unit)
            .where(Unit.release_id == release.id, Unit.number.between(sold + 1, sold + order.quantity))
            .values(status=UnitStatus.SOLD, order_id=order.id, sold_at=order.created_at),
            execution_options={"synchronize_session": False},
        )
        sold += order.quantity
    return orders[-1].created_at if orders else None


def keep_back_units(session: Session, release: Release, spec: ReleaseSpec) -> None:
    """Keep the `units_withheld` numbers after the sold ones back from sale."""
    if spec.units_withheld:
        first = spec.units_sold + 1
        session.execute(
            update(Unit)
            .where(Unit.release_id == release.id, Unit.number.between(first, first + spec.units_withheld - 1))
            .values(status=UnitStatus.WITHHELD),
            execution_options={"synchronize_session": False},
        )


DEMO_FIRST_NAMES = ("Aoife", "Ciarán", "Sinéad", "Tomás", "Niamh", "Pádraig", "Grace", "Eoin", "Saoirse", "Liam")
DEMO_LAST_NAMES = ("Byrne", "Ó Briain", "Murphy", "Kelly", "Walsh", "Nolan", "Doyle", "Ní Bhriain", "Quinn")
# (street, city, postal code, country): the shape Stripe Checkout's shipping_details.address has.
DEMO_ADDRESSES = (
    ("12 Quay Street", "Galway", "H91 E2K3", "IE"),
    ("4 Main Street", "Bagenalstown", "R21 X2Y3", "IE"),
    ("27 South Mall", "Cork", "T12 HX76", "IE"),
    ("9 Rue des Vignes", "Lyon", "69002", "FR"),
    ("Kastanienallee 14", "Berlin", "10435", "DE"),
    ("3 Ormeau Road", "Belfast", "BT7 1EB", "GB"),
    ("Prinsengracht 201", "Amsterdam", "1015 DT", "NL"),
)


def demo_recipient(rng: random.Random) -> dict:
    """A made-up name and address for a demo order, so packing sheets and shipping look like the real thing."""
    street, city, postal_code, country = rng.choice(DEMO_ADDRESSES)
    return {
        "shipping_name": f"{rng.choice(DEMO_FIRST_NAMES)} {rng.choice(DEMO_LAST_NAMES)}",
        "shipping_address": {"line1": street, "city": city, "postal_code": postal_code, "country": country},
    }


# ----------------------------------------------------------------------------------------------------------
# Photos: soft, abstract still lifes drawn with Pillow
# ----------------------------------------------------------------------------------------------------------

PHOTO_SIZE = (1200, 800)
# Drawn at half size and enlarged: the enlargement softens every edge, like a lens with shallow focus.
CANVAS_SIZE = (600, 400)
# The drawing is only the pipeline's input (storefront.photos re-encodes what is served): kept near-lossless.
DRAWING_QUALITY = 92

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    top: Colour  # background, top of the frame
    bottom: Colour  # background, bottom of the frame
    light: Colour  # the warm light source and its reflections
    body: Colour  # the main subject: glass, wood, beans, copper
    shadow: Colour


PALETTES = {
    "amber": Palette((92, 56, 30), (34, 20, 12), (255, 190, 110), (176, 98, 30), (30, 16, 8)),
    "char": Palette((46, 30, 22), (14, 10, 8), (236, 146, 70), (120, 58, 22), (12, 8, 6)),
    "sherry": Palette((70, 26, 26), (20, 9, 10), (246, 150, 96), (132, 40, 26), (16, 6, 6)),
    "oak": Palette((70, 48, 32), (24, 16, 12), (250, 196, 130), (150, 102, 62), (22, 14, 10)),
    "copper": Palette((56, 40, 34), (18, 13, 12), (255, 200, 150), (184, 100, 52), (30, 16, 10)),
    "harvest": Palette((252, 222, 170), (238, 160, 104), (255, 240, 200), (214, 160, 74), (96, 62, 40)),
    "roasted": Palette((240, 232, 218), (212, 196, 174), (255, 250, 240), (132, 82, 48), (70, 44, 28)),
    "green": Palette((128, 102, 70), (78, 60, 40), (240, 226, 190), (196, 186, 140), (46, 34, 22)),
}


def ensure_photo(upload_folder: Path, drawing_path: str, photo: PhotoSpec, folder: str) -> list[dict]:
    """Draw the photo unless its drawing is already there, then put it through the photo pipeline like an upload.

    The drawing (`drawing_path`, kept so a later run need not paint it again) is the "upload"; the pipeline's
    copies go into `folder` and are returned as BatchImage.variants, narrowest first.
    """
    drawing = Path(upload_folder) / drawing_path
    if not drawing.exists():
        drawing.parent.mkdir(parents=True, exist_ok=True)
        rng = random.Random(zlib.crc32(drawing.name.encode()))
        image = paint_photo(photo.subject, PALETTES[photo.palette], rng)
        image.save(drawing, "JPEG", quality=DRAWING_QUALITY, optimize=True, progressive=True)
    prepared = photos.prepare_photo(drawing.read_bytes())
    photos.save_variants(upload_folder, prepared, folder)
    return prepared.describe(folder)


def paint_photo(subject: str, palette: Palette, rng: random.Random) -> Image.Image:
    canvas = vertical_gradient(CANVAS_SIZE, palette.top, palette.bottom)
    PAINTERS[subject](canvas, palette, rng)
    add_grain(canvas, rng, strength=6)
    add_vignette(canvas, strength=0.55)
    photo = canvas.resize(PHOTO_SIZE, Image.Resampling.LANCZOS)
    return photo.filter(ImageFilter.GaussianBlur(0.7))


def mix(first: Colour, second: Colour, amount: float) -> Colour:
    red, green, blue = (round(a + (b - a) * amount) for a, b in zip(first, second, strict=True))
    return red, green, blue


def vertical_gradient(size: tuple[int, int], top: Colour, bottom: Colour) -> Image.Image:
    column = Image.new("RGB", (1, size[1]))
    column.putdata([mix(top, bottom, y / (size[1] - 1)) for y in range(size[1])])
    return column.resize(size, Image.Resampling.BILINEAR)


def new_layer(colour: Colour) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    # Transparent pixels carry the layer's colour, so blurring does not pull dark fringes in from the edges.
    layer = Image.new("RGBA", CANVAS_SIZE, (*colour, 0))
    return layer, ImageDraw.Draw(layer)


def paste_layer(canvas: Image.Image, layer: Image.Image, blur: float = 0.0) -> None:
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
    canvas.paste(layer, (0, 0), layer)


def add_glow(canvas: Image.Image, centre: tuple[float, float], radius: float, colour: Colour, strength: float) -> None:
    """Lighten a soft round patch, as if a lamp or window were just out of focus there."""
    size = max(2, round(radius * 2))
    # radial_gradient() is 0 at the centre and 181 at the middle of each edge (255 only in the corners).
    distance = Image.radial_gradient("L").resize((size, size), Image.Resampling.BILINEAR)
    mask = distance.point(lambda value: round(255 * strength * max(0.0, 1 - value / 181) ** 2.2))
    patch = Image.new("RGB", (size, size), colour)
    canvas.paste(patch, (round(centre[0] - radius), round(centre[1] - radius)), mask)


def add_bokeh(
    canvas: Image.Image, palette: Palette, rng: random.Random, count: int, area: tuple[int, int, int, int]
) -> None:
    """Scatter out-of-focus discs of light over `area`."""
    layer, draw = new_layer(palette.light)
    left, top, right, bottom = area
    for _ in range(count):
        x, y = rng.uniform(left, right), rng.uniform(top, bottom)
        radius = rng.uniform(6, 26)
        tint = mix(palette.light, palette.body, rng.uniform(0, 0.4))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(*tint, rng.randint(40, 120)))
    paste_layer(canvas, layer, blur=3.5)


def add_grain(canvas: Image.Image, rng: random.Random, strength: int) -> None:
    # Drawn at half size and enlarged, so the grain is soft and the JPEG stays small.
    width, height = CANVAS_SIZE[0] // 2, CANVAS_SIZE[1] // 2
    noise = Image.new("L", (width, height))
    noise.putdata([128 + rng.randint(-strength, strength) for _ in range(width * height)])
    noise = noise.resize(CANVAS_SIZE, Image.Resampling.BILINEAR).convert("RGB")
    canvas.paste(ImageChops.add(canvas, noise, scale=1.0, offset=-128))


def add_vignette(canvas: Image.Image, strength: float) -> None:
    distance = Image.radial_gradient("L").resize(CANVAS_SIZE, Image.Resampling.BILINEAR)
    mask = distance.point(lambda value: round(255 * strength * max(0.0, (value - 70) / 185) ** 1.6))
    canvas.paste(Image.new("RGB", CANVAS_SIZE, (8, 5, 4)), (0, 0), mask)


def paint_bottle(canvas: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Paint a backlit bottle and a tumbler on a table, warm out-of-focus lights behind."""
    width, height = CANVAS_SIZE
    table_top = round(height * 0.78)
    add_glow(canvas, (width * rng.uniform(0.2, 0.35), height * 0.3), 260, palette.light, 0.55)
    add_bokeh(canvas, palette, rng, 22, (0, 0, width, table_top - 30))

    table, draw = new_layer(palette.shadow)
    draw.rectangle((0, table_top, width, height), fill=(*mix(palette.body, palette.shadow, 0.6), 235))
    for _ in range(14):  # grain of the wooden table top
        y = rng.uniform(table_top + 4, height)
        draw.line((0, y, width, y + rng.uniform(-6, 6)), fill=(*palette.shadow, 90), width=rng.randint(1, 3))
    paste_layer(canvas, table, blur=1.5)
    add_glow(canvas, (width * 0.45, table_top + 10), 160, palette.light, 0.25)

    centre = width * rng.uniform(0.52, 0.6)
    body_width, body_height, neck_width = 116, 170, 34
    base = table_top + 6
    shoulder = base - body_height
    neck_top = shoulder - 92
    outline = Image.new("L", CANVAS_SIZE, 0)
    shape = ImageDraw.Draw(outline)
    shape.rounded_rectangle((centre - body_width / 2, shoulder, centre + body_width / 2, base), radius=14, fill=255)
    shape.polygon(
        [
            (centre - body_width / 2, shoulder + 16),
            (centre - neck_width / 2, shoulder - 44),
            (centre + neck_width / 2, shoulder - 44),
            (centre + body_width / 2, shoulder + 16),
        ],
        fill=255,
    )
    shape.ellipse((centre - body_width / 2, shoulder - 30, centre + body_width / 2, shoulder + 40), fill=255)
    shape.rectangle((centre - neck_width / 2, neck_top, centre + neck_width / 2, shoulder - 20), fill=255)
    shape.rounded_rectangle(
        (centre - neck_width / 2 - 4, neck_top - 26, centre + neck_width / 2 + 4, neck_top + 4),
        radius=4,
        fill=255,
    )
    outline = outline.filter(ImageFilter.GaussianBlur(1.2))

    glass, draw = new_layer(palette.body)
    draw.rectangle((0, 0, width, height), fill=(*mix(palette.body, palette.shadow, 0.55), 255))
    # The whiskey glows where the light comes through it; the top of the neck is empty, darker glass.
    draw.ellipse(
        (centre - body_width * 0.45, shoulder + 10, centre + body_width * 0.45, base - 8),
        fill=(*mix(palette.body, palette.light, 0.35), 255),
    )
    draw.rectangle(
        (centre - neck_width / 2 - 6, neck_top - 28, centre + neck_width / 2 + 6, neck_top + 4),
        fill=(*palette.shadow, 255),
    )
    glass = glass.filter(ImageFilter.GaussianBlur(10))
    reflection, draw = new_layer(palette.light)
    draw.rounded_rectangle(
        (centre - body_width * 0.36, shoulder + 26, centre - body_width * 0.29, base - 24),
        radius=4,
        fill=(*palette.light, 130),
    )
    draw.line(
        (centre - neck_width * 0.25, neck_top + 6, centre - neck_width * 0.25, shoulder - 30),
        fill=(*palette.light, 90),
        width=3,
    )
    glass.alpha_composite(reflection.filter(ImageFilter.GaussianBlur(2.5)))
    highlight = ImageDraw.Draw(glass)
    label_top = shoulder + body_height * 0.35
    highlight.rectangle(
        (centre - body_width / 2, label_top, centre + body_width / 2, label_top + 58),
        fill=(*mix((236, 226, 204), palette.body, 0.2), 255),
    )
    highlight.line((centre - 26, label_top + 22, centre + 26, label_top + 22), fill=(*palette.shadow, 255), width=3)
    highlight.line((centre - 16, label_top + 36, centre + 16, label_top + 36), fill=(*palette.shadow, 255), width=2)
    glass = glass.filter(ImageFilter.GaussianBlur(0.8))
    glass.putalpha(outline)
    canvas.paste(glass, (0, 0), glass)

    tumbler_left = centre + body_width / 2 + 34
    tumbler, draw = new_layer(palette.body)
    draw.rounded_rectangle(
        (tumbler_left, base - 74, tumbler_left + 66, base),
        radius=6,
        fill=(*mix(palette.light, palette.body, 0.5), 70),
    )
    draw.rounded_rectangle(
        (tumbler_left + 3, base - 34, tumbler_left + 63, base - 3),
        radius=4,
        fill=(*mix(palette.body, palette.light, 0.3), 210),
    )
    draw.line((tumbler_left + 8, base - 70, tumbler_left + 8, base - 8), fill=(*palette.light, 120), width=3)
    paste_layer(canvas, tumbler, blur=1.5)


def paint_casks(canvas: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Paint barrel ends stacked in a warehouse: hoops, staves, rings of darker wood."""
    width, height = CANVAS_SIZE
    add_glow(canvas, (width * 0.15, height * 0.1), 340, palette.light, 0.35)
    radius = rng.uniform(96, 112)
    rows = [(height * 0.22, rng.uniform(-60, 0)), (height * 0.22 + radius * 1.78, rng.uniform(-140, -80))]
    for row_index, (y, offset) in enumerate(rows):
        depth = 1.0 - row_index * 0.15
        x = offset + radius
        while x - radius < width:
            paint_cask_end(canvas, (x, y), radius, palette, rng, depth)
            x += radius * 2.06
    add_glow(canvas, (width * 0.1, height * 0.05), 240, palette.light, 0.3)


def paint_cask_end(
    canvas: Image.Image,
    centre: tuple[float, float],
    radius: float,
    palette: Palette,
    rng: random.Random,
    depth: float,
) -> None:
    cx, cy = centre
    # Light falls from the top left of the frame: casks nearer it are lighter.
    lit = max(0.0, 1.0 - math.hypot(cx, cy) / 700) * depth
    wood = mix(mix(palette.body, palette.shadow, 0.55), palette.light, 0.35 * lit)
    layer, draw = new_layer(wood)

    def circle(scale: float) -> tuple[float, float, float, float]:
        return (cx - radius * scale, cy - radius * scale, cx + radius * scale, cy + radius * scale)

    draw.ellipse(circle(1.0), fill=(*mix(palette.shadow, (60, 60, 60), 0.2), 255))  # the iron hoop
    draw.ellipse(circle(0.93), fill=(*mix(wood, palette.shadow, 0.45), 255))  # the chime, the staves' ends
    draw.ellipse(circle(0.84), fill=(*wood, 255))  # the head
    for ring in range(rng.randint(5, 8)):  # growth rings and the darker marks of wine or spirit
        scale = rng.uniform(0.15, 0.8)
        wobble = rng.uniform(-4, 4)
        draw.ellipse(
            (
                cx - radius * scale + wobble,
                cy - radius * scale,
                cx + radius * scale + wobble,
                cy + radius * scale,
            ),
            outline=(*mix(wood, palette.shadow, 0.35), 110),
            width=1 + ring % 2,
        )
    boards = rng.randint(4, 6)
    for board in range(1, boards):
        x = cx - radius * 0.84 + radius * 1.68 * board / boards
        half_chord = math.sqrt(max(0.0, (radius * 0.84) ** 2 - (x - cx) ** 2))
        draw.line((x, cy - half_chord, x, cy + half_chord), fill=(*mix(wood, palette.shadow, 0.6), 200), width=2)
    paste_layer(canvas, layer, blur=1.0 + (1.0 - depth) * 4)
    # Light catching the upper left of the head, the side facing the warehouse door.
    add_glow(canvas, (cx - radius * 0.3, cy - radius * 0.35), radius * 0.6, palette.light, 0.3 * lit)


def paint_field(canvas: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Paint ripe rye under a low sun, a line of hills, stalks in soft focus at the front."""
    width, height = CANVAS_SIZE
    horizon = round(height * rng.uniform(0.42, 0.48))
    sun = (width * rng.uniform(0.6, 0.75), horizon - 40)
    add_glow(canvas, sun, 300, palette.light, 0.8)
    add_glow(canvas, sun, 60, (255, 252, 240), 0.9)

    hills, draw = new_layer(palette.shadow)
    phase = rng.uniform(0, math.tau)
    outline = [
        (x, horizon - 18 - 16 * math.sin(x / 90 + phase) - 8 * math.sin(x / 37)) for x in range(0, width + 10, 10)
    ]
    draw.polygon(
        [*outline, (width, horizon + 30), (0, horizon + 30)],
        fill=(*mix(palette.shadow, palette.top, 0.45), 200),
    )
    paste_layer(canvas, hills, blur=3)

    field, draw = new_layer(palette.body)
    for y in range(horizon, height):
        shade = (y - horizon) / (height - horizon)
        draw.line(
            (0, y, width, y),
            fill=(*mix(mix(palette.body, palette.light, 0.25), palette.shadow, shade * 0.6), 255),
        )
    paste_layer(canvas, field, blur=1)
    add_glow(canvas, (sun[0], horizon + 10), 200, palette.light, 0.4)

    for blur, count, tallest in ((1.0, 260, 60), (2.5, 90, 150), (6.0, 26, 300)):
        stalks, draw = new_layer(palette.body)
        for _ in range(count):
            x = rng.uniform(-10, width + 10)
            ground = rng.uniform(horizon + tallest * 0.3, height + 20)
            stalk = rng.uniform(0.5, 1.0) * tallest
            lean = rng.uniform(-0.15, 0.25) * stalk
            colour = mix(palette.body, rng.choice((palette.light, palette.shadow)), rng.uniform(0.0, 0.5))
            thickness = max(1, round(tallest / 60))
            draw.line((x, ground, x + lean, ground - stalk), fill=(*colour, 230), width=thickness)
            head = stalk * 0.22
            ear_x, ear_y = x + lean, ground - stalk
            draw.line(
                (ear_x, ear_y, ear_x + lean * 0.25, ear_y - head),
                fill=(*mix(colour, palette.light, 0.3), 240),
                width=thickness * 3,
            )
        paste_layer(canvas, stalks, blur=blur)


def paint_beans(canvas: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Paint coffee beans scattered over cloth, a few in sharp focus, the rest soft."""
    width, height = CANVAS_SIZE
    weave, draw = new_layer(palette.shadow)
    for x in range(0, width, 6):
        draw.line((x, 0, x, height), fill=(*palette.shadow, 18), width=2)
    for y in range(0, height, 6):
        draw.line((0, y, width, y), fill=(*palette.shadow, 14), width=2)
    paste_layer(canvas, weave, blur=1.2)
    add_glow(canvas, (width * 0.3, height * 0.25), 320, palette.light, 0.45)

    for blur, count, size in ((3.5, 40, 26), (0.6, 34, 34), (5.0, 7, 54)):
        beans = Image.new("RGBA", CANVAS_SIZE, (*palette.body, 0))
        for _ in range(count):
            length = size * rng.uniform(0.85, 1.15)
            sprite = bean_sprite(length, length * 0.72, palette, rng)
            sprite = sprite.rotate(rng.uniform(0, 360), resample=Image.Resampling.BICUBIC, expand=True)
            place(beans, sprite, rng.uniform(-20, width), rng.uniform(-20, height))
        paste_layer(canvas, beans, blur=blur)


def bean_sprite(length: float, breadth: float, palette: Palette, rng: random.Random) -> Image.Image:
    margin = 8
    size = (round(length) + 2 * margin, round(breadth) + 2 * margin)
    box = (margin, margin, margin + length, margin + breadth)
    colour = mix(palette.body, palette.shadow, rng.uniform(0.0, 0.35))

    shadow = Image.new("L", size, 0)
    ImageDraw.Draw(shadow).ellipse((box[0] + 3, box[1] + 4, box[2] + 3, box[3] + 4), fill=110)
    shadow = shadow.filter(ImageFilter.GaussianBlur(3))

    bean = Image.new("RGBA", size, (*colour, 255))
    draw = ImageDraw.Draw(bean)
    draw.ellipse(
        (box[0] + length * 0.12, box[1] + breadth * 0.08, box[0] + length * 0.62, box[1] + breadth * 0.42),
        fill=(*mix(colour, palette.light, 0.35), 255),
    )
    bean = bean.filter(ImageFilter.GaussianBlur(breadth / 7))
    draw = ImageDraw.Draw(bean)
    middle = box[1] + breadth * 0.52
    crease = [
        (box[0] + length * t, middle + math.sin(t * math.tau) * breadth * 0.07) for t in (i / 12 for i in range(1, 12))
    ]
    draw.line(crease, fill=(*mix(colour, palette.shadow, 0.7), 255), width=max(2, round(breadth / 9)))
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    bean.putalpha(mask.filter(ImageFilter.GaussianBlur(0.6)))

    sprite = Image.new("RGBA", size, (*palette.shadow, 0))
    sprite.putalpha(shadow)
    sprite.alpha_composite(bean)
    return sprite


def place(layer: Image.Image, sprite: Image.Image, x: float, y: float) -> None:
    """Composite `sprite` onto `layer` with its top left at (x, y), cropping whatever falls outside."""
    left, top = round(x), round(y)
    crop_left, crop_top = max(0, -left), max(0, -top)
    if crop_left >= sprite.width or crop_top >= sprite.height:
        return
    layer.alpha_composite(
        sprite.crop((crop_left, crop_top, sprite.width, sprite.height)), (left + crop_left, top + crop_top)
    )


def paint_still(canvas: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Paint the round copper pot of a still, its neck and lyne arm, in a dark still house."""
    width, height = CANVAS_SIZE
    add_glow(canvas, (width * 0.8, height * 0.15), 260, palette.light, 0.35)
    add_bokeh(canvas, palette, rng, 8, (round(width * 0.6), 0, width, round(height * 0.5)))
    cx, cy = width * rng.uniform(0.4, 0.46), height * 0.74
    radius = height * 0.36

    copper, draw = new_layer(palette.body)
    neck_bottom, neck_top = radius * 0.55, radius * 0.16
    draw.polygon(
        [
            (cx - neck_bottom, cy - radius * 0.7),
            (cx - neck_top, cy - radius * 1.9),
            (cx + neck_top, cy - radius * 1.9),
            (cx + neck_bottom, cy - radius * 0.7),
        ],
        fill=(*mix(palette.body, palette.shadow, 0.35), 255),
    )
    draw.line(
        (cx, cy - radius * 1.85, cx + radius * 0.9, cy - radius * 1.62, width + 20, cy - radius * 1.4),
        fill=(*mix(palette.body, palette.shadow, 0.3), 255),
        width=round(radius * 0.14),
        joint="curve",
    )
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*palette.body, 255))
    paste_layer(canvas, copper, blur=1.2)
    neck_light, draw = new_layer(palette.light)
    draw.line(
        (cx - neck_bottom * 0.6, cy - radius * 0.75, cx - neck_top * 0.5, cy - radius * 1.85),
        fill=(*palette.light, 120),
        width=round(radius * 0.08),
    )
    paste_layer(canvas, neck_light, blur=radius * 0.05)

    # Shade the lower right of the pot, away from the light, without darkening the room around it.
    shading, draw = new_layer(palette.shadow)
    draw.ellipse(
        (cx - radius * 0.55, cy - radius * 0.2, cx + radius * 1.25, cy + radius * 1.4),
        fill=(*palette.shadow, 190),
    )
    shading = shading.filter(ImageFilter.GaussianBlur(radius * 0.35))
    pot = Image.new("L", CANVAS_SIZE, 0)
    ImageDraw.Draw(pot).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    shading.putalpha(ImageChops.multiply(shading.getchannel("A"), pot.filter(ImageFilter.GaussianBlur(1.2))))
    canvas.paste(shading, (0, 0), shading)
    add_glow(canvas, (cx - radius * 0.35, cy - radius * 0.45), radius * 0.55, palette.light, 0.6)

    rivets, draw = new_layer(palette.light)
    for step in range(15):
        angle = math.pi * (1.05 + 0.9 * step / 14)
        x, y = cx + math.cos(angle) * radius * 0.8, cy + math.sin(angle) * radius * 0.22 - radius * 0.35
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(*palette.light, 150))
    glass_x, glass_y = cx + radius * 0.35, cy - radius * 0.3
    draw.ellipse((glass_x - 14, glass_y - 14, glass_x + 14, glass_y + 14), outline=(*palette.shadow, 220), width=4)
    draw.ellipse(
        (glass_x - 10, glass_y - 10, glass_x + 10, glass_y + 10),
        fill=(*mix(palette.light, palette.body, 0.4), 150),
    )
    paste_layer(canvas, rivets, blur=0.8)


PAINTERS: dict[str, Callable[[Image.Image, Palette, random.Random], None]] = {
    "bottle": paint_bottle,
    "casks": paint_casks,
    "field": paint_field,
    "beans": paint_beans,
    "still": paint_still,
}


# ----------------------------------------------------------------------------------------------------------
# The demo's people: a producer who can sign in, and a few confirmed subscribers to announce to
# ----------------------------------------------------------------------------------------------------------

# Printed by `make run` and the README, so a new user can open the workspace at once. Never created in production.
DEMO_PRODUCER_EMAIL = "maker@harrowvale.example"
DEMO_PRODUCER_PASSWORD = "harrow-and-vale-demo"  # noqa: S105 - public on purpose: the demo's own account
DEMO_SUBSCRIBERS = ("niamh@example.com", "tomas@example.com", "grace@example.org")


def seed_demo_people(session: Session, now: datetime) -> list[str]:
    """Create the demo producer account and confirmed subscribers unless they exist; name what was created."""
    from storefront.domain.accounts import create_producer, email_key
    from storefront.models import Subscriber, SubscriberStatus, User

    created: list[str] = []
    if session.scalar(select(User.id).where(User.email_key == email_key(DEMO_PRODUCER_EMAIL))) is None:
        create_producer(session, DEMO_PRODUCER_EMAIL, DEMO_PRODUCER_PASSWORD, now)
        created.append(f"producer account {DEMO_PRODUCER_EMAIL}")
    for address in DEMO_SUBSCRIBERS:
        if session.scalar(select(Subscriber.id).where(Subscriber.email_key == email_key(address))) is None:
            session.add(
                Subscriber(
                    email=address,
                    email_key=email_key(address),
                    status=SubscriberStatus.CONFIRMED,
                    created_at=now,
                    confirmed_at=now,
                )
            )
            created.append(f"subscriber {address}")
    session.flush()
    return created
