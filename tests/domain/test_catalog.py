"""The catalogue's rules: products, batches with their facts, photos and their order, and the activity they log."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from storefront.domain import catalog
from storefront.domain.activity import Actor
from storefront.domain.catalog import (
    AlreadyTaken,
    BatchDetails,
    CatalogError,
    DuplicatePhoto,
    NotFound,
    ProductDetails,
    slugify,
)
from storefront.extensions import db
from storefront.models import ActivityEntry, Batch, BatchFact, BatchImage, Product
from storefront.unit_of_work import write_transaction

ANN = Actor(id=None, email="ann@distillery.ie")


def in_transaction(session, operation, *args):
    """Run one domain operation the way a view does: its own write transaction, committed or rolled back."""
    with write_transaction(session):
        return operation(session, ANN, *args)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def activity(session) -> list[tuple[str, str, str]]:
    entries = session.scalars(select(ActivityEntry).order_by(ActivityEntry.id))
    return [(entry.action, entry.subject_type, entry.summary) for entry in entries]


def rye(**changes) -> ProductDetails:
    values = {"name": "Carlow Rye", "category": "Whiskey", "description": "Rye from one field."}
    return ProductDetails(**{**values, **changes})


def batch_details(**changes) -> BatchDetails:
    values = {
        "code": "B-2026-07",
        "title": "Batch 7: Three Winters",
        "produced_on": date(2026, 7, 14),
        "summary": "Our seventh batch.",
        "story_markdown": "## The field\n\nOne field of rye.",
        "facts": [("Cask", "Ex-bourbon"), ("Bottled at", "46% ABV")],
    }
    return BatchDetails(**{**values, **changes})


@pytest.fixture
def product(session, clock) -> Product:
    return in_transaction(session, catalog.create_product, rye(), clock())


@pytest.fixture
def batch(session, clock, product) -> Batch:
    return in_transaction(session, catalog.create_batch, product.id, batch_details(), clock())


# --- Slugs ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Carlow Rye", "carlow-rye"),
        ("Batch 7: Carlow Rye, Três Invernos!", "batch-7-carlow-rye-tres-invernos"),
        ("  --Harrow & Vale--  ", "harrow-vale"),
        ("Crème brûlée", "creme-brulee"),
        ("日本酒", ""),
    ],
)
def test_slugify(text, slug):
    assert slugify(text) == slug


def test_a_long_slug_is_cut_at_a_word():
    slug = slugify("word " * 40)
    assert len(slug) <= 120 and not slug.endswith("-") and slug.endswith("word")


# --- Products -------------------------------------------------------------------------------------------------------


def test_create_product_derives_the_slug_and_logs_it(session, clock):
    product = in_transaction(session, catalog.create_product, rye(), clock())

    assert (product.slug, product.name, product.category) == ("carlow-rye", "Carlow Rye", "Whiskey")
    assert activity(session) == [("created", "product", "product “Carlow Rye” created")]


def test_a_typed_slug_is_tidied_into_slug_form(session, clock):
    product = in_transaction(session, catalog.create_product, rye(slug="  Rye Whiskey! "), clock())

    assert product.slug == "rye-whiskey"


def test_a_name_with_no_usable_slug_asks_for_one(session, clock):
    with pytest.raises(CatalogError, match="Choose a web address") as refusal:
        in_transaction(session, catalog.create_product, rye(name="日本酒"), clock())

    assert refusal.value.field == "slug"
    assert count(session, Product) == 0
    assert in_transaction(session, catalog.create_product, rye(name="日本酒", slug="nihonshu"), clock()).slug


def test_a_duplicate_product_slug_is_refused_and_nothing_is_written(session, clock, product):
    with pytest.raises(AlreadyTaken, match="already uses the web address “carlow-rye”") as refusal:
        in_transaction(session, catalog.create_product, rye(description="Another"), clock())

    assert refusal.value.field == "slug"
    assert count(session, Product) == 1
    assert len(activity(session)) == 1


def test_a_product_name_is_required_and_bounded(session, clock):
    with pytest.raises(CatalogError, match="Give the product a name") as missing:
        in_transaction(session, catalog.create_product, rye(name="   "), clock())
    with pytest.raises(CatalogError, match="at most 200 characters") as long:
        in_transaction(session, catalog.create_product, rye(name="x" * 201), clock())

    assert (missing.value.field, long.value.field) == ("name", "name")


def test_edit_product_keeps_its_slug_unless_changed_and_logs_what_changed(session, clock, product):
    edited = in_transaction(
        session, catalog.edit_product, product.id, rye(name="Carlow Rye Whiskey", slug="carlow-rye"), clock()
    )

    assert (edited.name, edited.slug) == ("Carlow Rye Whiskey", "carlow-rye")
    assert activity(session)[-1] == ("edited", "product", "product “Carlow Rye Whiskey” edited (name)")


def test_edit_product_refuses_another_products_slug(session, clock, product):
    other = in_transaction(session, catalog.create_product, rye(name="Guji Hambela"), clock())

    with pytest.raises(AlreadyTaken):
        in_transaction(session, catalog.edit_product, other.id, rye(name="Guji", slug="carlow-rye"), clock())

    session.expire_all()
    assert session.get(Product, other.id).name == "Guji Hambela"


def test_editing_a_missing_product_is_not_found(session, clock):
    with pytest.raises(NotFound):
        in_transaction(session, catalog.edit_product, 999, rye(), clock())


# --- Batches --------------------------------------------------------------------------------------------------------


def fact_rows(session, batch_id: int) -> list[tuple[int, str, str]]:
    rows = session.scalars(select(BatchFact).where(BatchFact.batch_id == batch_id).order_by(BatchFact.position))
    return [(fact.position, fact.label, fact.value) for fact in rows]


def test_create_batch_with_facts_in_order_and_blank_rows_ignored(session, clock, product):
    details = batch_details(facts=[("Cask", "Ex-bourbon"), ("", ""), ("  Still ", " Maud "), (" ", "")])

    batch = in_transaction(session, catalog.create_batch, product.id, details, clock())

    assert (batch.code, batch.slug, batch.product_id) == ("B-2026-07", "batch-7-three-winters", product.id)
    assert fact_rows(session, batch.id) == [(0, "Cask", "Ex-bourbon"), (1, "Still", "Maud")]
    assert activity(session)[-1] == (
        "created",
        "batch",
        "batch B-2026-07 “Batch 7: Three Winters” of Carlow Rye created",
    )


def test_a_half_filled_fact_is_pointed_out(session, clock, product):
    with pytest.raises(CatalogError, match="Provenance row 2 needs a value") as refusal:
        in_transaction(session, catalog.create_batch, product.id, batch_details(facts=[("A", "1"), ("B", "")]), clock())

    assert refusal.value.field == "facts"
    assert count(session, Batch) == 0 and count(session, BatchFact) == 0


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"code": "B-2026-07"}, "code", "already has the code “B-2026-07”"),
        ({"code": "b-2026-07"}, "code", "already has the code “b-2026-07”"),
        ({"code": "B-2026-08", "slug": "batch-7-three-winters"}, "slug", "already uses the web address"),
    ],
    ids=["same-code", "code-in-other-case", "same-slug"],
)
def test_a_duplicate_batch_code_or_slug_is_refused(session, clock, product, batch, changes, field, message):
    with pytest.raises(AlreadyTaken, match=message) as refusal:
        in_transaction(session, catalog.create_batch, product.id, batch_details(**changes), clock())

    assert refusal.value.field == field
    assert count(session, Batch) == 1
    assert count(session, BatchFact) == 2


def test_a_batch_of_a_missing_product_is_not_found(session, clock):
    with pytest.raises(NotFound):
        in_transaction(session, catalog.create_batch, 999, batch_details(), clock())


def test_edit_batch_replaces_and_reorders_facts(session, clock, batch):
    in_transaction(
        session,
        catalog.edit_batch,
        batch.id,
        batch_details(facts=[("Bottled at", "46% ABV"), ("Still", "Maud"), ("Cask", "Ex-bourbon, first fill")]),
        clock(),
    )
    assert fact_rows(session, batch.id) == [
        (0, "Bottled at", "46% ABV"),
        (1, "Still", "Maud"),
        (2, "Cask", "Ex-bourbon, first fill"),
    ]
    assert activity(session)[-1][2] == "batch B-2026-07 “Batch 7: Three Winters” edited (facts)"

    in_transaction(session, catalog.edit_batch, batch.id, batch_details(facts=[("Cask", "Oak")]), clock())
    assert fact_rows(session, batch.id) == [(0, "Cask", "Oak")]

    in_transaction(session, catalog.edit_batch, batch.id, batch_details(facts=[]), clock())
    assert fact_rows(session, batch.id) == []


def test_edit_batch_copes_with_facts_stored_at_scattered_positions(session, clock, batch):
    # Rows written by other code (the old demo loader, a migration) need not be numbered 0, 1, 2.
    with write_transaction(session):
        for fact in session.scalars(select(BatchFact).where(BatchFact.batch_id == batch.id)):
            fact.position = fact.position * 5 + 3

    in_transaction(
        session,
        catalog.edit_batch,
        batch.id,
        batch_details(facts=[("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")]),
        clock(),
    )

    assert fact_rows(session, batch.id) == [(0, "A", "1"), (1, "B", "2"), (2, "C", "3"), (3, "D", "4")]


def test_edit_batch_keeps_its_own_code_and_logs_each_changed_field(session, clock, batch):
    clock.advance(hours=1)
    edited = in_transaction(
        session,
        catalog.edit_batch,
        batch.id,
        batch_details(title="Batch 7", slug="batch-7-three-winters", story_markdown="New story."),
        clock(),
    )

    assert (edited.code, edited.slug, edited.title, edited.story_markdown) == (
        "B-2026-07",
        "batch-7-three-winters",
        "Batch 7",
        "New story.",
    )
    assert edited.updated_at == clock()
    assert activity(session)[-1][2] == "batch B-2026-07 “Batch 7” edited (title, story)"


def test_edit_batch_refuses_another_batchs_code_and_changes_nothing(session, clock, product, batch):
    other = in_transaction(
        session, catalog.create_batch, product.id, batch_details(code="B-2026-08", title="Eight"), clock()
    )

    with pytest.raises(AlreadyTaken):
        in_transaction(
            session,
            catalog.edit_batch,
            other.id,
            batch_details(code="B-2026-07", title="Renamed", facts=[("X", "Y")]),
            clock(),
        )

    session.expire_all()
    assert session.get(Batch, other.id).title == "Eight"
    assert fact_rows(session, other.id) == [(0, "Cask", "Ex-bourbon"), (1, "Bottled at", "46% ABV")]


def test_the_unique_constraint_is_turned_into_the_same_refusal(session, clock, product):
    # The check before writing is what usually answers; a concurrent transaction can slip past it, and then the
    # constraint does. Here the row is added without the check to reach the constraint on either database.
    with write_transaction(session):
        twin = Product(slug="carlow-rye", name="A twin", category="", description="")
        with pytest.raises(AlreadyTaken) as refusal:
            catalog.write_unique(
                session, {("product", "slug"): catalog.slug_taken("product", "carlow-rye")}, lambda: session.add(twin)
            )
        # The savepoint kept the transaction usable.
        assert session.scalar(select(func.count()).select_from(Product)) == 1
    assert refusal.value.field == "slug"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_batches_taking_one_code_at_once_end_with_one_batch_and_a_clear_refusal(app, session, clock, product):
    now = clock()
    first, second = Session(db.engine), Session(db.engine)
    answer: dict[str, object] = {}

    def create_the_second():
        try:
            with write_transaction(second):
                catalog.create_batch(second, ANN, product.id, batch_details(title="Twin", slug="twin"), now)
            answer["created"] = True
        except CatalogError as refusal:
            answer["refusal"] = refusal

    try:
        with write_transaction(first):
            catalog.create_batch(first, ANN, product.id, batch_details(), now)
            other = threading.Thread(target=create_the_second)
            other.start()
            # The second has passed the check (it cannot see this uncommitted batch) and waits on the unique index.
            wait_until_blocked_by(first, other)
        other.join(timeout=30)
        assert not other.is_alive()
    finally:
        first.close()
        second.close()

    refusal = answer.get("refusal")
    assert isinstance(refusal, AlreadyTaken), answer
    assert refusal.field == "code"
    session.expire_all()
    assert session.scalars(select(Batch.slug)).all() == ["batch-7-three-winters"]
    assert [row for row in activity(session) if row[1] == "batch"] == [
        ("created", "batch", "batch B-2026-07 “Batch 7: Three Winters” of Carlow Rye created")
    ]


def wait_until_blocked_by(session: Session, thread: threading.Thread, timeout: float = 30) -> None:
    """Return once `thread` has finished or another backend waits on a lock this session's transaction holds."""
    backend_pid = session.scalar(select(func.pg_backend_pid()))
    waiting_on_us = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    deadline = time.monotonic() + timeout
    with db.engine.connect() as observer:
        while thread.is_alive():
            if observer.execute(waiting_on_us, {"pid": backend_pid}).scalar():
                return
            observer.rollback()
            assert time.monotonic() < deadline, "the second transaction neither answered nor waited"
            thread.join(timeout=0.01)


