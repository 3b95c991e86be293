"""Forms of the orders pages: a note, mark packed, mark shipped (one order, or a ticked selection of the list)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from storefront.domain.orders import NOTE_MAX
from storefront.domain.shipping import CARRIERS, TRACKING_URL_MAX, InvalidTracking, Tracking, check_tracking

CARRIER_CHOICES = [
    SelectChoice("", "Choose a carrier"),
    *(SelectChoice(carrier.code, carrier.name) for carrier in CARRIERS),
]
# Carriers a selection of orders can be shipped with at once: each parcel's tracking number is typed in its row;
# "Other" needs each parcel's own tracking address, typed on the order's page.
BULK_CARRIER_CHOICES = [SelectChoice(carrier.code, carrier.name) for carrier in CARRIERS if not carrier.url_typed]
BULK_ACTIONS = ("packed", "shipped")
# More ticked orders than this in one request is not a page of the list: refused rather than locked.
BULK_MAX = 200


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ActionForm(FlaskForm):
    """A button that changes something (mark packed): its CSRF token is all it carries."""


class NoteForm(FlaskForm):
    text = TextAreaField(
        "Add a note",
        filters=[strip_whitespace],
        validators=[DataRequired("Write something in the note first."), Length(max=NOTE_MAX)],
    )


class ShipForm(FlaskForm):
    """Carrier and tracking for one order; checked by the domain's rules (check_tracking) in `tracking()`."""

    carrier = SelectField("Carrier", choices=CARRIER_CHOICES, validate_choice=False)
    tracking_number = StringField("Tracking number", filters=[strip_whitespace], validators=[Length(max=100)])
    tracking_url = StringField(
        "Tracking page (Other carrier only)", filters=[strip_whitespace], validators=[Length(max=TRACKING_URL_MAX)]
    )

    def tracking(self) -> Tracking | None:
        """The checked tracking, or None with the problems set on their fields."""
        try:
            return check_tracking(
                self.carrier.data or "", self.tracking_number.data or "", self.tracking_url.data or ""
            )
        except InvalidTracking as refusal:
            for name, message in refusal.problems.items():
                self[name].errors = [*self[name].errors, message]
            return None


class BulkForm(FlaskForm):
    """The action under the orders list: which button was pressed, and the carrier for "Mark shipped"."""

    action = SelectField("Action", choices=[SelectChoice(action, action) for action in BULK_ACTIONS])
    carrier = SelectField("Carrier", choices=BULK_CARRIER_CHOICES, validate_choice=False)


class TamperedSelection(ValueError):
    """An order id in the form that is not a number: not something the page sends."""


def selected_order_ids(form_data: MultiDict) -> list[int]:
    """The ticked orders' ids, in the order ticked; raises TamperedSelection for anything but small integers."""
    ids = []
    for value in form_data.getlist("order"):
        text = str(value).strip()
        if not (text.isascii() and text.isdigit() and len(text) < 10):
            raise TamperedSelection(value)
        ids.append(int(text))
    return list(dict.fromkeys(ids))


def typed_tracking_numbers(form_data: MultiDict) -> dict[int, str]:
    """The tracking number typed in each row of the list (the inputs "tracking-<order id>"), ticked or not."""
    typed = {}
    for name, value in form_data.items():
        prefix, _, order_id = name.partition("-")
        if prefix == "tracking" and order_id.isascii() and order_id.isdigit() and len(order_id) < 10:
            typed[int(order_id)] = (value or "").strip()[:200]
    return typed
