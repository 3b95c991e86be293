"""Reading the orders filter from a query string, shared by the orders list, the CSV export and the packing sheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import DateField, SearchField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from storefront.domain.orders import ORDER_STATUSES, OrderFilter
from storefront.shop_time import shop_zone

# SelectChoice, not tuples: WTForms 3.3 deprecates tuple choices (a warning, and the suite makes warnings errors).
STATUS_CHOICES = [
    SelectChoice("", "Any status"),
    *(SelectChoice(status, status.capitalize()) for status in ORDER_STATUSES),
]


def release_id_or_none(value: object) -> int | None:
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("Choose a release from the list.") from None


class OrderFilterForm(FlaskForm):
    """The filter above the orders list (GET: no CSRF token; it changes nothing)."""

    class Meta:
        csrf = False

    release = SelectField("Release", coerce=release_id_or_none, validate_choice=False, validators=[Optional()])
    status = SelectField("Status", choices=STATUS_CHOICES, validators=[Optional()])
    placed_from = DateField("Placed from", validators=[Optional()])
    placed_to = DateField("Placed to (inclusive)", validators=[Optional()])
    q = SearchField("Email, name, reference or number", validators=[Optional(), Length(max=320)])


@dataclass
class ReadFilter:
    """The filter a query string asked for, and the problems found in it (shown next to the fields)."""

    wanted: OrderFilter
    form: OrderFilterForm
    problems: list[str] = field(default_factory=list)

    @property
    def args(self) -> dict[str, str]:
        """The filter as query arguments, to carry into the CSV and packing-sheet links and the next page."""
        values = {
            "release": "" if self.wanted.release_id is None else str(self.wanted.release_id),
            "status": self.wanted.status or "",
            "placed_from": self.form.placed_from.data.isoformat() if self.form.placed_from.data else "",
            "placed_to": self.form.placed_to.data.isoformat() if self.form.placed_to.data else "",
            "q": self.wanted.search,
        }
        return {name: value for name, value in values.items() if value}


def start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` on the shop's clock, as an aware moment."""
    return datetime.combine(day, time(0), tzinfo=shop_zone())


def read_order_filter(args: MultiDict, release_choices: list[tuple[str, str]]) -> ReadFilter:
    """Read and check the filter; a bad field is dropped from the filter and named in `problems` (never a 500)."""
    form = OrderFilterForm(formdata=args)
    form.release.choices = [("", "All releases"), *release_choices]
    form.validate()
    problems = [f"{form[name].label.text}: {messages[0]}" for name, messages in form.errors.items()]
    release_id = form.release.data if "release" not in form.errors else None
    status = form.status.data if form.status.data in ORDER_STATUSES else None
    placed_from = form.placed_from.data if "placed_from" not in form.errors else None
    placed_to = form.placed_to.data if "placed_to" not in form.errors else None
    if placed_from and placed_to and placed_to < placed_from:
        problems.append("Placed to: the end date is before the start date.")
        placed_to = None
    wanted = OrderFilter(
        release_id=release_id,
        status=status,
        placed_from=start_of_day(placed_from) if placed_from else None,
        placed_before=start_of_day(placed_to + timedelta(days=1)) if placed_to else None,
        search=(form.q.data or "").strip()[:320],
    )
    return ReadFilter(wanted=wanted, form=form, problems=problems)
