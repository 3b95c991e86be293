"""Compressed text for browsers that accept it: pages, styles and scripts shrink, photos and the producer's streamed
CSV export go out as they are. On SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import brotli
import pytest

from storefront.domain.accounts import create_producer
from storefront.unit_of_work import write_transaction
from tests.factories import make_release
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, sign_in
from tests.web.shop.test_reserve import ON_SALE
from tests.web.waitlist.test_offers import browser

BROWSER_ENCODINGS = "gzip, deflate, br, zstd"


@pytest.fixture
def client(app):
    return browser(app)


@pytest.fixture
def release(session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=20, on_sale_at=ON_SALE)
    session.commit()
    return release


def test_a_release_page_is_gzipped_for_a_client_that_asks_for_gzip(client, release):
    path = f"/releases/{release.slug}"
    plain = client.get(path)
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})

    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    page = gzip.decompress(zipped.get_data()).decode()
    assert release.title in page
    assert len(zipped.get_data()) < len(plain.get_data()) / 3

    # The compressed copy revalidates like the plain one.
    again = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304


def test_a_browser_gets_brotli_for_pages_and_styles(client, release):
    page = client.get("/", headers={"Accept-Encoding": BROWSER_ENCODINGS})
    assert page.headers["Content-Encoding"] in ("br", "zstd")

    style = client.get("/static/css/shop.css", headers={"Accept-Encoding": "br"})
    assert style.headers["Content-Encoding"] == "br"
    assert b"{" in brotli.decompress(style.get_data())
    style.close()


def test_photos_are_sent_as_they_are(app, client):
    photo = Path(app.config["UPLOAD_FOLDER"]) / "demo" / "cask.jpg"
    photo.parent.mkdir(parents=True, exist_ok=True)
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 4000)
    response = client.get("/media/demo/cask.jpg", headers={"Accept-Encoding": BROWSER_ENCODINGS})
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert response.get_data() == photo.read_bytes()
    response.close()


def test_the_orders_export_still_streams_uncompressed(session, clock, client, release):
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    sign_in(client, PRODUCER_EMAIL)
    response = client.get("/producer/orders.csv", headers={"Accept-Encoding": BROWSER_ENCODINGS})
    assert response.status_code == 200
    assert response.is_streamed
    assert "Content-Encoding" not in response.headers
    assert response.get_data().startswith(b"\xef\xbb\xbf")