# --- Photos ---------------------------------------------------------------------------------------------------------


def copies(name: str, batch_id: int = 1) -> list[dict]:
    return [
        {"width": 960, "height": 640, "path": f"batches/{batch_id}/{name}-960.jpg"},
        {"width": 480, "height": 320, "path": f"batches/{batch_id}/{name}-480.jpg"},
    ]


def add(session, clock, batch, name: str, alt_text: str | None = None, caption: str = "") -> BatchImage:
    return in_transaction(
        session, catalog.add_photo, batch.id, copies(name, batch.id), alt_text or f"Photo {name}", caption, clock()
    )


def order(session, batch_id: int) -> list[tuple[int, str]]:
    images = session.scalars(select(BatchImage).where(BatchImage.batch_id == batch_id).order_by(BatchImage.position))
    return [(image.position, image.alt_text) for image in images]


def test_photos_are_added_in_order_the_first_is_the_cover(session, clock, batch):
    cover = add(session, clock, batch, "a", caption="By the still")
    second = add(session, clock, batch, "b")

    assert order(session, batch.id) == [(0, "Photo a"), (1, "Photo b")]
    assert (cover.path, cover.width, cover.height, cover.caption) == (
        f"batches/{batch.id}/a-960.jpg",
        960,
        640,
        "By the still",
    )
    assert [variant["width"] for variant in cover.variants] == [480, 960]  # stored narrowest first
    assert second.position == 1
    assert [row[0] for row in activity(session)[-2:]] == ["added photo", "added photo"]
    assert activity(session)[-2][2] == f"photo “Photo a” added to batch {batch.code} as its cover"


