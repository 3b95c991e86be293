"""The producer's catalogue: products, their batches (provenance facts and story) and each batch's photos.

Every function takes the session of an open write transaction, plain values and an explicit `now`; it flushes but
never commits, records one activity line per change, and raises a CatalogError whose message (and `field`, the
form field it belongs to) is fit to show the producer.

Slugs and batch codes are unique: a taken one is refused before anything is written, and should two producers take
the same one at the same instant, the database's unique constraint refuses the second inside a savepoint and the
same CatalogError is raised, so the caller rolls back a transaction that holds nothing half-made.

Facts and photos have a unique (batch_id, position): they are renumbered through temporary negative positions, so
no intermediate state ever has two rows in one place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storefront.database import require_write_transaction
from storefront.domain.activity import Actor, record_activity
from storefront.domain.errors import DomainError
from storefront.models import Batch, BatchFact, BatchImage, Product
from storefront.models.catalog import SLUG_PATTERN

# Lengths of the columns in storefront/models/catalog.py.
MAX_NAME = 200
MAX_CATEGORY = 60
MAX_SLUG = 120
MAX_CODE = 40
MAX_TITLE = 200
MAX_SUMMARY = 400
MAX_FACT_LABEL = 80
MAX_FACT_VALUE = 400
MAX_FACTS = 40
MAX_ALT_TEXT = 300
MAX_CAPTION = 300
# Text columns, bounded anyway: a story is long, a novel is not.
MAX_DESCRIPTION = 5_000
MAX_STORY = 60_000


class CatalogError(DomainError):
    """A catalogue change the shop refuses; `field` names the form field the message is about (None: the form)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(CatalogError):
    """The product, batch or photo does not exist (or the photo is not one of this batch's)."""


class AlreadyTaken(CatalogError):
    """Another product or batch already has this slug or code."""


class DuplicatePhoto(CatalogError):
    """The same file is already one of this batch's photos."""


@dataclass(frozen=True)
class ProductDetails:
    """What the producer enters for a product; a blank slug is made from the name."""

    name: str
    category: str = ""
    description: str = ""
    slug: str = ""


@dataclass(frozen=True)
class BatchDetails:
    """What the producer enters for a batch; a blank slug is made from the title. Facts are (label, value) rows in
    order; rows with both parts blank are ignored."""

    code: str
    title: str
    produced_on: date
    summary: str = ""
    story_markdown: str = ""
    slug: str = ""
    facts: Sequence[tuple[str, str]] = field(default_factory=tuple)


class Positioned(Protocol):
    position: int


# --- Slugs and text ---------------------------------------------------------------------------------------------------

NOT_SLUG_CHARACTERS = re.compile(r"[^a-z0-9]+")


def slugify(text: str, max_length: int = MAX_SLUG) -> str:
    """Make a URL slug: "Batch 7: Carlow Rye, Três Invernos" -> "batch-7-carlow-rye-tres-invernos" ("" if nothing
    usable is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = NOT_SLUG_CHARACTERS.sub("-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        slug = slug[:max_length].rstrip("-")
        # Cut at a word boundary when one is near, so the slug does not end in half a word.
        if "-" in slug[max_length // 2 :]:
            slug = slug.rsplit("-", 1)[0]
    return slug


def required_text(value: str | None, maximum: int, field_name: str, missing: str, label: str) -> str:
    text = (value or "").strip()
    if not text:
        raise CatalogError(missing, field_name)
    return limited_text(text, maximum, field_name, label)


def limited_text(value: str | None, maximum: int, field_name: str, label: str) -> str:
    text = (value or "").strip()
    if len(text) > maximum:
        raise CatalogError(f"{label} can be at most {maximum:,} characters (it is {len(text):,}).", field_name)
    return text


def choose_slug(typed: str | None, derived_from: str, what: str) -> str:
    """The slug the producer typed (tidied into slug form), or one made from the name or title."""
    slug = slugify(typed or "") if (typed or "").strip() else slugify(derived_from)
    if not slug or not SLUG_PATTERN.match(slug):
        raise CatalogError(
            f"Choose a web address for the {what}: lowercase letters a to z, digits and hyphens, e.g. rye-batch-7.",
            "slug",
        )
    return slug


def clean_facts(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep the filled-in rows, in order; a row with only one of label and value is a mistake worth pointing out."""
    facts = []
    for number, (label, value) in enumerate(rows, start=1):
        label, value = (label or "").strip(), (value or "").strip()
        if not label and not value:
            continue
        if not label or not value:
            missing = "a label" if not label else "a value"
            raise CatalogError(f"Provenance row {number} needs {missing} as well (or leave both empty).", "facts")
        if len(label) > MAX_FACT_LABEL:
            raise CatalogError(f"Provenance row {number}: a label can be at most {MAX_FACT_LABEL} characters.", "facts")
        if len(value) > MAX_FACT_VALUE:
            raise CatalogError(f"Provenance row {number}: a value can be at most {MAX_FACT_VALUE} characters.", "facts")
        facts.append((label, value))
    if len(facts) > MAX_FACTS:
        raise CatalogError(f"A batch can have at most {MAX_FACTS} provenance facts.", "facts")
    return facts


