"""Forms of the producer's shop page: the shop's settings, and one footer page in Markdown."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, SubmitField, TextAreaField
from wtforms.validators import Email, Length, Optional

from storefront.domain import shop_pages
from storefront.domain.shop_pages import PageDetails, SettingsDetails


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ShopSettingsForm(FlaskForm):
    contact_email = EmailField(
        "Contact email",
        validators=[
            Optional(),
            Length(max=shop_pages.MAX_CONTACT_EMAIL, message="This email address is too long."),
            Email(message="Enter an email address like orders@example.com.", check_deliverability=False),
        ],
        filters=[strip_whitespace],
    )
    dispatch_time = StringField(
        "Dispatch time",
        validators=[
            Optional(),
            Length(
                max=shop_pages.MAX_DISPATCH_TIME,
                message=f"Keep the dispatch time under {shop_pages.MAX_DISPATCH_TIME} characters.",
            ),
        ],
        filters=[strip_whitespace],
    )
    age_restricted_categories = StringField(
        "Categories that need an age notice",
        validators=[
            Optional(),
            Length(
                max=shop_pages.MAX_AGE_CATEGORIES,
                message=f"The list can be at most {shop_pages.MAX_AGE_CATEGORIES} characters.",
            ),
        ],
        filters=[strip_whitespace],
    )

    def details(self) -> SettingsDetails:
        return SettingsDetails(
            contact_email=self.contact_email.data or "",
            dispatch_time=self.dispatch_time.data or "",
            age_restricted_categories=self.age_restricted_categories.data or "",
        )


class ShopPageForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[
            Optional(),
            Length(
                max=shop_pages.MAX_PAGE_TITLE, message=f"Keep the title under {shop_pages.MAX_PAGE_TITLE} characters."
            ),
        ],
        filters=[strip_whitespace],
    )
    body_markdown = TextAreaField(
        "Page text",
        validators=[
            Length(
                max=shop_pages.MAX_PAGE_BODY,
                message=f"A page can be at most {shop_pages.MAX_PAGE_BODY:,} characters.",
            )
        ],
    )
    save = SubmitField("Save page")
    preview = SubmitField("Preview")

    def details(self) -> PageDetails:
        return PageDetails(title=self.title.data or "", body_markdown=self.body_markdown.data or "")
