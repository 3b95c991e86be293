"""The public side of an announcement: the release's calendar file, the Atom feed, and link-preview tags."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from icalendar import Calendar

from storefront.models import Batch, BatchImage, Release
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release

SHOP_URL = "https://smallbatch.example"
ATOM = "{http://www.w3.org/2005/Atom}"
ON_SALE = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)  # the day after the test clock's start


@pytest.fixture
def app_overrides() -> dict:
    return {"SHOP_URL": SHOP_URL}


# --- The calendar file --------------------------------------------------------------------------------------------


def test_an_upcoming_release_offers_its_calendar_file(app, session, client):
    release = make_release(session, on_sale_at=ON_SALE, units=30)
    session.commit()

    page = client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert f'href="/releases/{release.slug}/calendar.ics"' in page and "Add to calendar" in page

    response = client.get(f"/releases/{release.slug}/calendar.ics")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{release.slug}.ics"'
    calendar = Calendar.from_ical(response.get_data())
    assert str(calendar["METHOD"]) == "PUBLISH" and str(calendar["VERSION"]) == "2.0"
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == ON_SALE
    assert event.decoded("DURATION") == timedelta(minutes=30)
    assert str(event["UID"]) == f"release-{release.id}@smallbatch.example"
    assert str(event["URL"]) == f"{SHOP_URL}/releases/{release.slug}"
    assert f"{SHOP_URL}/releases/{release.slug}" in str(event["DESCRIPTION"])
    assert release.title in str(event["SUMMARY"])
    assert response.get_data() == client.get(f"/releases/{release.slug}/calendar.ics").get_data(), "stable"


def test_a_release_already_on_sale_does_not_offer_a_calendar_file(app, session, client, clock):
    release = make_release(session, on_sale_at=clock() - timedelta(hours=1))
    session.commit()
    assert "Add to calendar" not in client.get(f"/releases/{release.slug}").get_data(as_text=True)


def test_an_unknown_release_has_no_calendar_file(app, client):
    assert client.get("/releases/no-such-release/calendar.ics").status_code == 404


# --- The Atom feed --------------------------------------------------------------------------------------------------


def read_feed(client) -> ElementTree.Element:
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    return ElementTree.fromstring(response.get_data())  # noqa: S314 - the shop's own feed, in a test


def text_of(element: ElementTree.Element, name: str) -> str:
    found = element.find(f"{ATOM}{name}")
    assert found is not None and (found.text or "").strip(), f"<{name}> missing or empty"
    return found.text


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_feed_is_valid_atom_with_absolute_links_newest_first(app, session, client, clock):
    hostile = make_batch(session)
    release = make_release(session, batch=hostile, on_sale_at=ON_SALE)
    newer = make_batch(session)
    with write_transaction(session):
        hostile.title = 'Rye & "friends" <script>alert(1)</script>'
        for row, age in [(hostile, timedelta(days=3)), (release, timedelta(days=1)), (newer, timedelta(hours=1))]:
            row.created_at = row.updated_at = clock() - age

    feed = read_feed(client)

    assert feed.tag == f"{ATOM}feed"
    assert text_of(feed, "id") == f"{SHOP_URL}/"
    assert text_of(feed, "title")
    assert parse_time(text_of(feed, "updated")) == clock() - timedelta(hours=1)
    assert text_of(feed.find(f"{ATOM}author"), "name") == "Small Batch"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {"self": f"{SHOP_URL}/feed.atom", "alternate": f"{SHOP_URL}/"}

    entries = feed.findall(f"{ATOM}entry")
    assert [entry.find(f"{ATOM}link").get("href") for entry in entries] == [
        f"{SHOP_URL}/batches/{newer.slug}",
        f"{SHOP_URL}/releases/{release.slug}",
        f"{SHOP_URL}/batches/{hostile.slug}",
    ]
    for entry in entries:
        assert text_of(entry, "id").startswith("tag:smallbatch.example,")
        text_of(entry, "title")
        text_of(entry, "summary")
        parse_time(text_of(entry, "updated"))
        parse_time(text_of(entry, "published"))
    assert len({text_of(entry, "id") for entry in entries}) == 3
    titles = [text_of(entry, "title") for entry in entries]
    assert 'Rye & "friends" <script>alert(1)</script> (batch ' in titles[2]  # escaped in the XML, intact once read
    assert "<script>" not in client.get("/feed.atom").get_data(as_text=True)


def test_the_feed_keeps_to_the_newest_fifty(app, session, client, clock):
    releases = [make_release(session, on_sale_at=ON_SALE, units=1) for _ in range(30)]
    with write_transaction(session):
        for number, release in enumerate(releases):
            release.updated_at = clock() - timedelta(minutes=number)
            release.batch.updated_at = clock() - timedelta(minutes=number, seconds=30)

    entries = read_feed(client).findall(f"{ATOM}entry")

    assert len(entries) == 50
    times = [parse_time(text_of(entry, "updated")) for entry in entries]
    assert times == sorted(times, reverse=True)


def test_an_empty_shop_has_a_valid_empty_feed(app, client, clock):
    feed = read_feed(client)
    assert feed.findall(f"{ATOM}entry") == []
    assert parse_time(text_of(feed, "updated")) == clock()


def test_every_page_points_feed_readers_at_the_feed(app, client):
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'<link rel="alternate" type="application/atom\+xml"[^>]*href="/feed.atom"', page)


# --- Link previews: Open Graph and Twitter cards --------------------------------------------------------------------


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "meta" and ("property" in attributes or "name" in attributes):
            self.tags[attributes.get("property") or attributes["name"]] = attributes.get("content", "")


def meta_tags(client, path: str) -> dict[str, str]:
    response = client.get(path)
    assert response.status_code == 200
    parser = MetaTags()
    parser.feed(response.get_data(as_text=True))
    return parser.tags


def batch_with_cover(session, variants: list[dict]) -> Batch:
    batch = make_batch(session)
    batch.images.append(
        BatchImage(
            position=0,
            path="batches/cover.jpg",
            alt_text="Casks in the rickhouse",
            width=3000,
            height=2000,
            variants=variants,
        )
    )
    batch.images.append(BatchImage(position=1, path="batches/second.jpg", alt_text="The still"))
    session.flush()
    return batch


VARIANTS = [
    {"width": 480, "height": 320, "path": "batches/cover-480.webp"},
    {"width": 1600, "height": 1067, "path": "batches/cover-1600.webp"},
    {"width": 960, "height": 640, "path": "batches/cover-960.webp"},
]


def test_story_and_release_pages_carry_open_graph_and_twitter_tags_with_the_largest_cover(app, session, client):
    batch = batch_with_cover(session, VARIANTS)
    release: Release = make_release(session, batch=batch, on_sale_at=ON_SALE)
    session.commit()

    for path, kind in [(f"/batches/{batch.slug}", "article"), (f"/releases/{release.slug}", "website")]:
        tags = meta_tags(client, path)
        assert tags["og:type"] == kind
        assert tags["og:site_name"] == "Small Batch"
        assert batch.title in tags["og:title"]
        assert tags["og:description"] == batch.summary
        assert tags["og:url"] == f"{SHOP_URL}{path}"
        assert tags["og:image"] == f"{SHOP_URL}/media/batches/cover-1600.webp"
        assert (tags["og:image:width"], tags["og:image:height"]) == ("1600", "1067")
        assert tags["og:image:alt"] == "Casks in the rickhouse"
        assert tags["twitter:card"] == "summary_large_image"
        assert tags["twitter:image"] == tags["og:image"]
        assert tags["twitter:title"] == tags["og:title"]
    assert release.title in meta_tags(client, f"/releases/{release.slug}")["og:title"]


def test_a_cover_without_variants_is_shared_as_stored(app, session, client):
    batch = batch_with_cover(session, [])
    session.commit()
    tags = meta_tags(client, f"/batches/{batch.slug}")
    assert tags["og:image"] == f"{SHOP_URL}/media/batches/cover.jpg"
    assert (tags["og:image:width"], tags["og:image:height"]) == ("3000", "2000")


def test_a_batch_without_photos_is_shared_without_an_image(app, session, client):
    batch = make_batch(session)
    session.commit()
    tags = meta_tags(client, f"/batches/{batch.slug}")
    assert "og:image" not in tags
    assert tags["twitter:card"] == "summary"
    assert tags["og:url"] == f"{SHOP_URL}/batches/{batch.slug}"
