"""Forms for opening and editing releases, and for keeping numbers back: the producer types, the domain decides.

Prices are typed as "89.00" and stored in minor units; times are typed in the shop's time zone (SHOP_TIMEZONE)
and stored in UTC. Both conversions live here, so a form that cannot be read never reaches the domain.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import DateTimeLocalInput

from storefront.domain.releases import MAX_UNITS, SLUG_MAX, TITLE_MAX, ReleaseTerms
from storefront.models.catalog import SLUG_PATTERN
from storefront.text import ZERO_DECIMAL_CURRENCIES

CURRENCIES = [
    SelectChoice("EUR", "EUR: euro"),
    SelectChoice("GBP", "GBP: pound sterling"),
    SelectChoice("USD", "USD: US dollar"),
    SelectChoice("CHF", "CHF: Swiss franc"),
    SelectChoice("SEK", "SEK: Swedish krona"),
    SelectChoice("DKK", "DKK: Danish krone"),
    SelectChoice("NOK", "NOK: Norwegian krone"),
    SelectChoice("CAD", "CAD: Canadian dollar"),
    SelectChoice("AUD", "AUD: Australian dollar"),
    SelectChoice("JPY", "JPY: Japanese yen"),
]
# Up to 9,999,999 in the currency's main unit: in minor units that still fits the database's integer.
PRICE = re.compile(r"[0-9]{1,7}(?:\.([0-9]+))?")
NUMBER_RUN = re.compile(r"([0-9]{1,6})(?:-([0-9]{1,6}))?")
RANGE_DASH = re.compile(r"\s*[-–]\s*")
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,9}")
LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")
# Names of the domain's terms (ReleaseTerms fields) that these forms call differently.
FIELD_FOR_TERM = {"price_amount": "price", "shipping_amount": "shipping"}


def strip_whitespace(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def id_or_none(value: object) -> int | None:
    """Read a select's value as an id; anything else is "nothing chosen" (the validator explains)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def decimals_of(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2


def price_to_minor_units(text: str, currency: str, what: str = "price") -> int:
    """Read "89", "89.5" or "89.00" as minor units (8900) of `currency`; raise ValueError saying what is wrong.

    `what` names the amount in the messages ("price", "shipping").
    """
    text = (text or "").strip()
    if text.startswith("-"):
        raise ValueError(f"The {what} cannot be negative.")
    match = PRICE.fullmatch(text)
    if match is None:
        example = "1500" if decimals_of(currency) == 0 else "89.00"
        raise ValueError(f"Enter the {what} as a number, such as {example}.")
    places = decimals_of(currency)
    if match.group(1) is not None and len(match.group(1).rstrip("0")) > places:
        if places == 0:
            raise ValueError(f"{currency} has no smaller unit: enter a whole amount.")
        amounts = "prices" if what == "price" else "amounts"
        raise ValueError(f"{currency} {amounts} have at most {places} decimals, e.g. 89.00.")
    return int(Decimal(text).scaleb(places))


def minor_units_to_price(amount: int, currency: str) -> str:
    """Write minor units as the form shows them: 8900 EUR as "89.00", 1500 JPY as "1500"."""
    places = decimals_of(currency)
    return str(amount) if places == 0 else f"{amount // 10**places}.{amount % 10**places:0{places}d}"


def parse_numbers(text: str) -> list[int]:
    """Read "1, 5-7" as [1, 5, 6, 7]; raise ValueError naming the part that is not a number or a range."""
    numbers: set[int] = set()
    # "5 - 7" is one range; commas, semicolons and spaces separate the rest.
    for part in re.split(r"[,;\s]+", RANGE_DASH.sub("-", (text or "").strip())):
        if not part:
            continue
        match = NUMBER_RUN.fullmatch(part)
        if match is None:
            raise ValueError(f"“{part}” is not a number or a range like 5-7.")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if first < 1:
            raise ValueError("Numbers start at 1.")
        if last < first:
            raise ValueError(f"“{part}” is not a range from a lower number to a higher one.")
        if last > MAX_UNITS:
            raise ValueError(f"Numbers go up to {MAX_UNITS:,} at most.")
        numbers.update(range(first, last + 1))
    return sorted(numbers)


def slug_from(title: str) -> str:
    """Make a web address from a title: "Carlow Rye, Batch 8 (70 cl)" becomes "carlow-rye-batch-8-70-cl"."""
    ascii_title = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


@dataclass(frozen=True)
class ShopTime:
    """A moment read in the shop's time zone: the UTC value to store and, when the wall time was ambiguous, a note."""

    utc: datetime
    note: str | None = None


