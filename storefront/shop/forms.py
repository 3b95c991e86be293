"""Forms of the public shop."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField
from wtforms.validators import Email, InputRequired, NumberRange, Optional, StopValidation, ValidationError

from storefront.domain.buyers import InvalidBuyerEmail, buyer_key

# Plain digits only: int() would also accept "1_000", " ４ " and numbers too large for the database's integer.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,9}")


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def one_buyer_email(form: FlaskForm, field: EmailField) -> None:
    """Refuse an address the shop cannot count as one buyer, such as one mixing Latin and Cyrillic letters.

    The form cannot see whether the shop ignores "+tags"; validity does not depend on it.
    """
    # An address `Email()` already refused gets that one message, not a second one about the same typo.
    if field.errors or not field.data:
        return
    try:
        buyer_key(field.data)
    except InvalidBuyerEmail as error:
        raise ValidationError(error.message) from error


class WholeNumberField(IntegerField):
    """An integer input that treats a blank as "not given" and reports a typo once, in plain words."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = valuelist[0].strip() if isinstance(valuelist[0], str) else ""
        if text == "":
            self.data = None
            return
        if not WHOLE_NUMBER.fullmatch(text):
            self.data = None
            raise ValueError(self.invalid_value_message or "Enter a whole number, such as 1 or 2.")
        self.data = int(text)

    def pre_validate(self, form: FlaskForm) -> None:
        # The value could not be read: saying also that it is "out of range" would only confuse.
        if self.process_errors:
            raise StopValidation()


class ReserveForm(FlaskForm):
    """Ask for units of one release: how many, optionally which number, and where to reach the buyer.

    The release's rules come in as plain values so the form can explain them next to the field; the domain
    checks them again inside the claim, which is the check that counts.
    """

    quantity = WholeNumberField(
        "How many",
        validators=[
            InputRequired(message="Choose how many you want."),
            NumberRange(min=1, message="Choose at least 1."),
        ],
        invalid_value_message="Enter how many as a whole number, such as 1 or 2.",
        default=1,
    )
    number = WholeNumberField(
        "Pick your number",
        validators=[Optional()],
        invalid_value_message="Enter the number you want as a whole number, such as 17.",
    )
    email = EmailField(
        "Email",
        validators=[
            InputRequired(message="Enter your email address, so we can send your receipt."),
            Email(message="Enter an email address like name@example.com.", check_deliverability=False),
            one_buyer_email,
        ],
        filters=[strip_whitespace],
    )

    def __init__(self, *args, limit: int, total_units: int, allow_number_choice: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.total_units = total_units
        self.allow_number_choice = allow_number_choice

    def validate_quantity(self, field: WholeNumberField) -> None:
        if field.data is not None and field.data > self.limit:
            raise ValidationError(f"The limit is {self.limit} per customer; choose {self.limit} or fewer.")

    def validate_number(self, field: WholeNumberField) -> None:
        if field.data is None:
            return
        if not self.allow_number_choice:
            raise ValidationError("This release does not offer picking a number; leave it empty.")
        if not 1 <= field.data <= self.total_units:
            raise ValidationError(f"Numbers run from 1 to {self.total_units}.")
        if self.quantity.data is not None and self.quantity.data != 1:
            raise ValidationError("A picked number holds just that one: set How many to 1, or leave the number empty.")
