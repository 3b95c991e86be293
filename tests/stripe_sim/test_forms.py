"""Stripe's form encoding becomes the nested params Stripe's servers see."""

from urllib.parse import parse_qsl

import pytest

from storefront.stripe_sim.errors import StripeError
from storefront.stripe_sim.forms import parse_params


def parse(body: str) -> dict:
    return parse_params(parse_qsl(body, keep_blank_values=True))


def test_brackets_become_nested_dicts_and_indexed_lists():
    body = (
        "mode=payment&line_items[0][price_data][unit_amount]=8900&line_items[0][price_data][currency]=eur"
        "&line_items[0][price_data][product_data][name]=Rye&line_items[0][quantity]=1"
        "&line_items[1][quantity]=2&metadata[hold_id]=12&payment_method_types[0]=card"
        "&shipping_address_collection[allowed_countries][0]=IE&shipping_address_collection[allowed_countries][1]=GB"
        "&expand[0]=payment_intent"
    )
    assert parse(body) == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"unit_amount": "8900", "currency": "eur", "product_data": {"name": "Rye"}},
                "quantity": "1",
            },
            {"quantity": "2"},
        ],
        "metadata": {"hold_id": "12"},
        "payment_method_types": ["card"],
        "shipping_address_collection": {"allowed_countries": ["IE", "GB"]},
        "expand": ["payment_intent"],
    }


def test_indices_order_the_list_and_empty_brackets_append():
    assert parse("expand[1]=b&expand[0]=a")["expand"] == ["a", "b"]
    assert parse("expand[]=a&expand[]=b")["expand"] == ["a", "b"]


def test_empty_values_are_kept_for_the_validators_to_judge():
    assert parse("customer_email=&metadata[note]=") == {"customer_email": "", "metadata": {"note": ""}}


@pytest.mark.parametrize("body", ["metadata=x&metadata[a]=b", "metadata[a]=b&metadata=x", "[a]=1", "a[b=1", "a[b]c=1"])
def test_malformed_or_conflicting_keys_are_invalid_requests(body):
    with pytest.raises(StripeError) as raised:
        parse(body)
    assert raised.value.status == 400
    assert raised.value.body()["error"]["type"] == "invalid_request_error"