# --- Uniqueness ---------------------------------------------------------------------------------------------------


def slug_taken(what: str, slug: str) -> AlreadyTaken:
    return AlreadyTaken(f"Another {what} already uses the web address “{slug}”: choose another.", "slug")


def code_taken(code: str) -> AlreadyTaken:
    return AlreadyTaken(f"Another batch already has the code “{code}”: batch codes are unique.", "code")


def violated(error: IntegrityError, table: str, column: str) -> bool:
    """True if `error` is the unique constraint on table.column (PostgreSQL names it, SQLite names the column)."""
    message = str(error.orig)
    return f"uq_{table}_{column}" in message or f"{table}.{column}" in message


def write_unique(
    session: Session, translations: Mapping[tuple[str, str], CatalogError], change: Callable[[], object]
) -> None:
    """Make `change` and flush it inside a savepoint; a unique constraint in `translations` becomes that error.

    The check before writing covers the ordinary case; this covers two transactions taking the same slug or code at
    once (on PostgreSQL the second waits for the first, then fails here). Whatever was pending before is flushed
    first, outside the savepoint (begin_nested would flush it there anyway), so the savepoint holds only `change`
    and rolling it back leaves the transaction usable.
    """
    session.flush()
    try:
        with session.begin_nested():
            change()
    except IntegrityError as error:
        for (table, column), refusal in translations.items():
            if violated(error, table, column):
                raise refusal from error
        raise


def refuse_taken_product_slug(session: Session, slug: str, product_id: int | None) -> None:
    query = select(Product.id).where(Product.slug == slug)
    if product_id is not None:
        query = query.where(Product.id != product_id)
    if session.scalar(query.limit(1)) is not None:
        raise slug_taken("product", slug)


def refuse_taken_batch_code_or_slug(session: Session, code: str, slug: str, batch_id: int | None) -> None:
    others = select(Batch.id)
    if batch_id is not None:
        others = others.where(Batch.id != batch_id)
    # Codes differ only in case ("b-2026-07") by mistake, never on purpose: refuse those too.
    if session.scalar(others.where(func.lower(Batch.code) == code.lower()).limit(1)) is not None:
        raise code_taken(code)
    if session.scalar(others.where(Batch.slug == slug).limit(1)) is not None:
        raise slug_taken("batch", slug)


# --- Products -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanProduct:
    name: str
    category: str
    description: str
    slug: str


def clean_product(details: ProductDetails) -> CleanProduct:
    name = required_text(details.name, MAX_NAME, "name", "Give the product a name.", "A name")
    return CleanProduct(
        name=name,
        category=limited_text(details.category, MAX_CATEGORY, "category", "A category"),
        description=limited_text(details.description, MAX_DESCRIPTION, "description", "A description"),
        slug=choose_slug(details.slug, name, "product"),
    )


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound("There is no such product.")
    return product


def create_product(session: Session, actor: Actor, details: ProductDetails, now: datetime) -> Product:
    """Create a product; refuse a slug another product has."""
    require_write_transaction(session)
    clean = clean_product(details)
    refuse_taken_product_slug(session, clean.slug, None)
    product = Product(
        slug=clean.slug, name=clean.name, category=clean.category, description=clean.description, created_at=now
    )
    write_unique(session, {("product", "slug"): slug_taken("product", clean.slug)}, lambda: session.add(product))
    record_activity(session, actor, "created", "product", product.id, f"product “{product.name}” created", now)
    return product