def local_to_utc(local: datetime, zone: ZoneInfo) -> ShopTime:
    """Read a wall-clock time in `zone` as UTC. A time the clocks skip is refused; a time they pass twice (when
    they go back) is taken at its first occurrence, and the note says so."""
    first = local.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        raise ValueError(
            f"{local:%H:%M} on {local.day} {local:%B %Y} does not exist in {zone.key}: the clocks go forward "
            "then. Choose a time outside that hour."
        )
    second = local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        note = (
            f"{local:%H:%M} on {local.day} {local:%B %Y} happens twice in {zone.key} (the clocks go back); "
            f"we used the first, {first:%H:%M %Z}, which is {first.astimezone(UTC):%H:%M} UTC."
        )
        return ShopTime(first.astimezone(UTC), note)
    return ShopTime(first.astimezone(UTC))


def utc_to_local(moment: datetime, zone: ZoneInfo) -> datetime:
    """The wall-clock time a `datetime-local` input shows for a stored UTC moment."""
    return moment.astimezone(zone).replace(tzinfo=None)


class WholeNumberField(IntegerField):
    """An integer input read strictly (plain digits), a blank meaning "not given", a typo reported once."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = valuelist[0].strip() if isinstance(valuelist[0], str) else ""
        self.data = None
        if not text:
            return
        # int() would also take "1_000" and " ４ ", and numbers too large for the database's integer.
        if not WHOLE_NUMBER.fullmatch(text):
            raise ValueError(self.invalid_value_message or "Enter a whole number, such as 2.")
        self.data = int(text)

    def pre_validate(self, form: FlaskForm) -> None:
        if self.process_errors:
            raise StopValidation()


class LocalDateTimeField(StringField):
    """A `<input type="datetime-local">`: a wall-clock time in the shop's zone, with no zone of its own."""

    widget = DateTimeLocalInput()

    def process_formdata(self, valuelist: list[str]) -> None:
        if not valuelist:
            return
        text = valuelist[0].strip() if isinstance(valuelist[0], str) else ""
        self.data = None
        if not text:
            return
        for pattern in LOCAL_FORMATS:
            try:
                self.data = datetime.strptime(text, pattern)
                return
            except ValueError:
                continue
        raise ValueError("Enter a date and time, such as 2026-07-01 10:00.")

    def _value(self) -> str:
        if isinstance(self.data, datetime):
            return self.data.strftime("%Y-%m-%dT%H:%M")
        return self.raw_data[0] if self.raw_data else ""

    def pre_validate(self, form: FlaskForm) -> None:
        if self.process_errors:
            raise StopValidation()


