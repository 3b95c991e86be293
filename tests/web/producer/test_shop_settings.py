"""The producer's shop page: settings and footer pages saved through the forms; bad input changes nothing; only
producers get in. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storefront.domain import shop_pages
from storefront.models import ActivityEntry, ShopPage, ShopPageKind
from tests.web.producer.conftest import csrf_from, csrf_token

SETTINGS = {
    "contact_email": "orders@harrowvale.ie",
    "dispatch_time": "within 2 working days",
    "age_restricted_categories": "Whiskey, gin",
}


def post_settings(client, **changes):
    token = csrf_token(client, "/producer/shop")
    return client.post("/producer/shop", data={"csrf_token": token, **SETTINGS, **changes})


def post_page(client, kind, title, body, button="save"):
    token = csrf_from(client.get(f"/producer/shop/pages/{kind}").get_data(as_text=True))
    return client.post(
        f"/producer/shop/pages/{kind}", data={"csrf_token": token, "title": title, "body_markdown": body, button: "1"}
    )


def activity_count(session) -> int:
    return session.scalar(select(func.count()).select_from(ActivityEntry))


def test_the_producer_saves_the_shop_settings(producer_client, session):
    page = producer_client.get("/producer/shop").get_data(as_text=True)
    assert "Shop &amp; pages" in page and 'aria-current="page">Shop &amp; pages' in page
    assert page.count("Not written") == len(ShopPageKind)

    response = post_settings(producer_client)

    assert response.status_code == 303 and response.headers["Location"] == "/producer/shop"
    saved = producer_client.get("/producer/shop").get_data(as_text=True)
    assert "Shop settings saved." in saved and 'value="within 2 working days"' in saved
    settings = shop_pages.shop_settings(session)
    assert (settings.contact_email, settings.age_restricted_categories) == ("orders@harrowvale.ie", "Whiskey, gin")
    assert "shop settings saved: contact orders@harrowvale.ie" in producer_client.get("/producer/activity").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"contact_email": "orders at harrowvale"}, "Enter an email address like orders@example.com."),
        ({"dispatch_time": "soon " * 30}, "Keep the dispatch time under 120 characters."),
        ({"age_restricted_categories": "x" * 401}, "The list can be at most 400 characters."),
    ],
)
def test_bad_settings_are_refused_next_to_their_field_and_change_nothing(producer_client, session, changes, message):
    post_settings(producer_client)
    before = activity_count(session)

    response = post_settings(producer_client, **{**{key: "" for key in SETTINGS}, **changes})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please check" in page and message in page
    assert shop_pages.shop_settings(session).dispatch_time == "within 2 working days"
    assert activity_count(session) == before


def test_a_settings_post_without_its_form_token_saves_nothing(producer_client, session):
    response = producer_client.post("/producer/shop", data=SETTINGS)

    assert response.status_code == 400
    assert shop_pages.shop_settings(session).contact_email == ""


def test_the_producer_writes_a_page_which_joins_the_footer_and_leaves_it_when_emptied(producer_client, session):
    form = producer_client.get("/producer/shop/pages/returns").get_data(as_text=True)
    assert 'value="Returns"' in form  # the usual title until the producer names it

    response = post_page(producer_client, "returns", "Returns & refunds", "## Unopened\n\n14 days, **unopened**.")

    assert response.status_code == 303 and response.headers["Location"] == "/producer/shop/pages/returns"
    assert "is linked from the footer" in producer_client.get("/producer/shop/pages/returns").get_data(as_text=True)
    home = producer_client.get("/").get_data(as_text=True)
    assert '<a href="/pages/returns">Returns &amp; refunds</a>' in home
    public = producer_client.get("/pages/returns").get_data(as_text=True)
    assert "<h2>Unopened</h2>" in public and "<strong>unopened</strong>" in public
    assert "Written" in producer_client.get("/producer/shop").get_data(as_text=True)

    post_page(producer_client, "returns", "Returns & refunds", "   ")

    assert "/pages/returns" not in producer_client.get("/").get_data(as_text=True)
    assert producer_client.get("/pages/returns").status_code == 404
    assert session.scalar(select(ShopPage.title).where(ShopPage.kind == "returns")) == "Returns & refunds"


def test_the_preview_is_sanitised_and_saves_nothing(producer_client, session):
    body = 'Hello <script>alert(1)</script> [x](javascript:alert(1)) <b onclick="alert(2)">bold</b>'

    response = post_page(producer_client, "terms", "Terms", body, button="preview")

    assert response.status_code == 200
    preview = response.get_data(as_text=True).split("data-preview-output>")[1].split("</div>")[0]
    assert "Hello" in preview and "bold" in preview
    assert "<script" not in preview and "javascript:" not in preview and "onclick" not in preview
    assert "(not saved yet)" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(ShopPage)) == 0


def test_an_oversized_page_is_refused_and_changes_nothing(producer_client, session):
    post_page(producer_client, "shipping", "Shipping", "Ireland: €6 per order.")

    response = post_page(producer_client, "shipping", "Shipping " * 20, "x" * (shop_pages.MAX_PAGE_BODY + 1))

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "A page can be at most 20,000 characters." in page and "Keep the title under 120 characters." in page
    assert session.scalar(select(ShopPage.body_markdown).where(ShopPage.kind == "shipping")) == "Ireland: €6 per order."


def test_an_unknown_page_kind_is_not_found(producer_client):
    assert producer_client.get("/producer/shop/pages/cookies").status_code == 404


@pytest.mark.parametrize("path", ["/producer/shop", "/producer/shop/pages/terms"])
def test_only_producers_reach_the_shop_pages(client, customer_user, path):
    assert client.get(path).headers["Location"].startswith("/login?next=")
    from tests.web.producer.conftest import CUSTOMER_EMAIL, sign_in

    sign_in(client, CUSTOMER_EMAIL)
    token = csrf_token(client, "/logout")
    assert client.get(path).status_code == 403
    assert client.post(path, data={"csrf_token": token, **SETTINGS, "body_markdown": "x"}).status_code == 403
