"""The refund form: which of an order's units to refund, which of those go back on sale, and why."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, ValidationError

from storefront.domain.refunds import REFUND_NOTE_MAX, REFUND_REASONS


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class UnitChoices(SelectMultipleField):
    """Unit ids ticked in the page's table (rendered by the template); only the order's refundable units count."""

    def pre_validate(self, form) -> None:
        offered = {value for value, _label, *_rest in self.iter_choices()}
        if any(value not in offered for value in self.data or ()):
            raise ValidationError("Only units still sold to this order can be refunded; reload the page to see them.")

    def process_formdata(self, valuelist) -> None:
        try:
            self.data = [int(value) for value in valuelist]
        except ValueError as error:
            self.data = []
            raise ValueError("Only units still sold to this order can be refunded.") from error


class RefundForm(FlaskForm):
    """Refund some of an order's units (or the whole of an order without units), each retired or returned to sale."""

    refund = UnitChoices("Refund", coerce=int)
    return_to_sale = UnitChoices("Return to sale", coerce=int)
    reason = SelectField(
        "Reason",
        choices=[SelectChoice("", "Choose a reason…")]
        + [SelectChoice(key, label) for key, label in REFUND_REASONS.items()],
        validators=[InputRequired("Choose why you are refunding.")],
    )
    note = TextAreaField(
        "Note",
        filters=[strip_whitespace],
        validators=[Length(max=REFUND_NOTE_MAX, message=f"Keep the note to {REFUND_NOTE_MAX} characters.")],
    )

    def offer_units(self, unit_ids: list[int]) -> None:
        """The units that may be ticked: the order's own that are not refunded yet."""
        choices = [SelectChoice(unit_id, str(unit_id)) for unit_id in unit_ids]
        self.refund.choices = choices
        self.return_to_sale.choices = choices

    def validate_reason(self, field) -> None:
        if field.data not in REFUND_REASONS:
            raise ValidationError("Choose why you are refunding.")

    def validate_note(self, field) -> None:
        if self.reason.data == "other" and not field.data:
            raise ValidationError("Say in a few words why you are refunding.")