def test_alt_text_is_required(session, clock, batch):
    with pytest.raises(CatalogError, match="Describe the photo") as refusal:
        in_transaction(session, catalog.add_photo, batch.id, copies("a"), "  ", "", clock())

    assert refusal.value.field == "alt_text"
    assert count(session, BatchImage) == 0


def test_the_same_photo_twice_in_one_batch_is_refused(session, clock, batch):
    add(session, clock, batch, "a")

    with pytest.raises(DuplicatePhoto, match="already photo 1 of this batch"):
        add(session, clock, batch, "a", alt_text="Again")

    assert count(session, BatchImage) == 1


def test_a_photo_needs_its_copies(session, clock, batch):
    with pytest.raises(CatalogError, match="no copies"):
        in_transaction(session, catalog.add_photo, batch.id, [], "Casks", "", clock())
    with pytest.raises(CatalogError, match="incomplete"):
        in_transaction(session, catalog.add_photo, batch.id, [{"width": 0, "path": "x"}], "Casks", "", clock())


def test_moving_photos_up_and_down_swaps_them_without_breaking_the_unique_position(session, clock, batch):
    a, b, c = (add(session, clock, batch, name) for name in "abc")

    assert in_transaction(session, catalog.move_photo, batch.id, c.id, -1, clock()) is True
    assert order(session, batch.id) == [(0, "Photo a"), (1, "Photo c"), (2, "Photo b")]
    assert in_transaction(session, catalog.move_photo, batch.id, c.id, -1, clock()) is True
    assert order(session, batch.id) == [(0, "Photo c"), (1, "Photo a"), (2, "Photo b")]
    assert activity(session)[-1] == (
        "moved photo",
        "batch",
        f"photo “Photo c” of batch {batch.code} moved to place 1 of 3 (now the cover)",
    )
    assert in_transaction(session, catalog.move_photo, batch.id, c.id, -1, clock()) is False  # already first
    assert in_transaction(session, catalog.move_photo, batch.id, b.id, 1, clock()) is False  # already last
    assert in_transaction(session, catalog.move_photo, batch.id, a.id, 1, clock()) is True
    assert order(session, batch.id) == [(0, "Photo c"), (1, "Photo b"), (2, "Photo a")]


