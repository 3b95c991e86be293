"""Addresses as the destination's post office writes them, with the country's name, never losing a line."""

from __future__ import annotations

import pytest

from storefront.addresses import address_lines


@pytest.mark.parametrize(
    ("address", "lines"),
    [
        pytest.param(
            {
                "line1": "1 Main Street",
                "city": "Dublin",
                "state": "Co. Dublin",
                "postal_code": "d02 x285",
                "country": "IE",
            },
            ["1 Main Street", "Dublin", "Co. Dublin", "D02 X285", "Ireland"],
            id="IE: the Eircode on its own line, last",
        ),
        pytest.param(
            {"line1": "10 Downing Street", "city": "London", "postal_code": "SW1A 2AA", "country": "GB"},
            ["10 Downing Street", "London", "SW1A 2AA", "United Kingdom"],
            id="GB: the postcode after the town",
        ),
        pytest.param(
            {
                "line1": "Hauptstraße 1",
                "line2": "Hinterhaus",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "de",
            },
            ["Hauptstraße 1", "Hinterhaus", "10115 Berlin", "Germany"],
            id="DE: the postcode before the town",
        ),
        pytest.param(
            {
                "line1": "5 Elm St",
                "line2": "Apt 2",
                "city": "Austin",
                "state": "tx",
                "postal_code": "78701",
                "country": "US",
            },
            ["5 Elm St", "Apt 2", "Austin, TX 78701", "United States"],
            id="US: City, ST 12345",
        ),
        pytest.param(
            {"line1": "5 Elm St", "city": "Austin", "postal_code": "78701", "country": "US"},
            ["5 Elm St", "Austin 78701", "United States"],
            id="US without a state: no stray comma",
        ),
        pytest.param(
            {"line1": "1 Road", "city": "Atlantis", "state": "Deep", "postal_code": "999", "country": "QQ"},
            ["1 Road", "Atlantis", "Deep", "999", "QQ"],
            id="a code nobody knows: every line kept, the code as it is",
        ),
        pytest.param(
            {
                "line1": "12 rue de Rivoli",
                "city": "Paris",
                "state": "Île-de-France",
                "postal_code": "75001",
                "country": "FR",
            },
            ["12 rue de Rivoli", "75001 Paris", "Île-de-France", "France"],
            id="a region the format has no place for: kept, before the country",
        ),
        pytest.param(
            {
                "line1": "1-1 Chiyoda",
                "city": "Chiyoda-ku",
                "state": "Tokyo",
                "postal_code": "100-0001",
                "country": "JP",
            },
            ["1-1 Chiyoda", "Chiyoda-ku, TOKYO", "100-0001", "Japan"],
            id="JP: the town follows the street lines",
        ),
    ],
)
def test_an_address_is_written_in_its_countrys_order_with_the_countrys_name(address, lines):
    assert address_lines("Aoife Byrne", address) == ["Aoife Byrne", *lines]


def test_missing_fields_leave_no_gaps_and_nothing_crashes():
    assert address_lines("Ann", {"line1": None, "city": " Cork ", "country": "IE"}) == ["Ann", "Cork", "Ireland"]
    assert address_lines("Ann", {"line1": "1 Quay St", "city": "Cork"}) == ["Ann", "1 Quay St", "Cork"]
    assert address_lines("", {"country": "XX!"}) == ["XX!"]
    assert address_lines("Nobody", {}) == ["Nobody"]
    assert address_lines("", None) == []
