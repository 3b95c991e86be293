"""Turning stored values into what a page shows: money, times, and producer-written Markdown."""

from __future__ import annotations

from datetime import UTC, datetime

import markdown as markdown_lib
import nh3
from markupsafe import Markup

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
    html = markdown_lib.markdown(source or "", extensions=["tables", "sane_lists"], output_format="html")
    clean = nh3.clean(
        html,
        tags=STORY_TAGS,
        attributes=STORY_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


def iso_utc(moment: datetime | None) -> str | None:
    """Return an ISO-8601 UTC timestamp such as 2026-07-01T10:00:00Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def human_datetime(moment: datetime) -> str:
    """Return "Wed 1 July 2026, 10:00 UTC"; the page's script rewrites it in the reader's own zone."""
    moment = moment.astimezone(UTC)
    return f"{moment:%a} {moment.day} {moment:%B %Y, %H:%M} UTC"
