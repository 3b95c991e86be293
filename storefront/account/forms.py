"""Forms for signing in and out."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import InputRequired, Length

from storefront.domain.accounts import MAX_PASSWORD_LENGTH


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    """Email and password. No format check on the address: a typo is just a failed sign-in, told the same way."""

    email = EmailField(
        "Email",
        validators=[InputRequired("Enter your email address."), Length(max=320)],
        filters=[strip_whitespace],
    )
    password = PasswordField(
        "Password", validators=[InputRequired("Enter your password."), Length(max=MAX_PASSWORD_LENGTH)]
    )
    remember = BooleanField("Keep me signed in on this device")
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST, so another site cannot sign a producer out with a link."""
