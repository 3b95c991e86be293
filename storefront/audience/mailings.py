"""Mail to subscribers: the confirmation of a sign-up, and a release's announcement with its calendar file.

Every mail to a subscriber carries their one-click unsubscribe link in the text and in the List-Unsubscribe and
List-Unsubscribe-Post headers (RFC 8058), so a mail provider can offer its own "unsubscribe" button.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy.orm import Session

from storefront import calendar, notifications
from storefront.audience import tokens
from storefront.domain.announcements import EARLY_ACCESS_LINK, UNSUBSCRIBE_LINK, AnnouncementMail, WaiterMail
from storefront.domain.subscribers import list_unsubscribe_headers
from storefront.models import OutboxMessage, Release, Subscriber
from storefront.shop_time import shop_time
from storefront.text import iso_utc
from storefront.urls import external_url


def queue_confirmation(session: Session, subscriber: Subscriber) -> OutboxMessage:
    """Queue the mail whose signed link confirms a sign-up."""
    unsubscribe_url = tokens.unsubscribe_url(subscriber.id)
    return notifications.queue_mail(
        session,
        subscriber.email,
        "subscription_confirm",
        headers=list_unsubscribe_headers(unsubscribe_url),
        confirm_url=tokens.confirmation_url(subscriber.id),
        confirm_hours=current_app.config["SUBSCRIBE_CONFIRM_HOURS"],
        unsubscribe_url=unsubscribe_url,
    )


def release_calendar(release: Release) -> str:
    """The .ics text for a release's drop, with absolute links to its page."""
    return calendar.release_calendar(
        release,
        release_url=external_url("shop.show_release", slug=release.slug),
        shop_name=current_app.config["SHOP_NAME"],
        shop_url=current_app.config["SHOP_URL"],
    )


def calendar_attachment(release: Release) -> dict[str, str]:
    return {
        "filename": calendar.calendar_filename(release),
        "content_type": calendar.CONTENT_TYPE,
        "content": release_calendar(release),
    }


def compose_announcement(release: Release, now: datetime) -> AnnouncementMail:
    """The announcement of `release` as every confirmed subscriber will get it (the preview shows the same), and
    the version the product's waiters get, with their personal early-access link when the release has one."""
    from storefront.waitlist import tokens as waitlist_tokens

    context = dict(
        release=release,
        batch=release.batch,
        on_sale_now=now >= release.on_sale_at,
        on_sale_iso=iso_utc(release.on_sale_at),
        on_sale_local=shop_time(release.on_sale_at),
        early_access=release.early_access_at is not None and now < release.on_sale_at,
        early_access_local=shop_time(release.early_access_at) if release.early_access_at else "",
        unsubscribe_url=UNSUBSCRIBE_LINK,
        early_access_url=EARLY_ACCESS_LINK,
    )
    subject, body = notifications.render_mail("release_announced", waiter=False, **context)
    waiter_subject, waiter_body = notifications.render_mail("release_announced", waiter=True, **context)
    return AnnouncementMail(
        subject=subject,
        body=body,
        attachments=(calendar_attachment(release),),
        unsubscribe_url=tokens.unsubscribe_url,
        for_waiters=WaiterMail(
            subject=waiter_subject,
            body=waiter_body,
            unsubscribe_url=waitlist_tokens.unsubscribe_url,
            early_access_url=lambda entry_id: waitlist_tokens.early_access_url(entry_id, release.id),
        ),
    )
