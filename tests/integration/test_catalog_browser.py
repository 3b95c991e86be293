"""A producer in Chromium: a product whose slug follows its name, a batch whose facts are added, moved and removed
with workspace.js, a story previewed as it is typed, a photo uploaded and served with srcset."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import select

from storefront.domain.accounts import create_producer
from storefront.models import Batch, BatchFact
from storefront.unit_of_work import write_transaction

pytestmark = pytest.mark.browser

EMAIL = "ann@distillery.ie"
PASSWORD = "correct horse battery"


def sign_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base_url + "/producer/")


def test_a_producer_builds_a_batch_with_facts_a_previewed_story_and_a_photo(
    app, session, clock, live_server, page: Page, tmp_path
):
    with write_transaction(session):
        create_producer(session, EMAIL, PASSWORD, clock())
    base = live_server.url
    sign_in(page, base)

    # A product: the slug follows the name as it is typed.
    page.goto(base + "/producer/products/new")
    page.get_by_label("Name").press_sequentially("Harrow & Vale Rye")
    expect(page.get_by_label("Web address (slug)")).to_have_value("harrow-vale-rye")
    page.get_by_role("button", name="Create product").click()
    expect(page.get_by_role("heading", name="Harrow & Vale Rye")).to_be_visible()

    # A batch: one empty row to start with (the page has three for browsers without the script); rows are added,
    # one is moved up, and one removed.
    page.get_by_role("link", name="New batch of Harrow & Vale Rye").click()
    page.get_by_label("Batch code").fill("B-2026-07")
    page.get_by_label("Title").fill("Batch 7: Three Winters")
    page.get_by_label("Produced on").fill("2026-07-14")
    rows = page.locator("[data-fact-row]")
    expect(rows).to_have_count(1)
    facts = [("Cask", "Ex-bourbon"), ("Still", "Maud"), ("Bottled at", "46% ABV"), ("Grain", "Carlow rye")]
    for index, (label, value) in enumerate(facts):
        if index:
            page.get_by_role("button", name="Add a fact").click()
            expect(rows).to_have_count(index + 1)
            expect(rows.nth(index).locator("input").nth(0)).to_be_focused()
        rows.nth(index).locator("input").nth(0).fill(label)
        rows.nth(index).locator("input").nth(1).fill(value)
    page.get_by_role("button", name="Move up fact 4").click()
    page.get_by_role("button", name="Remove fact 2").click()
    expect(rows).to_have_count(3)
    expect(rows.nth(1).locator("input").nth(0)).to_have_value("Grain")
    assert rows.nth(1).locator("input").nth(0).get_attribute("name") == "facts-1-label"

    # The story: the preview follows the typing, through the server's sanitiser; a script never runs.
    expect(page.locator("[data-preview-button]")).to_be_hidden()
    story = page.get_by_label("Story")
    story.fill("## The field\n\nOne field of *rye*.\n\n<script>window.pwned = 1</script>\n\n[x](javascript:alert(1))")
    preview = page.locator("[data-preview-output]")
    expect(preview.get_by_role("heading", name="The field")).to_be_visible()
    expect(preview.locator("em")).to_have_text("rye")
    assert preview.locator("script").count() == 0
    assert "javascript:" not in preview.inner_html()
    assert page.evaluate("window.pwned") is None

    page.get_by_role("button", name="Save batch").click()
    expect(page.get_by_text("Batch B-2026-07 created.")).to_be_visible()
    session.expire_all()
    batch = session.scalar(select(Batch))
    facts = session.scalars(select(BatchFact).where(BatchFact.batch_id == batch.id).order_by(BatchFact.position))
    assert [(fact.label, fact.value) for fact in facts] == [
        ("Cask", "Ex-bourbon"),
        ("Grain", "Carlow rye"),
        ("Bottled at", "46% ABV"),
    ]

    # A photo, uploaded from disk, then on the public story page in its widths.
    photo = tmp_path / "casks.jpg"
    buffer = BytesIO()
    Image.new("RGB", (2400, 1600), (150, 90, 40)).save(buffer, "JPEG", quality=85)
    photo.write_bytes(buffer.getvalue())
    page.get_by_label("Photo", exact=True).set_input_files(str(photo))
    page.get_by_label("Description for people who cannot see it (alt text)").fill("Oak casks stacked three high")
    page.get_by_role("button", name="Upload photo").click()
    expect(page.get_by_text("Photo added.")).to_be_visible()
    expect(page.locator(".batch-photos__item")).to_have_count(1)

    page.get_by_role("link", name="View the story page").first.click()
    image = page.get_by_role("img", name="Oak casks stacked three high")
    expect(image).to_have_attribute("srcset", re.compile(r"-480\.jpg 480w, \S+-960\.jpg 960w, \S+-1600\.jpg 1600w$"))
    page.wait_for_function(
        "() => { const img = document.querySelector('.gallery img'); return img.complete && img.naturalWidth > 0 }"
    )
    assert page.evaluate("document.querySelector('.gallery img').currentSrc").endswith(".jpg")