def test_set_cover_moves_a_photo_to_the_front(session, clock, batch):
    a, b, c = (add(session, clock, batch, name) for name in "abc")

    assert in_transaction(session, catalog.set_cover, batch.id, c.id, clock()) is True
    assert order(session, batch.id) == [(0, "Photo c"), (1, "Photo a"), (2, "Photo b")]
    assert activity(session)[-1] == ("set cover", "batch", f"photo “Photo c” is now the cover of batch {batch.code}")
    assert in_transaction(session, catalog.set_cover, batch.id, c.id, clock()) is False


def test_removing_a_photo_closes_the_gap_and_names_its_files(session, clock, batch):
    a, b, c = (add(session, clock, batch, name) for name in "abc")

    unused = in_transaction(session, catalog.remove_photo, batch.id, a.id, clock())

    assert unused == [f"batches/{batch.id}/a-480.jpg", f"batches/{batch.id}/a-960.jpg"]
    assert order(session, batch.id) == [(0, "Photo b"), (1, "Photo c")]
    assert activity(session)[-1] == (
        "removed photo",
        "batch",
        f"photo “Photo a” removed from batch {batch.code}; “Photo b” is now the cover",
    )


def test_files_another_photo_still_uses_are_not_named_for_removal(session, clock, batch):
    a = add(session, clock, batch, "a")
    # An older row pointing at the same file (say, from before duplicates were refused).
    with write_transaction(session):
        session.add(BatchImage(batch_id=batch.id, position=5, path=a.path, alt_text="Same file", variants=[]))

    unused = in_transaction(session, catalog.remove_photo, batch.id, a.id, clock())

    assert unused == [f"batches/{batch.id}/a-480.jpg"]


