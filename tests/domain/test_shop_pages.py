"""The shop's settings and footer pages: saving, emptying, refusing, and which categories carry the age notice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storefront.domain import shop_pages
from storefront.domain.activity import Actor
from storefront.domain.shop_pages import PageDetails, SettingsDetails, ShopPageError, UnknownPage
from storefront.models import ActivityEntry, ShopPage, ShopPageKind, ShopSettings
from storefront.unit_of_work import write_transaction

ANN = Actor(id=None, email="ann@distillery.ie")


def save_settings(session, clock, email="orders@harrowvale.ie", dispatch="within 2 working days", ages="Whiskey"):
    with write_transaction(session):
        return shop_pages.save_shop_settings(session, ANN, SettingsDetails(email, dispatch, ages), clock())


def save_page(session, clock, kind, body, title=""):
    with write_transaction(session):
        return shop_pages.save_shop_page(session, ANN, kind, PageDetails(title, body), clock())


def test_settings_are_defaults_until_saved_then_one_row_with_an_activity_line(session, clock):
    assert shop_pages.shop_settings(session).contact_email == ""

    save_settings(session, clock, ages=" whiskey ,, Gin, WHISKEY ,")
    assert shop_pages.shop_settings(session).age_restricted_categories == "whiskey, Gin"
    save_settings(session, clock, ages="Whiskey, Gin")

    settings = shop_pages.shop_settings(session)
    assert (settings.contact_email, settings.dispatch_time) == ("orders@harrowvale.ie", "within 2 working days")
    assert settings.age_restricted_categories == "Whiskey, Gin"
    assert session.scalar(select(func.count()).select_from(ShopSettings)) == 1
    summaries = session.scalars(select(ActivityEntry.summary).where(ActivityEntry.subject_type == "shop")).all()
    assert summaries[0].startswith("shop settings saved: contact orders@harrowvale.ie")
    assert "age notice on Whiskey, Gin" in summaries[1]


@pytest.mark.parametrize(
    ("details", "field"),
    [
        (SettingsDetails("not an address", "", ""), "contact_email"),
        (SettingsDetails("", "x" * 121, ""), "dispatch_time"),
        (SettingsDetails("", "", ", ".join(f"Category {n}" for n in range(60))), "age_restricted_categories"),
    ],
)
def test_settings_the_shop_cannot_use_are_refused_and_nothing_is_written(session, clock, details, field):
    save_settings(session, clock)
    with pytest.raises(ShopPageError) as refusal, write_transaction(session):
        shop_pages.save_shop_settings(session, ANN, details, clock())
    assert refusal.value.field == field
    assert shop_pages.shop_settings(session).contact_email == "orders@harrowvale.ie"
    assert session.scalar(select(func.count()).select_from(ActivityEntry)) == 1


def test_written_pages_are_listed_in_footer_order_and_an_emptied_page_leaves_the_footer(session, clock):
    save_page(session, clock, "privacy", "We keep your **email**.")
    save_page(session, clock, ShopPageKind.SHIPPING, "Ireland: €6.", title="  Shipping   & delivery ")
    save_page(session, clock, "returns", "   \n ")  # only whitespace: saved, but not written

    assert [(link.kind, link.title) for link in shop_pages.footer_links(session)] == [
        ("shipping", "Shipping & delivery"),
        ("privacy", "Privacy"),
    ]
    assert [page.kind for page in shop_pages.written_pages(session)] == ["shipping", "privacy"]

    save_page(session, clock, "privacy", "")

    assert [link.kind for link in shop_pages.footer_links(session)] == ["shipping"]
    assert shop_pages.written_page(session, ShopPageKind.PRIVACY) is None
    assert shop_pages.find_page(session, ShopPageKind.PRIVACY).title == "Privacy"
    summaries = [summary for summary in session.scalars(select(ActivityEntry.summary).order_by(ActivityEntry.id))]
    assert summaries[-1] == "page “Privacy” emptied: taken off the footer"
    written = {summary.kind: summary.written for summary in shop_pages.page_summaries(session)}
    assert written == {kind: kind == ShopPageKind.SHIPPING for kind in ShopPageKind}


def test_unknown_and_oversized_pages_are_refused(session, clock):
    with pytest.raises(UnknownPage), write_transaction(session):
        shop_pages.save_shop_page(session, ANN, "cookies", PageDetails("", "text"), clock())
    with pytest.raises(ShopPageError) as refusal, write_transaction(session):
        body = "x" * (shop_pages.MAX_PAGE_BODY + 1)
        shop_pages.save_shop_page(session, ANN, "terms", PageDetails("", body), clock())
    assert refusal.value.field == "body_markdown"
    assert session.scalar(select(func.count()).select_from(ShopPage)) == 0


def test_the_age_notice_follows_the_settings_categories_case_insensitively(session, clock):
    assert not shop_pages.needs_age_notice(shop_pages.shop_settings(session), "Whiskey")
    save_settings(session, clock, ages="Whiskey, Gin")
    settings = shop_pages.shop_settings(session)

    assert shop_pages.needs_age_notice(settings, " whiskey ")
    assert shop_pages.needs_age_notice(settings, "GIN")
    assert not shop_pages.needs_age_notice(settings, "Coffee")
    assert not shop_pages.needs_age_notice(settings, "")
    assert not shop_pages.needs_age_notice(settings, None)
