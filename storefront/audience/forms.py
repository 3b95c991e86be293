"""Forms of the audience pages: signing up for news of new batches, confirming it, unsubscribing."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms.validators import Email, InputRequired, Length, ValidationError

from storefront.domain.subscribers import InvalidSubscriberEmail, subscriber_email_key


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def subscribable_email(form: FlaskForm, field: EmailField) -> None:
    """Refuse an address the shop cannot key one mailbox by (the accounts' rule), with the domain's message."""
    if field.errors or not field.data:
        return  # `Email()` already said what is wrong with it
    try:
        subscriber_email_key(field.data)
    except InvalidSubscriberEmail as error:
        raise ValidationError(error.message) from error


class SubscribeForm(FlaskForm):
    """One address: where news of new batches goes once it is confirmed."""

    email = EmailField(
        "Your email",
        validators=[
            InputRequired(message="Enter your email address."),
            Length(max=320, message="This email address is too long."),
            Email(message="Enter an email address like name@example.com.", check_deliverability=False),
            subscribable_email,
        ],
        filters=[strip_whitespace],
    )


class ConfirmSubscriptionForm(FlaskForm):
    """Only the CSRF token: the confirmation is a button press, so a link scanner opening the mail's link
    confirms nothing."""


class UnsubscribeForm(FlaskForm):
    """Only the CSRF token (the one-click POST a mail provider sends is checked differently: see the view)."""