def edit_product(session: Session, actor: Actor, product_id: int, details: ProductDetails, now: datetime) -> Product:
    """Change a product's name, category, description or slug."""
    require_write_transaction(session)
    product = get_product(session, product_id)
    clean = clean_product(details)
    refuse_taken_product_slug(session, clean.slug, product.id)
    changed = changed_fields(
        product,
        {"name": clean.name, "category": clean.category, "description": clean.description, "slug": clean.slug},
    )

    def change() -> None:
        product.name, product.category, product.description = clean.name, clean.category, clean.description
        product.slug = clean.slug

    write_unique(session, {("product", "slug"): slug_taken("product", clean.slug)}, change)
    record_activity(
        session, actor, "edited", "product", product.id, f"product “{product.name}” edited{listed(changed)}", now
    )
    return product


def changed_fields(record: object, values: Mapping[str, object]) -> list[str]:
    return [name for name, value in values.items() if getattr(record, name) != value]


def listed(changed: Sequence[str]) -> str:
    readable = [name.replace("_markdown", "").replace("_", " ") for name in changed]
    return f" ({', '.join(readable)})" if readable else " (nothing changed)"


# --- Batches ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanBatch:
    code: str
    title: str
    slug: str
    produced_on: date
    summary: str
    story_markdown: str
    facts: list[tuple[str, str]]


def clean_batch(details: BatchDetails) -> CleanBatch:
    code = required_text(details.code, MAX_CODE, "code", "Give the batch its code, e.g. B-2026-07.", "A code")
    title = required_text(details.title, MAX_TITLE, "title", "Give the batch a title.", "A title")
    if not isinstance(details.produced_on, date):
        raise CatalogError("Enter the date the batch was produced.", "produced_on")
    return CleanBatch(
        code=code,
        title=title,
        slug=choose_slug(details.slug, title, "batch"),
        produced_on=details.produced_on,
        summary=limited_text(details.summary, MAX_SUMMARY, "summary", "A summary"),
        # Not stripped: leading spaces mean something in Markdown (an indented code block).
        story_markdown=limited_story(details.story_markdown),
        facts=clean_facts(details.facts),
    )


def limited_story(story: str | None) -> str:
    story = (story or "").replace("\r\n", "\n").rstrip()
    if len(story) > MAX_STORY:
        raise CatalogError(f"A story can be at most {MAX_STORY:,} characters (it is {len(story):,}).", "story_markdown")
    return story


def get_batch(session: Session, batch_id: int, *, lock: bool = False) -> Batch:
    """The batch; with `lock`, its row is locked until the transaction ends (PostgreSQL; SQLite's write transaction
    already excludes every other writer), so changes to its photos and facts are made one at a time."""
    query = select(Batch).where(Batch.id == batch_id)
    if lock:
        query = query.with_for_update()
    batch = session.scalar(query)
    if batch is None:
        raise NotFound("There is no such batch.")
    return batch


def batch_uniques(clean: CleanBatch) -> dict[tuple[str, str], CatalogError]:
    return {("batch", "code"): code_taken(clean.code), ("batch", "slug"): slug_taken("batch", clean.slug)}


def create_batch(session: Session, actor: Actor, product_id: int, details: BatchDetails, now: datetime) -> Batch:
    """Create a batch of a product with its facts; refuse a code or slug another batch has."""
    require_write_transaction(session)
    product = get_product(session, product_id)
    clean = clean_batch(details)
    refuse_taken_batch_code_or_slug(session, clean.code, clean.slug, None)
    # By id, not `product=product`: the backref would put the batch in the session (through the product) before
    # write_unique's savepoint.
    batch = Batch(
        product_id=product.id,
        code=clean.code,
        slug=clean.slug,
        title=clean.title,
        produced_on=clean.produced_on,
        summary=clean.summary,
        story_markdown=clean.story_markdown,
        created_at=now,
        updated_at=now,
        facts=[
            BatchFact(position=position, label=label, value=value)
            for position, (label, value) in enumerate(clean.facts)
        ],
    )
    write_unique(session, batch_uniques(clean), lambda: session.add(batch))
    record_activity(
        session,
        actor,
        "created",
        "batch",
        batch.id,
        f"batch {batch.code} “{batch.title}” of {product.name} created",
        now,
    )
    return batch


