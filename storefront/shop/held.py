"""The holds this browser made, remembered in its signed session cookie, and the banner that keeps them in reach.

A hold's token is the buyer's only handle on it (its page, its payment page, its cancel button). The shop keeps the
tokens of the last few holds a browser made in that browser's session, so every shop page can say "You hold No. 13–14
· 8:12 left · Continue to payment · Cancel" and a buyer who left the payment page finds their numbers again. Only
tokens this browser was handed are ever shown back to it: knowing someone's email never leads to their hold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import g, has_request_context, request, session, url_for
from flask.wrappers import Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from storefront import clock
from storefront.extensions import db
from storefront.models import Hold, HoldStatus, Release
from storefront.shop import bp
from storefront.shop_time import shop_zone
from storefront.text import local_clock_text, number_ranges

log = logging.getLogger(__name__)

SESSION_KEY = "holds"
# A buyer rarely holds more than one or two releases at once, but a hold pushed out of this list would be lost to
# the banner while still active: ten tokens of 24 characters keep the cookie small. Ended ones are dropped as seen.
REMEMBERED_HOLDS = 10
TOKEN_MAX_LENGTH = 40
# Pages where the banner would only repeat what the page says, or that are not the buyer's side of the shop.
NO_BANNER_BLUEPRINTS = {"producer"}
NO_BANNER_ENDPOINTS = {"checkout.show_success"}


@dataclass(frozen=True)
class HeldNumbers:
    """One of this browser's active holds, as its banner shows it."""

    hold: Hold
    numbers_text: str  # "No. 13–14"
    until_text: str  # "10:42 IST", the deadline on the shop's clock: what the page says without its script
    continue_url: str
    cancel_url: str
    now: datetime  # the server's, against which the script counts down (the reader's clock may be off)


def remember_hold(token: str) -> None:
    """Keep a new hold's token in this browser's session, newest first."""
    tokens = [token, *(known for known in remembered_tokens() if known != token)]
    session[SESSION_KEY] = tokens[:REMEMBERED_HOLDS]


def remembered_tokens() -> list[str]:
    """The hold tokens this browser's session carries (anything else in the cookie's slot is ignored)."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, list):
        return []
    return [token for token in value if isinstance(token, str) and 0 < len(token) <= TOKEN_MAX_LENGTH]


def forget_ended(active_tokens: Iterable[str]) -> None:
    """Drop the tokens of holds that have ended, so the cookie never grows with dead ones."""
    active = set(active_tokens)
    kept = [token for token in remembered_tokens() if token in active]
    if kept == session.get(SESSION_KEY):
        return  # unchanged: no new cookie
    if kept:
        session[SESSION_KEY] = kept
    else:
        session.pop(SESSION_KEY, None)


def browser_holds(now: datetime) -> list[Hold]:
    """This browser's holds that are still active and within their time, newest first: one query by token, none
    when the session carries no token."""
    tokens = remembered_tokens()
    if not tokens:
        return []
    found = db.session.scalars(
        select(Hold)
        .where(Hold.token.in_(tokens), Hold.status == HoldStatus.ACTIVE)
        .options(joinedload(Hold.release).joinedload(Release.batch), joinedload(Hold.units))
    ).unique()
    # A hold whose time is up, or whose cancel is on its way, is over for the buyer even before the sweeper ends it.
    live = {hold.token: hold for hold in found if now < hold.expires_at and hold.end_requested is None}
    forget_ended(live)
    return [live[token] for token in tokens if token in live]


def known_holds_of_buyer(release_id: int, buyer_key: str) -> list[Hold]:
    """The buyer's active holds on a release that this browser made: those a refusal page may link to."""
    tokens = remembered_tokens()
    if not tokens:
        return []
    return list(
        db.session.scalars(
            select(Hold)
            .where(
                Hold.token.in_(tokens),
                Hold.release_id == release_id,
                Hold.buyer_key == buyer_key,
                Hold.status == HoldStatus.ACTIVE,
                Hold.end_requested.is_(None),
            )
            .order_by(Hold.created_at.desc())
        )
    )


def banner_for(hold: Hold, now: datetime) -> HeldNumbers:
    """Say what the banner shows of one hold; its way back is the payment page, or the hold's page if none."""
    return HeldNumbers(
        hold=hold,
        numbers_text=number_ranges(unit.number for unit in hold.units),
        until_text=local_clock_text(hold.expires_at, shop_zone()),
        continue_url=hold.payment_url or url_for("shop.show_hold", token=hold.token),
        cancel_url=url_for("shop.cancel_hold", token=hold.token),
        now=now,
    )


def banner_holds() -> list[HeldNumbers]:
    """What the hold banner shows on this page: nothing on producer pages or on the page of the same hold."""
    if not has_request_context() or request.blueprint in NO_BANNER_BLUEPRINTS:
        return []
    if request.endpoint in NO_BANNER_ENDPOINTS:
        return []
    now = clock.now()
    try:
        holds = browser_holds(now)
    except SQLAlchemyError:
        # The banner of an error page (the database is down) must not fail a second time.
        log.warning("The hold banner could not read this browser's holds", exc_info=True)
        db.session.rollback()
        return []
    if request.endpoint == "shop.show_hold":
        shown = (request.view_args or {}).get("token")
        holds = [hold for hold in holds if hold.token != shown]
    if holds:
        g.hold_banner_shown = True
    return [banner_for(hold, now) for hold in holds]


bp.add_app_template_filter(number_ranges, "number_ranges")


@bp.app_context_processor
def hold_banner_helpers() -> dict:
    # A function, not a list: only a page that renders the banner asks the database, and only once it does.
    return {"hold_banner": banner_holds}


@bp.before_app_request
def forget_banner_of_another_request() -> None:
    # `g` lives as long as the app context, which a request run inside another's (a test's) shares.
    g.pop("hold_banner_shown", None)


@bp.after_app_request
def keep_banner_pages_private(response: Response) -> Response:
    """A page that shows someone's hold is theirs alone: never kept by a shared cache."""
    if g.get("hold_banner_shown"):
        response.headers["Cache-Control"] = "private, no-store"
        response.vary.add("Cookie")
    return response
