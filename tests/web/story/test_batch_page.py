"""The batch story page: Markdown rendered and sanitised, provenance, photos, releases."""

from datetime import UTC, datetime, timedelta

from storefront.models import BatchImage
from tests.factories import make_batch, make_release

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)

HOSTILE_STORY = """## Rye from the river farm

We malt it **ourselves**.

<script>alert("stolen")</script>
<img src="x" onerror="alert(1)">
[click me](javascript:alert(2))
<a href="https://example.com/farm" onclick="steal()">the farm</a>
"""


def test_story_is_rendered_from_markdown_and_sanitised(app, session, client, clock):
    batch = make_batch(session, story=HOSTILE_STORY)
    session.commit()

    response = client.get(f"/batches/{batch.slug}")
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "<h2>Rye from the river farm</h2>" in page
    assert "<strong>ourselves</strong>" in page
    assert "<script>alert" not in page
    assert "onerror" not in page and "onclick" not in page
    assert "javascript:" not in page
    assert 'href="https://example.com/farm"' in page


def test_story_page_shows_facts_photos_and_releases_with_stock(app, session, client, clock):
    clock.set(ON_SALE + timedelta(hours=1))
    batch = make_batch(session)
    batch.images.append(BatchImage(position=0, path="demo/cask.jpg", alt_text="Casks stacked in the warehouse"))
    release = make_release(session, batch=batch, units=12, on_sale_at=ON_SALE)
    session.commit()

    page = client.get(f"/batches/{batch.slug}").get_data(as_text=True)

    assert batch.code in page
    assert "Ex-bourbon, first fill" in page
    assert 'alt="Casks stacked in the warehouse"' in page
    assert 'src="/media/demo/cask.jpg"' in page
    assert f'href="/releases/{release.slug}"' in page
    assert "12 of 12 left" in page.replace("<span data-available>", "").replace("</span>", "")