def edit_batch(session: Session, actor: Actor, batch_id: int, details: BatchDetails, now: datetime) -> Batch:
    """Change a batch's details and replace its facts with `details.facts`, in that order."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    clean = clean_batch(details)
    refuse_taken_batch_code_or_slug(session, clean.code, clean.slug, batch.id)
    values = {
        "code": clean.code,
        "title": clean.title,
        "slug": clean.slug,
        "produced_on": clean.produced_on,
        "summary": clean.summary,
        "story_markdown": clean.story_markdown,
    }
    changed = changed_fields(batch, values)
    if [(fact.label, fact.value) for fact in batch.facts] != clean.facts:
        changed.append("facts")

    def change() -> None:
        for name, value in values.items():
            setattr(batch, name, value)
        batch.updated_at = now

    write_unique(session, batch_uniques(clean), change)
    replace_facts(session, batch, clean.facts)
    record_activity(
        session, actor, "edited", "batch", batch.id, f"batch {batch.code} “{batch.title}” edited{listed(changed)}", now
    )
    return batch


def replace_facts(session: Session, batch: Batch, facts: Sequence[tuple[str, str]]) -> None:
    """Make the batch's facts exactly `facts`, in order: rows are reused in place, extras deleted, new ones added."""
    existing = list(batch.facts)
    kept, extra = existing[: len(facts)], existing[len(facts) :]
    for fact in extra:
        batch.facts.remove(fact)  # delete-orphan: deleted at the flush
    session.flush()
    renumber(session, kept)
    for fact, (label, value) in zip(kept, facts, strict=False):
        fact.label, fact.value = label, value
    for position in range(len(kept), len(facts)):
        label, value = facts[position]
        batch.facts.append(BatchFact(position=position, label=label, value=value))
    session.flush()


def renumber(session: Session, rows: Sequence[Positioned]) -> None:
    """Give `rows` the positions 0, 1, 2... in this order without two rows ever sharing a position.

    The unique (batch_id, position) is checked row by row as each UPDATE runs, so swapping two rows directly would
    collide; every row first moves to a negative position, then to its final one.
    """
    if all(row.position == index for index, row in enumerate(rows)):
        return
    for index, row in enumerate(rows):
        row.position = -(index + 1)
    session.flush()
    for index, row in enumerate(rows):
        row.position = index
    session.flush()


# --- Photos -------------------------------------------------------------------------------------------------------


def clean_alt_text(alt_text: str | None) -> str:
    return required_text(
        alt_text,
        MAX_ALT_TEXT,
        "alt_text",
        "Describe the photo for people who cannot see it (alt text), e.g. “Oak casks stacked three high”.",
        "A description",
    )


def clean_variants(variants: Sequence[Mapping[str, object]]) -> list[dict]:
    """The pipeline's copies, narrowest first; refuse an empty or malformed list (a bug, but never stored)."""
    cleaned = []
    for variant in variants:
        width, height, path = variant.get("width"), variant.get("height"), variant.get("path")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0 and path):
            raise CatalogError("The photo's copies are incomplete; upload it again.", "photo")
        cleaned.append({"width": width, "height": height, "path": str(path)})
    if not cleaned:
        raise CatalogError("The photo has no copies to show; upload it again.", "photo")
    return sorted(cleaned, key=lambda variant: variant["width"])


def ordered_images(batch: Batch) -> list[BatchImage]:
    return sorted(batch.images, key=lambda image: image.position)


def get_photo(batch: Batch, photo_id: int) -> BatchImage:
    for image in batch.images:
        if image.id == photo_id:
            return image
    raise NotFound("This batch has no such photo.")


def photo_label(image: BatchImage) -> str:
    text = image.alt_text if len(image.alt_text) <= 60 else image.alt_text[:59] + "…"
    return f"“{text}”"


def image_paths(image: BatchImage) -> set[str]:
    return {image.path, *(str(variant.get("path")) for variant in image.variants or [])}


