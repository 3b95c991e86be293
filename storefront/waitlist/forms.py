"""Forms of the waitlist pages: joining, confirming, leaving, answering an offer, reserving with early access."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField
from wtforms.validators import Email, InputRequired, Length, Optional, ValidationError

from storefront.audience.forms import subscribable_email
from storefront.shop.forms import ReserveForm, strip_whitespace

# Mail programs make a link of a bare domain ("cheap.example"), so a dot joining two words counts as a link too.
DOMAIN_LIKE = re.compile(r"\w\.[^\W\d_]{2,}")


def no_links(form: FlaskForm, field: StringField) -> None:
    """A name is the only text of a visitor's that reaches a mail: keep it a name, not a message or a link."""
    value = field.data or ""
    if (
        any(mark in value.lower() for mark in ("http", "www.", "://", "@", "<", ">"))
        or DOMAIN_LIKE.search(value)
        or any(not character.isprintable() for character in value)
    ):
        raise ValidationError("Enter just your name (no links or addresses), or leave it empty.")


class JoinWaitlistForm(FlaskForm):
    """An address, and optionally a name to greet them by: a place in line once the address confirms it."""

    email = EmailField(
        "Your email",
        validators=[
            InputRequired(message="Enter your email address."),
            Length(max=320, message="This email address is too long."),
            Email(message="Enter an email address like name@example.com.", check_deliverability=False),
            # The same rule as every address the shop keys one mailbox by (storefront.domain.accounts.email_key).
            subscribable_email,
        ],
        filters=[strip_whitespace],
    )
    name = StringField(
        "Your name (optional)",
        validators=[Optional(), Length(max=60, message="Keep your name under 60 characters."), no_links],
        filters=[strip_whitespace],
    )


class ConfirmEntryForm(FlaskForm):
    """Only the CSRF token: confirming is a button press, so a link scanner opening the mail confirms nothing."""


class LeaveWaitlistForm(FlaskForm):
    """Only the CSRF token (a mail provider's one-click POST is checked differently: see the view)."""


class AnswerOfferForm(FlaskForm):
    """Only the CSRF token: claim and decline are two buttons posting to two addresses."""


class EarlyReserveForm(ReserveForm):
    """The reserve form without an email: an early-access link reserves for the address it was sent to."""

    email = None