def test_editing_a_photo_changes_its_words(session, clock, batch):
    a = add(session, clock, batch, "a")

    in_transaction(session, catalog.edit_photo, batch.id, a.id, "Oak casks, three high", "In March", clock())

    session.expire_all()
    photo = session.get(BatchImage, a.id)
    assert (photo.alt_text, photo.caption) == ("Oak casks, three high", "In March")
    assert activity(session)[-1][:2] == ("edited photo", "batch")
    with pytest.raises(CatalogError, match="Describe the photo"):
        in_transaction(session, catalog.edit_photo, batch.id, a.id, "", "In March", clock())


def test_a_photo_of_another_batch_is_not_found(session, clock, product, batch):
    other = in_transaction(session, catalog.create_batch, product.id, batch_details(code="B-9", title="Nine"), clock())
    photo = add(session, clock, other, "z")

    for operation, args in [
        (catalog.remove_photo, (batch.id, photo.id)),
        (catalog.move_photo, (batch.id, photo.id, 1)),
        (catalog.set_cover, (batch.id, photo.id)),
        (catalog.edit_photo, (batch.id, photo.id, "Alt", "")),
    ]:
        with pytest.raises(NotFound):
            in_transaction(session, operation, *args, clock())
    assert count(session, BatchImage) == 1


def test_operations_need_a_write_transaction(session, clock):
    from storefront.database import NoWriteTransaction

    with pytest.raises(NoWriteTransaction):
        catalog.create_product(session, ANN, rye(), clock())