def add_photo(
    session: Session,
    actor: Actor,
    batch_id: int,
    variants: Sequence[Mapping[str, object]],
    alt_text: str,
    caption: str,
    now: datetime,
) -> BatchImage:
    """Add a photo after the batch's others; `variants` are the pipeline's copies ({"width", "height", "path"})."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    alt_text = clean_alt_text(alt_text)
    caption = limited_text(caption, MAX_CAPTION, "caption", "A caption")
    copies = clean_variants(variants)
    largest = copies[-1]
    images = ordered_images(batch)
    for number, image in enumerate(images, start=1):
        if largest["path"] in image_paths(image):
            raise DuplicatePhoto(f"This photo is already photo {number} of this batch.", "photo")
    image = BatchImage(
        batch=batch,
        position=images[-1].position + 1 if images else 0,
        path=largest["path"],
        width=largest["width"],
        height=largest["height"],
        alt_text=alt_text,
        caption=caption,
        variants=copies,
    )
    session.add(image)
    session.flush()
    cover = " as its cover" if not images else ""
    record_activity(
        session,
        actor,
        "added photo",
        "batch",
        batch.id,
        f"photo {photo_label(image)} added to batch {batch.code}{cover}",
        now,
    )
    return image


def edit_photo(
    session: Session, actor: Actor, batch_id: int, photo_id: int, alt_text: str, caption: str, now: datetime
) -> BatchImage:
    """Change a photo's alt text and caption."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    image = get_photo(batch, photo_id)
    image.alt_text = clean_alt_text(alt_text)
    image.caption = limited_text(caption, MAX_CAPTION, "caption", "A caption")
    session.flush()
    record_activity(
        session,
        actor,
        "edited photo",
        "batch",
        batch.id,
        f"photo {photo_label(image)} of batch {batch.code} edited",
        now,
    )
    return image


def remove_photo(session: Session, actor: Actor, batch_id: int, photo_id: int, now: datetime) -> list[str]:
    """Delete a photo; the next one becomes the cover if it was. Return the files no other photo uses, for the caller
    to remove once the transaction has committed."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    image = get_photo(batch, photo_id)
    was_cover = ordered_images(batch)[0] is image
    batch.images.remove(image)  # delete-orphan: deleted at the flush
    session.flush()
    remaining = ordered_images(batch)
    renumber(session, remaining)
    still_used = set().union(*(image_paths(other) for other in remaining)) if remaining else set()
    summary = f"photo {photo_label(image)} removed from batch {batch.code}"
    if was_cover and remaining:
        summary += f"; {photo_label(remaining[0])} is now the cover"
    record_activity(session, actor, "removed photo", "batch", batch.id, summary, now)
    return sorted(image_paths(image) - still_used)


def move_photo(session: Session, actor: Actor, batch_id: int, photo_id: int, offset: int, now: datetime) -> bool:
    """Move a photo `offset` places (-1: up, towards the cover; +1: down). Return False if it cannot move that way."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    image = get_photo(batch, photo_id)
    images = ordered_images(batch)
    start = images.index(image)
    end = min(max(start + offset, 0), len(images) - 1)
    if end == start:
        return False
    images.insert(end, images.pop(start))
    renumber(session, images)
    summary = f"photo {photo_label(image)} of batch {batch.code} moved to place {end + 1} of {len(images)}"
    if end == 0:
        summary += " (now the cover)"
    record_activity(session, actor, "moved photo", "batch", batch.id, summary, now)
    return True


def set_cover(session: Session, actor: Actor, batch_id: int, photo_id: int, now: datetime) -> bool:
    """Make a photo the batch's cover (position 0: shown on cards and shared links). False if it already is."""
    require_write_transaction(session)
    batch = get_batch(session, batch_id, lock=True)
    image = get_photo(batch, photo_id)
    images = ordered_images(batch)
    if images[0] is image:
        return False
    images.remove(image)
    images.insert(0, image)
    renumber(session, images)
    record_activity(
        session,
        actor,
        "set cover",
        "batch",
        batch.id,
        f"photo {photo_label(image)} is now the cover of batch {batch.code}",
        now,
    )
    return True
