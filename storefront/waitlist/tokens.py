"""Signed links in waitlist mail: confirm a place (expires), leave every list (does not), reserve early (does not).

Each kind has its own salt, so a token made for one purpose is refused by the others. The links carry ids only,
signed with SECRET_KEY: no address appears in a URL that could end up in a log. Confirmation links expire after
WAITLIST_CONFIRM_HOURS on the shop's clock; an early-access link has no expiry of its own, because its window is the
release's (early_access_at to on_sale_at), checked when it is used, and moves when the producer moves the drop.
Offer links are the offer's random token (`WaitlistOffer.token`), not a signature: an offer is a row to look up.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from storefront.audience.tokens import ClockTimestampSigner, ExpiredLink, InvalidLink
from storefront.urls import external_url

CONFIRM_SALT = "waitlist-confirm"
UNSUBSCRIBE_SALT = "waitlist-unsubscribe"
EARLY_ACCESS_SALT = "waitlist-early-access"

__all__ = ["ExpiredLink", "InvalidLink"]


def confirmation_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=CONFIRM_SALT, signer=ClockTimestampSigner)


def confirmation_lifetime() -> timedelta:
    return timedelta(hours=current_app.config["WAITLIST_CONFIRM_HOURS"])


def confirmation_url(entry_id: int) -> str:
    return external_url("waitlist.confirm_entry", token=confirmation_serializer().dumps(entry_id))


def unsubscribe_url(entry_id: int) -> str:
    token = URLSafeSerializer(current_app.secret_key, salt=UNSUBSCRIBE_SALT).dumps(entry_id)
    return external_url("waitlist.unsubscribe", token=token)


def early_access_url(entry_id: int, release_id: int) -> str:
    token = URLSafeSerializer(current_app.secret_key, salt=EARLY_ACCESS_SALT).dumps([entry_id, release_id])
    return external_url("waitlist.show_early_access", token=token)


def offer_url(offer_token: str) -> str:
    return external_url("waitlist.show_offer", token=offer_token)


def read_confirmation_token(token: str) -> int:
    """The entry id a confirmation link names; ExpiredLink or InvalidLink when it cannot be used."""
    max_age = int(confirmation_lifetime().total_seconds())
    try:
        value = confirmation_serializer().loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise ExpiredLink("This confirmation link has expired.") from error
    except BadSignature as error:
        raise InvalidLink("This confirmation link is not valid.") from error
    return checked_id(value)


def read_unsubscribe_token(token: str) -> int:
    try:
        value = URLSafeSerializer(current_app.secret_key, salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature as error:
        raise InvalidLink("This link is not valid.") from error
    return checked_id(value)


def read_early_access_token(token: str) -> tuple[int, int]:
    """(entry id, release id) an early-access link names; InvalidLink when it was not made by this shop."""
    try:
        value = URLSafeSerializer(current_app.secret_key, salt=EARLY_ACCESS_SALT).loads(token)
    except BadSignature as error:
        raise InvalidLink("This early-access link is not valid.") from error
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidLink("This early-access link is not valid.")
    return checked_id(value[0]), checked_id(value[1])


def checked_id(value: object) -> int:
    # Signed by us, so always an id; checked anyway, since a wrong type here would surface as a 500.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidLink("This link is not valid.")
    return value
