"""The shop's own pages: shown sanitised at /pages/<kind>, linked from every footer once written, 404 otherwise;
and the age notice on the release and story pages of restricted categories only. On SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from storefront.domain import shop_pages
from storefront.domain.activity import SHOP
from storefront.domain.shop_pages import PageDetails, SettingsDetails
from storefront.extensions import db
from storefront.models import ShopPage
from storefront.unit_of_work import write_transaction
from tests.factories import make_release

FOOTER = re.compile(r'<nav class="site-footer__pages".*?</nav>', re.S)


def write(session, clock, kind, body, title=""):
    with write_transaction(session):
        shop_pages.save_shop_page(session, SHOP, kind, PageDetails(title, body), clock())


def set_up_shop(session, clock, email="orders@harrowvale.ie", age_categories="spirits"):
    with write_transaction(session):
        shop_pages.save_shop_settings(
            session, SHOP, SettingsDetails(email, "within 2 working days", age_categories), clock()
        )


def footer_of(page_text: str) -> list[tuple[str, str]]:
    match = FOOTER.search(page_text)
    return re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', match.group(0)) if match else []


def test_the_footer_links_every_written_page_in_order_on_shop_pages(session, clock, client):
    release = make_release(session)
    write(session, clock, "privacy", "We keep your email.")
    write(session, clock, "shipping", "Ireland: €6 per order.", title="Shipping & delivery")
    write(session, clock, "returns", "")  # saved, but nothing written: not linked
    session.commit()

    expected = [("/pages/shipping", "Shipping &amp; delivery"), ("/pages/privacy", "Privacy")]
    for path in ("/", f"/releases/{release.slug}", f"/batches/{release.batch.slug}", "/login", "/no-such-page"):
        assert footer_of(client.get(path).get_data(as_text=True)) == expected, path


def test_the_footer_asks_the_database_once(app, session, clock, client):
    write(session, clock, "terms", "Every sale is final once paid.")
    session.commit()
    statements = []

    def count(_connection, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = client.get("/login").get_data(as_text=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert footer_of(page) == [("/pages/terms", "Terms of sale")]
    assert len([statement for statement in statements if "shop_page" in statement]) == 1, statements


def test_a_page_with_scripts_handlers_and_javascript_links_is_shown_without_them(session, clock, client):
    write(
        session,
        clock,
        "terms",
        "## Sale\n\nPaid means sold. <script>alert('x')</script>\n\n"
        '<img src="/static/img/favicon.svg" onerror="alert(1)" alt="mark">\n\n'
        "[click me](javascript:alert(1)) and [our site](https://harrowvale.example)",
    )
    session.commit()

    response = client.get("/pages/terms")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    body = page.split('class="story shop-page__body">')[1].split("</div>")[0]
    assert "<h2>Sale</h2>" in body and "Paid means sold." in body
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body
    assert '<a href="https://harrowvale.example" rel="noopener noreferrer nofollow">our site</a>' in body
    assert "<title>Terms of sale · " in page


def test_the_contact_page_gives_the_contact_address(session, clock, client):
    set_up_shop(session, clock)
    write(session, clock, "contact", "We answer within a day.")
    session.commit()

    page = client.get("/pages/contact").get_data(as_text=True)

    assert '<a href="mailto:orders@harrowvale.ie">orders@harrowvale.ie</a>' in page


@pytest.mark.parametrize("path", ["/pages/returns", "/pages/cookies", "/pages/%3Cscript%3E"])
def test_unknown_and_unwritten_pages_are_not_found_in_the_shops_voice(session, clock, client, path):
    write(session, clock, "returns", "")
    session.commit()

    response = client.get(path)

    assert response.status_code == 404
    assert "The shop has no page at this address." in response.get_data(as_text=True)


def test_the_age_notice_is_shown_for_restricted_categories_only(session, clock, client):
    restricted = make_release(session)  # the factory's products are "spirits"
    coffee = make_release(session)
    coffee.batch.product.category = "Coffee"
    session.commit()
    notice = "For adults only:"

    assert notice not in client.get(f"/releases/{restricted.slug}").get_data(as_text=True)  # nothing set yet

    set_up_shop(session, clock, age_categories="Spirits, Gin")
    session.commit()
    release_page = client.get(f"/releases/{restricted.slug}").get_data(as_text=True)
    assert notice in release_page and "/pages/age-notice" not in release_page  # the age page is not written yet
    assert notice not in client.get(f"/releases/{coffee.slug}").get_data(as_text=True)
    assert notice not in client.get(f"/batches/{coffee.batch.slug}").get_data(as_text=True)

    write(session, clock, "age-notice", "You must be 18 or over to buy spirits in Ireland.")
    session.commit()
    for path in (f"/releases/{restricted.slug}", f"/batches/{restricted.batch.slug}"):
        page = client.get(path).get_data(as_text=True)
        assert notice in page, path
        assert re.search(r'class="age-notice".*?<a href="/pages/age-notice">Age notice', page, re.S), path


def test_a_500_page_keeps_its_footer_without_links_when_the_database_fails(app, session, clock, client):
    write(session, clock, "shipping", "Ireland: €6 per order.")
    session.commit()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def fail():
        session.execute(db.text("SELECT * FROM no_such_table"))  # leaves the transaction failed on PostgreSQL

    app.add_url_rule("/_broken", "broken", fail)
    with pytest.MonkeyPatch.context() as patch:
        # The database is unusable for the rest of the request: the footer's own query fails too.
        patch.setattr(
            "storefront.pages.views.footer_links", lambda _session: session.execute(db.text("SELECT x FROM nope"))
        )
        response = client.get("/_broken")

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert 'class="site-footer"' in page and "site-footer__pages" not in page
    assert session.query(ShopPage).count() == 1  # and the session is usable again afterwards


def test_the_demo_writes_all_six_pages_and_marks_its_whiskey_for_adults(app, session, client):
    result = app.test_cli_runner().invoke(args=["storefront", "seed-demo"])
    assert result.exit_code == 0, result.output
    assert 'page "Age notice"' in result.output

    home = client.get("/").get_data(as_text=True)
    assert [title for _, title in footer_of(home)] == [
        "Shipping",
        "Returns",
        "Contact",
        "Terms of sale",
        "Privacy",
        "Age notice",
    ]
    shipping = client.get("/pages/shipping").get_data(as_text=True)
    assert "€6.00" in shipping and "Free" in shipping and "<table>" in shipping
    assert "mailto:orders@harrowvale.example" in client.get("/pages/contact").get_data(as_text=True)
    whiskey = client.get("/releases/rye-batch-7").get_data(as_text=True)
    assert "For adults only:" in whiskey and 'href="/pages/age-notice"' in whiskey
    assert "For adults only:" not in client.get("/releases/guji-hambela-lot-10").get_data(as_text=True)

    again = app.test_cli_runner().invoke(args=["storefront", "seed-demo"])
    assert "nothing to do" in again.output
