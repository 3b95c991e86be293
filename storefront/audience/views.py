"""Signing up for news of new batches (double opt-in), unsubscribing, the Atom feed and release calendar files.

Signing up never tells whether an address is already on the list: new, pending and confirmed addresses all get
the same redirect to the same page, and only the mail (or its absence) differs, which only the mailbox's owner
sees. Sign-ups are limited per client IP and per address (SUBSCRIBE_LIMIT_PER_IP, SUBSCRIBE_LIMIT_PER_EMAIL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import abort, current_app, g, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.audience import bp, mailings, tokens
from storefront.audience.forms import ConfirmSubscriptionForm, SubscribeForm, UnsubscribeForm
from storefront.calendar import calendar_filename
from storefront.domain import subscribers
from storefront.domain.errors import DomainError
from storefront.domain.subscribers import ONE_CLICK_BODY, SubscriptionEnded, UnknownSubscriber
from storefront.extensions import csrf, db, limiter
from storefront.models import Batch, BatchImage, Release, Subscriber, SubscriberStatus
from storefront.rate_limits import too_many_requests
from storefront.text import format_money
from storefront.unit_of_work import write_transaction
from storefront.urls import external_url

FEED_LIMIT = 50
GONE_SUBSCRIBER = "This link is for a subscription the shop no longer has. You can sign up again below."


# --- Signing up ---------------------------------------------------------------------------------------------------


def subscribe_limit_per_ip() -> str:
    return current_app.config["SUBSCRIBE_LIMIT_PER_IP"]


def subscribe_limit_per_email() -> str:
    return current_app.config["SUBSCRIBE_LIMIT_PER_EMAIL"]


def submitted_email() -> str:
    """The address being signed up, in the spelling-independent form subscribers are keyed by."""
    typed = (request.form.get("email") or "").strip()
    try:
        key = subscribers.subscriber_email_key(typed)
    except DomainError:
        key = typed.lower()[:320]
    # Never empty: Flask-Limiter skips a limit whose key is empty.
    return f"email:{key}"


@bp.get("/subscribe")
def new_subscription():
    """The sign-up form on a page of its own (the home and story pages carry the same form)."""
    return render_template("audience/new_subscription.html", form=SubscribeForm())


@bp.post("/subscribe")
@limiter.limit(subscribe_limit_per_ip)
@limiter.limit(subscribe_limit_per_email, key_func=submitted_email)
def create_subscription():
    """Sign an address up and mail it a confirmation link when one is due; the same answer for every address."""
    form = SubscribeForm()
    if not form.validate_on_submit():
        return render_template("audience/new_subscription.html", form=form), 400
    resend_after = timedelta(minutes=current_app.config["SUBSCRIBE_RESEND_MINUTES"])
    try:
        with write_transaction(db.session):
            sign_up = subscribers.subscribe(db.session, form.email.data, clock.now(), resend_after=resend_after)
            if sign_up.send_confirmation:
                mailings.queue_confirmation(db.session, sign_up.subscriber)
    except DomainError as refusal:
        form.email.errors = [*form.email.errors, refusal.message]
        return render_template("audience/new_subscription.html", form=form), 400
    return redirect(url_for("audience.show_subscription_requested"), code=303)


@bp.get("/subscribe/check-your-inbox")
def show_subscription_requested():
    """Ask the visitor to confirm from their mailbox (shown whatever the address's state was)."""
    return render_template(
        "audience/subscription_requested.html", confirm_hours=current_app.config["SUBSCRIBE_CONFIRM_HOURS"]
    )


# --- Confirming ---------------------------------------------------------------------------------------------------


def link_problem(message: str, status: int, *, offer_sign_up: bool = True):
    """A page explaining why a link from a mail cannot be used; nothing was changed."""
    page = render_template(
        "audience/link_problem.html",
        message=message,
        form=SubscribeForm(formdata=None) if offer_sign_up else None,
    )
    return page, status


@bp.route("/subscribe/confirm/<token>", methods=["GET", "POST"])
def confirm_subscription(token: str):
    """Show a button that confirms a sign-up (GET), and confirm it (POST).

    Confirming takes a button press, not the mere opening of the link: mail scanners open the links in a mail
    before its reader does, and must not be able to confirm an address on its owner's behalf.
    """
    try:
        subscriber_id = tokens.read_confirmation_token(token)
    except tokens.ExpiredLink:
        return link_problem(
            f"This confirmation link has expired (links work for {current_app.config['SUBSCRIBE_CONFIRM_HOURS']} "
            "hours). Nothing was changed: sign up again below and we will send a fresh one.",
            400,
        )
    except tokens.InvalidLink:
        return link_problem(
            "This confirmation link is not valid: it may have been cut short when it was copied. Nothing was "
            "changed. Open the link from the mail again, or sign up again below.",
            400,
        )
    form = ConfirmSubscriptionForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("shop/stale_form.html", back_url=request.path), 400
        try:
            with write_transaction(db.session):
                subscribers.confirm_subscription(db.session, subscriber_id, clock.now())
        except UnknownSubscriber:
            return link_problem(GONE_SUBSCRIBER, 404)
        except SubscriptionEnded as refusal:
            return link_problem(refusal.message, 409)
        return redirect(request.path, code=303)

    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return link_problem(GONE_SUBSCRIBER, 404)
    return render_template("audience/confirm_subscription.html", subscriber=subscriber, form=form)


# --- Unsubscribing ------------------------------------------------------------------------------------------------


def is_one_click_request() -> bool:
    """A mail provider's one-click unsubscribe (RFC 8058): a POST whose body is exactly that one field."""
    return request.method == "POST" and request.form.get("List-Unsubscribe") == ONE_CLICK_BODY.partition("=")[2]


# Exempt from the global CSRF check because mail providers POST "List-Unsubscribe=One-Click" here from their own
# servers (RFC 8058), with no session and no token. The signed token in the URL is the authority instead: only the
# mailbox it was sent to knows it, and knowing it lets one do nothing but unsubscribe that mailbox. Any other POST
# still needs the form's CSRF token, checked by UnsubscribeForm below.
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """Show a button that unsubscribes (GET); unsubscribe (POST with the form, or a one-click POST)."""
    try:
        subscriber_id = tokens.read_unsubscribe_token(token)
    except tokens.InvalidLink:
        return link_problem(
            "This unsubscribe link is not valid: it may have been cut short when it was copied. Nothing was "
            "changed. Open the link from the mail again.",
            400,
            offer_sign_up=False,
        )
    # The global check skipped this view, so a "token already checked" mark in `g` was left by another request
    # sharing the app context (a test's, a CLI command's); the form must check this request's own token.
    g.pop("csrf_valid", None)
    form = UnsubscribeForm()
    if request.method == "POST":
        one_click = is_one_click_request()
        if not one_click and not form.validate_on_submit():
            return render_template("shop/stale_form.html", back_url=request.path), 400
        try:
            with write_transaction(db.session):
                subscribers.unsubscribe(db.session, subscriber_id, clock.now())
        except UnknownSubscriber:
            return link_problem(GONE_SUBSCRIBER, 404, offer_sign_up=False)
        if one_click:
            return render_template("audience/unsubscribed.html"), 200
        return redirect(request.path, code=303)

    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return link_problem(GONE_SUBSCRIBER, 404, offer_sign_up=False)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return render_template("audience/unsubscribed.html")
    return render_template("audience/unsubscribe.html", form=form)


# --- Calendar and feed ----------------------------------------------------------------------------------------------


@bp.get("/releases/<slug>/calendar.ics")
def show_release_calendar(slug: str):
    """The release's drop as a calendar file (the same one its announcement carries)."""
    release = db.session.scalar(select(Release).where(Release.slug == slug).options(selectinload(Release.batch)))
    if release is None:
        abort(404, description="There is no release at this address. It may have been renamed or removed.")
    response = make_response(mailings.release_calendar(release))
    response.headers["Content-Type"] = "text/calendar; charset=utf-8; method=PUBLISH"
    response.headers["Content-Disposition"] = f'attachment; filename="{calendar_filename(release)}"'
    return response


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the Atom feed: a batch story or a release."""

    id: str
    title: str
    url: str
    published: datetime
    updated: datetime
    summary: str


def tag_uri(kind: str, row_id: int, created: datetime) -> str:
    """A permanent entry id (RFC 4151) that survives a change of slug: "tag:shop.example,2026-07-01:release/3"."""
    host = urlsplit(current_app.config["SHOP_URL"]).hostname or "localhost"
    return f"tag:{host},{created:%Y-%m-%d}:{kind}/{row_id}"


def batch_entry(batch: Batch) -> FeedEntry:
    return FeedEntry(
        id=tag_uri("batch", batch.id, batch.created_at),
        title=f"{batch.title} (batch {batch.code})",
        url=external_url("story.show_batch", slug=batch.slug),
        published=batch.created_at,
        updated=batch.updated_at,
        summary=batch.summary or f"The story of batch {batch.code} of {batch.product.name}.",
    )


def release_entry(release: Release) -> FeedEntry:
    return FeedEntry(
        id=tag_uri("release", release.id, release.created_at),
        title=f"{release.batch.title}: {release.title}",
        url=external_url("shop.show_release", slug=release.slug),
        published=release.created_at,
        updated=release.updated_at,
        summary=(
            f"A numbered run of {release.total_units} at {format_money(release.price_amount, release.currency)}, "
            f"on sale {mailings.shop_time(release.on_sale_at)}."
        ),
    )


@bp.get("/feed.atom")
def show_feed():
    """An Atom feed of the newest batches and releases, for feed readers."""
    batches = db.session.scalars(
        select(Batch).options(selectinload(Batch.product)).order_by(Batch.updated_at.desc()).limit(FEED_LIMIT)
    ).all()
    releases = db.session.scalars(
        select(Release).options(selectinload(Release.batch)).order_by(Release.updated_at.desc()).limit(FEED_LIMIT)
    ).all()
    entries = [batch_entry(batch) for batch in batches] + [release_entry(release) for release in releases]
    entries.sort(key=lambda entry: entry.updated, reverse=True)
    entries = entries[:FEED_LIMIT]
    page = render_template(
        "feed/feed.atom.xml",
        entries=entries,
        feed_url=external_url("audience.show_feed"),
        home_url=external_url("shop.show_home"),
        updated=entries[0].updated if entries else clock.now(),
    )
    response = make_response(page)
    response.headers["Content-Type"] = "application/atom+xml; charset=utf-8"
    if entries:
        # Feed readers ask again with If-Modified-Since; cache headers and the 304 are storefront/http_caching.py's.
        response.last_modified = entries[0].updated
    return response


# --- Sharing: Open Graph and Twitter card tags ----------------------------------------------------------------------


@dataclass(frozen=True)
class ShareImage:
    url: str
    alt: str
    width: int | None
    height: int | None


@bp.app_template_global()
def share_image(batch: Batch) -> ShareImage | None:
    """The batch's cover photo as a link preview shows it: its largest copy, at an absolute address."""
    if not batch.images:
        return None
    cover: BatchImage = batch.images[0]
    path, width, height = cover.path, cover.width, cover.height
    if cover.variants:
        largest = max(cover.variants, key=lambda variant: variant.get("width") or 0)
        path, width, height = largest["path"], largest.get("width"), largest.get("height")
    return ShareImage(external_url("media.show_media", filename=path), cover.alt_text, width, height)


@bp.app_template_global("external_url")
def external_url_global(endpoint: str, **values) -> str:
    """An absolute address on SHOP_URL, for tags read by other sites (link previews, feeds)."""
    return external_url(endpoint, **values)


# --- Errors -------------------------------------------------------------------------------------------------------


@bp.errorhandler(429)
def explain_too_many_sign_ups(error):
    """Say plainly that sign-ups from here are paused for a while, instead of a bare 429."""
    return too_many_requests("audience/too_many_sign_ups.html")


@bp.errorhandler(CSRFError)
def explain_missing_form_token(error: CSRFError):
    """A sign-up without its security token (a stale page, or a bot): nothing happened; offer the form again."""
    back_url = (
        request.path if request.endpoint != "audience.create_subscription" else url_for("audience.new_subscription")
    )
    return render_template("shop/stale_form.html", back_url=back_url), 400
