"""Announcing releases to subscribers, and the subscriber list."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.audience.mailings import compose_announcement
from storefront.domain.activity import Actor
from storefront.domain.announcements import (
    UNSUBSCRIBE_LINK,
    AlreadyAnnounced,
    announce_release,
    check_announceable,
    find_announcement,
    list_announcements,
)
from storefront.domain.errors import DomainError
from storefront.domain.subscribers import count_confirmed, count_subscribers
from storefront.domain.waitlist import count_waiters_not_subscribed, early_access_recipients
from storefront.extensions import db
from storefront.models import Batch, Release, Subscriber, User
from storefront.producer import bp
from storefront.producer.announcement_forms import SendAnnouncementForm
from storefront.shop_time import shop_time
from storefront.unit_of_work import write_transaction

SUBSCRIBERS_PER_PAGE = 50


@bp.get("/subscribers")
def list_subscribers():
    """The people who asked to hear about new batches, and the announcements sent to them."""
    page = request.args.get("page", default=1, type=int)
    subscribers = db.paginate(
        select(Subscriber).order_by(Subscriber.created_at.desc(), Subscriber.id.desc()),
        page=max(page, 1),
        per_page=SUBSCRIBERS_PER_PAGE,
        max_per_page=SUBSCRIBERS_PER_PAGE,
        error_out=False,
        count=True,
    )
    return render_template(
        "producer/list_subscribers.html",
        counts=count_subscribers(db.session),
        subscribers=subscribers,
        announcements=list_announcements(db.session),
    )


def get_release_or_404(release_id: int) -> Release:
    release = db.session.scalar(
        select(Release).where(Release.id == release_id).options(selectinload(Release.batch).selectinload(Batch.product))
    )
    if release is None:
        abort(404, description="There is no such release.")
    return release


def already_sent_message(refusal: AlreadyAnnounced) -> str:
    people = "subscriber" if refusal.recipient_count == 1 else "subscribers"
    return f"Already sent on {shop_time(refusal.sent_at)} to {refusal.recipient_count} {people}."


def recipients_text(count: int, with_waiters: bool) -> str:
    """Write the count as "3 subscribers", or as "5 people" when the product's waiters are among them."""
    if with_waiters:
        return f"{count} {'person' if count == 1 else 'people'}"
    return f"{count} {'subscriber' if count == 1 else 'subscribers'}"


def render_preview(release: Release, form: SendAnnouncementForm, status: int = 200, problem: str | None = None):
    """The mail as subscribers will get it, how many will get it, and the button (or why it cannot be sent)."""
    now = clock.now()
    mail = compose_announcement(release, now)
    announcement = find_announcement(db.session, release.id)
    sent_by = db.session.get(User, announcement.sent_by_id) if announcement and announcement.sent_by_id else None
    refusal = None
    try:
        check_announceable(db.session, release, now)
    except AlreadyAnnounced as already:
        refusal = already_sent_message(already)
    except DomainError as other:
        refusal = other.message
    # Each address gets one mail: the product's waiters get theirs (with their early-access link) instead of the
    # subscribers' one, so those who are both are counted once.
    product_id = release.batch.product_id
    waiters = len(early_access_recipients(db.session, product_id))
    recipients = count_confirmed(db.session) + count_waiters_not_subscribed(db.session, product_id)
    page = render_template(
        "producer/preview_announcement.html",
        release=release,
        batch=release.batch,
        mail=mail,
        body_parts=mail.body.split(UNSUBSCRIBE_LINK),
        recipients=recipients,
        recipients_text=recipients_text(recipients, waiters > 0),
        waiters=waiters,
        early_access=release.early_access_at is not None and now < release.on_sale_at,
        early_access_from=shop_time(release.early_access_at),
        on_sale_from=shop_time(release.on_sale_at),
        announcement=announcement,
        sent_by=sent_by,
        refusal=refusal,
        problem=problem,
        form=form,
        mail_from=current_app.config["MAIL_FROM"],
    )
    return page, status


@bp.get("/releases/<int:release_id>/announce")
def preview_announcement(release_id: int):
    """Show the announcement mail as subscribers will get it, with the button that sends it."""
    return render_preview(get_release_or_404(release_id), SendAnnouncementForm())


@bp.post("/releases/<int:release_id>/announce")
def send_announcement(release_id: int):
    """Send the announcement to every confirmed subscriber, once; a second attempt says when it went."""
    release = get_release_or_404(release_id)
    form = SendAnnouncementForm()
    if not form.validate_on_submit():
        return render_preview(release, form, status=400, problem="The form expired. Nothing was sent: try again.")
    now = clock.now()
    mail = compose_announcement(release, now)
    try:
        with write_transaction(db.session):
            announcement = announce_release(db.session, release.id, now, Actor.of(current_user), mail)
            count = announcement.recipient_count
    except AlreadyAnnounced as refusal:
        return render_preview(release, form, status=409, problem=already_sent_message(refusal))
    except DomainError as refusal:
        return render_preview(release, form, status=409, problem=refusal.message)
    with_waiters = bool(early_access_recipients(db.session, release.batch.product_id))
    flash(f"The announcement is on its way to {recipients_text(count, with_waiters)}.", "success")
    return redirect(url_for("producer.preview_announcement", release_id=release_id), code=303)
