"""Signed links in mail to subscribers: confirm (expires) and unsubscribe (does not).

Each kind has its own salt, so a token made for one purpose is refused by the other. The links carry only the
subscriber's id, signed with SECRET_KEY: the signature is the authority, and no address appears in a URL that
could end up in a log. Confirmation links expire after SUBSCRIBE_CONFIRM_HOURS, measured with the shop's clock
(storefront.clock), so tests move time instead of waiting; unsubscribe links never expire, because a mail read a
year later must still be able to stop the next one.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer

from storefront import clock
from storefront.urls import external_url

CONFIRM_SALT = "subscriber-confirm"
UNSUBSCRIBE_SALT = "subscriber-unsubscribe"


class InvalidLink(Exception):
    """The link was altered, cut short, or made for something else."""


class ExpiredLink(InvalidLink):
    """The link was genuine but is too old to use."""


class ClockTimestampSigner(TimestampSigner):
    """A timestamp signer whose "now" is the shop's clock (itsdangerous reads time.time() otherwise)."""

    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def confirmation_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=CONFIRM_SALT, signer=ClockTimestampSigner)


def unsubscribe_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=UNSUBSCRIBE_SALT)


def confirmation_lifetime() -> timedelta:
    return timedelta(hours=current_app.config["SUBSCRIBE_CONFIRM_HOURS"])


def confirmation_token(subscriber_id: int) -> str:
    return confirmation_serializer().dumps(subscriber_id)


def unsubscribe_token(subscriber_id: int) -> str:
    return unsubscribe_serializer().dumps(subscriber_id)


def read_confirmation_token(token: str) -> int:
    """The subscriber id a confirmation link names; ExpiredLink or InvalidLink when it cannot be used."""
    max_age = int(confirmation_lifetime().total_seconds())
    try:
        value = confirmation_serializer().loads(token, max_age=max_age)
    except SignatureExpired as error:
        raise ExpiredLink("This confirmation link has expired.") from error
    except BadSignature as error:
        raise InvalidLink("This confirmation link is not valid.") from error
    return subscriber_id_from(value)


def read_unsubscribe_token(token: str) -> int:
    """The subscriber id an unsubscribe link names; InvalidLink when it was not made by this shop."""
    try:
        value = unsubscribe_serializer().loads(token)
    except BadSignature as error:
        raise InvalidLink("This unsubscribe link is not valid.") from error
    return subscriber_id_from(value)


def subscriber_id_from(value: object) -> int:
    # Signed by us, so always an id; checked anyway, since a wrong type here would surface as a 500.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidLink("This link is not valid.")
    return value


def confirmation_url(subscriber_id: int) -> str:
    return external_url("audience.confirm_subscription", token=confirmation_token(subscriber_id))


def unsubscribe_url(subscriber_id: int) -> str:
    return external_url("audience.unsubscribe", token=unsubscribe_token(subscriber_id))
