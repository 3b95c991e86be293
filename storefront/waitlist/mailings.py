"""Mail to waiters: the confirmation of a place, an offer of a freed number, early access to a new release.

Every mail to a waiter carries their one-click link off every list, in the text and in the List-Unsubscribe and
List-Unsubscribe-Post headers (RFC 8058). No mail carries text a visitor typed except their own name, so the join
form cannot be used to send anyone a message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy.orm import Session

from storefront import notifications
from storefront.domain import waitlist
from storefront.domain.subscribers import list_unsubscribe_headers
from storefront.models import OutboxMessage, Release, WaitlistEntry, WaitlistOffer
from storefront.shop_time import shop_time
from storefront.unit_of_work import end_read, write_transaction
from storefront.waitlist import tokens

log = logging.getLogger(__name__)


def queue_confirmation(session: Session, entry: WaitlistEntry) -> OutboxMessage:
    """Queue the mail whose signed link confirms a place on a list."""
    unsubscribe_url = tokens.unsubscribe_url(entry.id)
    return notifications.queue_mail(
        session,
        entry.email,
        "waitlist_confirm",
        headers=list_unsubscribe_headers(unsubscribe_url),
        entry=entry,
        product=entry.product,
        release=entry.release,
        confirm_url=tokens.confirmation_url(entry.id),
        confirm_hours=current_app.config["WAITLIST_CONFIRM_HOURS"],
        unsubscribe_url=unsubscribe_url,
    )


def queue_offer(session: Session, offer: WaitlistOffer) -> OutboxMessage:
    """Queue the mail that offers a waiter their number, with the personal link to claim it."""
    entry = offer.entry
    unsubscribe_url = tokens.unsubscribe_url(entry.id)
    release = offer.release
    return notifications.queue_mail(
        session,
        entry.email,
        "waitlist_offer",
        headers=list_unsubscribe_headers(unsubscribe_url),
        entry=entry,
        offer=offer,
        release=release,
        batch=release.batch,
        offer_url=tokens.offer_url(offer.token),
        expires_local=shop_time(offer.expires_at),
        offer_minutes=current_app.config["WAITLIST_OFFER_MINUTES"],
        unsubscribe_url=unsubscribe_url,
    )


def queue_early_access(session: Session, entry: WaitlistEntry, release: Release) -> OutboxMessage:
    """Queue a waiter's personal early-access link to a release already announced (they confirmed after it)."""
    unsubscribe_url = tokens.unsubscribe_url(entry.id)
    return notifications.queue_mail(
        session,
        entry.email,
        "waitlist_early_access",
        headers=list_unsubscribe_headers(unsubscribe_url),
        entry=entry,
        release=release,
        batch=release.batch,
        early_access_url=tokens.early_access_url(entry.id, release.id),
        early_access_local=shop_time(release.early_access_at),
        on_sale_local=shop_time(release.on_sale_at),
        unsubscribe_url=unsubscribe_url,
    )


def notify_offers(session: Session, now: datetime, clock=None) -> int:
    """Mail every offer not yet mailed, starting its time as it is queued; returns how many. Safe to run twice
    and on several workers: each offer is started once, under its hold's lock (`waitlist.start_offer_clock`)."""
    offer_for = timedelta(minutes=current_app.config["WAITLIST_OFFER_MINUTES"])
    offer_ids = waitlist.unnotified_offer_ids(session)
    end_read(session)
    sent = 0
    for offer_id in offer_ids:
        at = clock() if clock is not None else now
        with write_transaction(session):
            offer = waitlist.start_offer_clock(session, offer_id, at, offer_for)
            if offer is not None:
                queue_offer(session, offer)
                sent += 1
    if sent:
        log.info("Mailed %s waitlist offers", sent)
    return sent