class ReleaseTermsForm(FlaskForm):
    """The terms of a release a producer sets, in the units they think in. `zone` is the shop's time zone."""

    title = StringField(
        "Title",
        validators=[InputRequired("Give the release a title."), Length(max=TITLE_MAX)],
        filters=[strip_whitespace],
    )
    slug = StringField(
        "Web address",
        validators=[Optional(), Length(max=SLUG_MAX)],
        filters=[strip_whitespace],
    )
    # DataRequired, not InputRequired: when the price is locked the view fills it in from the release.
    price = StringField(
        "Price", validators=[DataRequired("Enter the price, such as 89.00.")], filters=[strip_whitespace]
    )
    currency = SelectField("Currency", choices=CURRENCIES, default="EUR")
    # Empty is free shipping; read in the release's currency, as the price is.
    shipping = StringField("Shipping per order (optional)", validators=[Optional()], filters=[strip_whitespace])
    total_units = WholeNumberField(
        "Number of units",
        validators=[
            InputRequired("Enter how many numbered units the release has."),
            NumberRange(min=1, max=MAX_UNITS, message=f"A release has from 1 to {MAX_UNITS:,} numbered units."),
        ],
        invalid_value_message="Enter the number of units as a whole number, such as 240.",
    )
    on_sale_at = LocalDateTimeField("On sale from", validators=[InputRequired("Enter when the release goes on sale.")])
    off_sale_at = LocalDateTimeField("Sale closes (optional)", validators=[Optional()])
    # After on_sale_at: fields are validated in the order they are declared, and this one is checked against it.
    early_access_at = LocalDateTimeField("Early access from (optional)", validators=[Optional()])
    per_customer_limit = WholeNumberField(
        "Limit per customer",
        validators=[
            InputRequired("Enter how many one customer may buy."),
            NumberRange(min=1, message="Each customer must be allowed at least 1."),
        ],
        invalid_value_message="Enter the limit as a whole number, such as 2.",
        default=2,
    )
    allow_number_choice = BooleanField("Let buyers pick their number")

    def __init__(self, *args, zone: ZoneInfo, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone
        self.price_minor: int | None = None
        self.shipping_minor = 0
        self.on_sale: ShopTime | None = None
        self.off_sale: ShopTime | None = None
        self.early_access: ShopTime | None = None

    def validate_slug(self, field: StringField) -> None:
        if field.data and not SLUG_PATTERN.fullmatch(field.data):
            raise ValidationError("Use lowercase letters, digits and single hyphens, e.g. rye-batch-8.")

    def validate_price(self, field: StringField) -> None:
        try:
            self.price_minor = price_to_minor_units(field.data, self.currency.data or "EUR")
        except ValueError as error:
            raise ValidationError(str(error)) from error

    def validate_shipping(self, field: StringField) -> None:
        try:
            self.shipping_minor = price_to_minor_units(field.data, self.currency.data or "EUR", what="shipping")
        except ValueError as error:
            raise ValidationError(str(error)) from error

    def validate_on_sale_at(self, field: LocalDateTimeField) -> None:
        if field.data is not None:
            try:
                self.on_sale = local_to_utc(field.data, self.zone)
            except ValueError as error:
                raise ValidationError(str(error)) from error

    def validate_off_sale_at(self, field: LocalDateTimeField) -> None:
        if field.data is None:
            return
        try:
            self.off_sale = local_to_utc(field.data, self.zone)
        except ValueError as error:
            raise ValidationError(str(error)) from error
        if self.on_sale is not None and self.off_sale.utc <= self.on_sale.utc:
            raise ValidationError("The sale must close after it opens.")

    def validate_early_access_at(self, field: LocalDateTimeField) -> None:
        if field.data is None:
            return
        try:
            self.early_access = local_to_utc(field.data, self.zone)
        except ValueError as error:
            raise ValidationError(str(error)) from error
        if self.on_sale is not None and self.early_access.utc >= self.on_sale.utc:
            raise ValidationError("Early access must start before the release goes on sale to everyone.")

    def chosen_slug(self) -> str:
        """The address typed, or one made from the title when none was."""
        return self.slug.data or slug_from(self.title.data)

    def terms(self) -> ReleaseTerms:
        """The validated form as the domain's terms (call after `validate`)."""
        return ReleaseTerms(
            title=self.title.data,
            slug=self.chosen_slug(),
            price_amount=self.price_minor,
            currency=self.currency.data,
            shipping_amount=self.shipping_minor if self.shipping.data else 0,
            total_units=self.total_units.data,
            on_sale_at=self.on_sale.utc,
            off_sale_at=self.off_sale.utc if self.off_sale else None,
            per_customer_limit=self.per_customer_limit.data,
            allow_number_choice=bool(self.allow_number_choice.data),
            early_access_at=self.early_access.utc if self.early_access else None,
        )

    def notes(self) -> list[str]:
        """What the producer should know about how their times were read (an hour that happens twice)."""
        times = (self.on_sale, self.off_sale, self.early_access)
        return [time.note for time in times if time is not None and time.note]

    def add_problems(self, problems: dict[str, str]) -> None:
        """Show the domain's refusals next to their fields; those without a field go at the top of the form."""
        for term, message in problems.items():
            field = getattr(self, FIELD_FOR_TERM.get(term, term), None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*field.errors, message]
            else:
                self.form_errors.append(message)


class NewReleaseForm(ReleaseTermsForm):
    """Open a release: the terms, the batch it comes from, and numbers kept back from the start."""

    # The choices are the producer's batches, set by the view; the check is ours, with a message that helps.
    batch_id = SelectField("Batch", coerce=id_or_none, validate_choice=False)
    withheld = StringField("Numbers kept back (optional)", filters=[strip_whitespace])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.withheld_numbers: list[int] = []

    def validate_batch_id(self, field: SelectField) -> None:
        if field.data not in {choice.value for choice in field.choices or ()}:
            raise ValidationError("Choose the batch this release comes from.")

    def validate_withheld(self, field: StringField) -> None:
        # Whether the numbers fall within the run is the domain's rule; it answers next to this field.
        try:
            self.withheld_numbers = parse_numbers(field.data or "")
        except ValueError as error:
            raise ValidationError(str(error)) from error


class EditReleaseForm(ReleaseTermsForm):
    """Change a release's terms; the view locks price and currency once anything was held or sold."""


class NumbersForm(FlaskForm):
    """Numbers to keep back or to return to sale, typed as "1, 5-7"."""

    numbers = StringField(
        "Numbers",
        validators=[InputRequired("Enter one or more numbers, such as 1 or 5-7.")],
        filters=[strip_whitespace],
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.parsed: list[int] = []

    def validate_numbers(self, field: StringField) -> None:
        try:
            self.parsed = parse_numbers(field.data or "")
        except ValueError as error:
            raise ValidationError(str(error)) from error
        if not self.parsed:
            raise ValidationError("Enter one or more numbers, such as 1 or 5-7.")


class WithholdForm(NumbersForm):
    numbers = StringField(
        "Numbers to keep back",
        validators=[InputRequired("Enter one or more numbers, such as 1 or 5-7.")],
        filters=[strip_whitespace],
    )


class ReturnForm(NumbersForm):
    numbers = StringField(
        "Numbers to put back on sale",
        validators=[InputRequired("Enter one or more numbers, such as 1 or 5-7.")],
        filters=[strip_whitespace],
    )


class ActionForm(FlaskForm):
    """A button that changes something (pause, resume): only its CSRF token."""
