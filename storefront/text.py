"""Turning stored values into what a page shows: money, times, and producer-written Markdown."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

import markdown as markdown_lib
import nh3
import pycountry
from markupsafe import Markup, escape

# Currencies whose minor unit is not a hundredth (ISO 4217); everything else has two decimals.
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"}
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF "}

STORY_TAGS = {
    "p",
    "br",
    "hr",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "code",
    "pre",
    "a",
    "img",
    "figure",
    "figcaption",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
STORY_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"scope"}}
# A story shows only the shop's own pictures: an image from another site would tell it who reads the story, and
# when. These prefixes are paths on the shop's own origin (a src starting "//" is another site).
OWN_IMAGE_PREFIXES = ("/media/", "/static/")
# In nh3's output every attribute value is double-quoted with <, >, " and & escaped, so these patterns are exact.
IMG_TAG = re.compile(r"<img\b([^>]*)>")
ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')


def format_money(amount_minor: int, currency: str) -> str:
    """Format 8900 EUR as "€89.00"."""
    currency = currency.upper()
    if currency in ZERO_DECIMAL_CURRENCIES:
        figure = f"{amount_minor:,}"
    else:
        figure = f"{amount_minor // 100:,}.{amount_minor % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{figure}" if symbol else f"{figure} {currency}"


def render_markdown(source: str | None) -> Markup:
    """Render a producer's Markdown story to HTML that cannot carry scripts, styles or event handlers."""
    rendered = markdown_lib.markdown(source or "", extensions=["tables", "sane_lists"], output_format="html")
    clean = nh3.clean(
        rendered,
        tags=STORY_TAGS,
        attributes=STORY_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=drop_foreign_image_sources,
    )
    clean = IMG_TAG.sub(show_alt_text_of_unloaded_image, clean)
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above; images without a source became escaped text


def drop_foreign_image_sources(tag: str, attribute: str, value: str) -> str | None:
    """Keep an image's src only when it is one of the shop's own files (nh3 drops the attribute on None)."""
    if tag == "img" and attribute == "src" and not value.startswith(OWN_IMAGE_PREFIXES):
        return None
    return value


def show_alt_text_of_unloaded_image(match: re.Match[str]) -> str:
    """Replace an <img> left without a src by its alt text, as plain text."""
    attributes = dict(ATTRIBUTE.findall(match.group(1)))
    if "src" in attributes:
        return match.group(0)
    return str(escape(html.unescape(attributes.get("alt", ""))))


def iso_utc(moment: datetime | None) -> str | None:
    """Return an ISO-8601 UTC timestamp such as 2026-07-01T10:00:00Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local_datetime_text(moment: datetime, zone: tzinfo) -> str:
    """Return "Wed 1 July 2026, 11:00 IST": the moment on a zone's clock, with the zone's abbreviation."""
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def consecutive_runs(numbers: Iterable[int]) -> list[list[int]]:
    """Group numbers into runs of consecutive ones, each once, in order: [3, 4, 5, 9] -> [[3, 4, 5], [9]]."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


def number_ranges(numbers: Iterable[int]) -> str:
    """Write held numbers as a person reads them: "No. 13", "No. 13–14", "No. 3–5, 9"."""
    parts = [f"{run[0]}–{run[-1]}" if len(run) > 1 else str(run[0]) for run in consecutive_runs(numbers)]
    return f"No. {', '.join(parts)}" if parts else "no numbers"


def local_clock_text(moment: datetime, zone: tzinfo) -> str:
    """Return "11:00 IST": the time of day on a zone's clock, for a deadline minutes away (a hold's)."""
    local = moment.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


def human_datetime(moment: datetime) -> str:
    """Return "Wed 1 July 2026, 10:00 UTC"; the page's script rewrites it in the reader's own zone."""
    moment = moment.astimezone(UTC)
    return f"{moment:%a} {moment.day} {moment:%B %Y, %H:%M} UTC"


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st: a place in line as people say it."""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def country_name(code: str | None) -> str:
    """A country's everyday English name for its ISO code ("IE" -> "Ireland", "GB" -> "United Kingdom");
    an unknown code is returned as it is, so nothing the buyer typed is ever lost."""
    if not code:
        return ""
    country = pycountry.countries.get(alpha_2=code.strip().upper())
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name
