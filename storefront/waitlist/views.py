"""Waitlist pages: join (double opt-in), confirm, leave, answer an offer of a freed number, reserve with early access.

Joining never tells whether an address is already on the list: new, pending and confirmed addresses all get the same
redirect to the same page, and only the mail (or its absence) differs, which only the mailbox's owner sees. Joins
are limited per client IP and per address (WAITLIST_LIMIT_PER_IP, WAITLIST_LIMIT_PER_EMAIL); claiming an offer and
reserving early draw on the release page's reserve allowances (storefront.shop.limits).
"""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from storefront import clock
from storefront.audience.views import is_one_click_request
from storefront.checkout import flows
from storefront.checkout.flows import CheckoutUnavailable
from storefront.domain import waitlist
from storefront.domain.errors import DomainError
from storefront.domain.inventory import Buyer, claim
from storefront.domain.waitlist import EarlyAccessUnavailable, EntryEnded, OfferUnavailable, UnknownEntry
from storefront.extensions import csrf, db, limiter
from storefront.models import (
    Batch,
    Hold,
    HoldStatus,
    OfferStatus,
    Product,
    Release,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storefront.payments import PaymentError, gateway
from storefront.rate_limits import too_many_requests
from storefront.shop import held
from storefront.shop.limits import buyer_limit_key, reserve_limit_by_buyer, reserve_limit_by_ip
from storefront.shop.views import checkout_settings_for, describe_refusal, get_release_or_404, shop_buyer_key
from storefront.unit_of_work import write_transaction
from storefront.waitlist import bp, mailings, tokens
from storefront.waitlist.forms import (
    AnswerOfferForm,
    ConfirmEntryForm,
    EarlyReserveForm,
    JoinWaitlistForm,
    LeaveWaitlistForm,
)

GONE_ENTRY = (
    "This link is for a waitlist place the shop no longer has. You can join the list again from the release page."
)


# --- Joining -------------------------------------------------------------------------------------------------------


def join_limit_per_ip() -> str:
    return current_app.config["WAITLIST_LIMIT_PER_IP"]


def join_limit_per_email() -> str:
    return current_app.config["WAITLIST_LIMIT_PER_EMAIL"]


def submitted_email() -> str:
    """The address being put on a list, in the spelling-independent form entries are keyed by."""
    typed = (request.form.get("email") or "").strip()
    try:
        key = waitlist.waitlist_email_key(typed)
    except DomainError:
        key = typed.lower()[:320]
    # Never empty: Flask-Limiter skips a limit whose key is empty.
    return f"waitlist-email:{key}"


# Shared by both join forms: one allowance per client and per address, whichever list they join.
join_limit_by_ip = limiter.shared_limit(join_limit_per_ip, scope="waitlist-join-ip")
join_limit_by_email = limiter.shared_limit(join_limit_per_email, scope="waitlist-join-email", key_func=submitted_email)


def early_access_buyer() -> str:
    """The buyer an early-access link was sent to, whose allowance its reserve draws on (shop.limits)."""
    token = (request.view_args or {}).get("token", "")
    try:
        entry_id, _release_id = tokens.read_early_access_token(token)
    except tokens.InvalidLink:
        return buyer_limit_key(f"link:{token[:64]}")
    key = db.session.scalar(select(WaitlistEntry.buyer_key).where(WaitlistEntry.id == entry_id))
    return buyer_limit_key(key if key is not None else f"entry:{entry_id}")


def offered_buyer() -> str:
    """The buyer a number was offered to, whose allowance its claim draws on (shop.limits)."""
    token = (request.view_args or {}).get("token", "")[:64]
    key = db.session.scalar(
        select(WaitlistEntry.buyer_key)
        .join(WaitlistOffer, WaitlistOffer.entry_id == WaitlistEntry.id)
        .where(WaitlistOffer.token == token)
    )
    return buyer_limit_key(key if key is not None else f"offer:{token}")


def get_product_or_404(slug: str) -> Product:
    product = db.session.scalar(select(Product).where(Product.slug == slug))
    if product is None:
        abort(404, description="There is no product at this address.")
    return product


@bp.post("/releases/<slug>")
@join_limit_by_ip
@join_limit_by_email
def join_release_waitlist(slug: str):
    """Join the line for a release's freed numbers (and its product's next batches)."""
    release = get_release_or_404(slug)
    return join(release.batch.product, release)


@bp.post("/products/<slug>")
@join_limit_by_ip
@join_limit_by_email
def join_product_waitlist(slug: str):
    """Join the list for a product's next batches: early access when the maker opens one."""
    return join(get_product_or_404(slug), None)


def join(product: Product, release: Release | None):
    form = JoinWaitlistForm()
    if not form.validate_on_submit():
        return render_join_page(product, release, form, 400)
    resend_after = timedelta(minutes=current_app.config["WAITLIST_RESEND_MINUTES"])
    try:
        with write_transaction(db.session):
            joined = waitlist.join_waitlist(
                db.session,
                product_id=product.id,
                release_id=release.id if release is not None else None,
                email=form.email.data,
                buyer_key=shop_buyer_key(form.email.data),
                name=form.name.data or "",
                now=clock.now(),
                resend_after=resend_after,
            )
            if joined.send_confirmation:
                mailings.queue_confirmation(db.session, joined.entry)
    except DomainError as refusal:
        form.email.errors = [*form.email.errors, refusal.message]
        return render_join_page(product, release, form, 400)
    return redirect(url_for("waitlist.show_join_requested"), code=303)


def render_join_page(product: Product, release: Release | None, form: JoinWaitlistForm, status: int):
    """The join form on a page of its own, with what was wrong next to the field."""
    page = render_template("waitlist/join.html", product=product, release=release, form=form)
    return page, status


@bp.get("/check-your-inbox")
def show_join_requested():
    """Ask the visitor to confirm from their mailbox (shown whatever the address's state was)."""
    return render_template("waitlist/join_requested.html", confirm_hours=current_app.config["WAITLIST_CONFIRM_HOURS"])


# --- Confirming ----------------------------------------------------------------------------------------------------


def link_problem(message: str, status: int):
    """A page explaining why a link from a mail cannot be used; nothing was changed."""
    return render_template("waitlist/link_problem.html", message=message), status


def get_entry_or_none(entry_id: int) -> WaitlistEntry | None:
    return db.session.scalar(
        select(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id)
        .options(selectinload(WaitlistEntry.product), selectinload(WaitlistEntry.release))
    )


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm_entry(token: str):
    """Show a button that confirms a place (GET), and confirm it (POST), then show the place in line.

    Confirming takes a button press, not the mere opening of the link: mail scanners open the links in a mail
    before its reader does, and must not be able to confirm an address on its owner's behalf.
    """
    try:
        entry_id = tokens.read_confirmation_token(token)
    except tokens.ExpiredLink:
        return link_problem(
            f"This confirmation link has expired (links work for {current_app.config['WAITLIST_CONFIRM_HOURS']} "
            "hours). Nothing was changed: join the waitlist again and we will send a fresh one.",
            400,
        )
    except tokens.InvalidLink:
        return link_problem(
            "This confirmation link is not valid: it may have been cut short when it was copied. Nothing was "
            "changed. Open the link from the mail again.",
            400,
        )
    form = ConfirmEntryForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return render_template("shop/stale_form.html", back_url=request.path), 400
        now = clock.now()
        try:
            with write_transaction(db.session):
                entry = waitlist.confirm_entry(db.session, entry_id, now)
                release = waitlist.release_with_early_access_ahead(db.session, entry.product_id, now)
                if release is not None and entry.confirmed_at == now:
                    # Confirmed after the next release was announced: their early-access link comes now.
                    mailings.queue_early_access(db.session, entry, release)
                place_token, release_slug = entry.token, entry.release.slug if entry.release else None
        except UnknownEntry:
            return link_problem(GONE_ENTRY, 404)
        except EntryEnded as refusal:
            return link_problem(refusal.message, 409)
        if release_slug is not None:
            return redirect(
                url_for("shop.show_release", slug=release_slug, waiter=place_token, _anchor="waitlist"), 303
            )
        return redirect(request.path, code=303)

    entry = get_entry_or_none(entry_id)
    if entry is None:
        return link_problem(GONE_ENTRY, 404)
    # The page of an ended entry explains why its link no longer works, with the status its button would get.
    ended = entry.status in (WaitlistStatus.UNSUBSCRIBED, WaitlistStatus.REMOVED)
    return render_template("waitlist/confirm_entry.html", entry=entry, form=form), 409 if ended else 200


# --- Leaving -------------------------------------------------------------------------------------------------------


# Exempt from the global CSRF check because mail providers POST "List-Unsubscribe=One-Click" here from their own
# servers (RFC 8058), with no session and no token. The signed token in the URL is the authority instead: only the
# mailbox it was sent to knows it, and knowing it lets one do nothing but take that mailbox off the lists. Any other
# POST still needs the form's CSRF token, checked by LeaveWaitlistForm below.
@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """Show a button that takes the address off every waitlist (GET); do it (POST with the form, or one-click)."""
    try:
        entry_id = tokens.read_unsubscribe_token(token)
    except tokens.InvalidLink:
        return link_problem(
            "This unsubscribe link is not valid: it may have been cut short when it was copied. Nothing was "
            "changed. Open the link from the mail again.",
            400,
        )
    # The global check skipped this view; the form must check this request's own token, not a mark left in `g`.
    g.pop("csrf_valid", None)
    form = LeaveWaitlistForm()
    if request.method == "POST":
        one_click = is_one_click_request()
        if not one_click and not form.validate_on_submit():
            return render_template("shop/stale_form.html", back_url=request.path), 400
        now = clock.now()
        try:
            with write_transaction(db.session):
                offer_holds = waitlist.unsubscribe_address(db.session, entry_id, now)
        except UnknownEntry:
            return link_problem(GONE_ENTRY, 404)
        withdraw_offers(offer_holds)
        if one_click:
            return render_template("waitlist/unsubscribed.html"), 200
        return redirect(request.path, code=303)

    entry = get_entry_or_none(entry_id)
    if entry is None:
        return link_problem(GONE_ENTRY, 404)
    if entry.status == WaitlistStatus.UNSUBSCRIBED:
        return render_template("waitlist/unsubscribed.html")
    return render_template("waitlist/unsubscribe.html", entry=entry, form=form)


def withdraw_offers(hold_ids: list[int]) -> None:
    """End the holds of offers whose waiter left, through the one flow every hold ending takes; their numbers pass
    to the next waiter. A gateway failure leaves the hold to the sweeper."""
    for hold_id in hold_ids:
        try:
            flows.end_hold(db.session, gateway(), hold_id, "withdrawn", clock.now())
        except PaymentError:
            current_app.logger.warning("Could not end offer hold %s yet; the sweeper will", hold_id)


# --- An offer ------------------------------------------------------------------------------------------------------


def get_offer_or_404(token: str) -> WaitlistOffer:
    offer = db.session.scalar(
        select(WaitlistOffer)
        .where(WaitlistOffer.token == token)
        .options(
            selectinload(WaitlistOffer.release).selectinload(Release.batch).selectinload(Batch.product),
            selectinload(WaitlistOffer.entry),
        )
    )
    if offer is None or offer.hold_id is None:
        abort(404, description="There is no offer at this address. Check the link in your mail.")
    return offer


def render_offer(offer: WaitlistOffer, status: int = 200, problem: str | None = None):
    hold = db.session.get(Hold, offer.hold_id)
    now = clock.now()
    page = render_template(
        "waitlist/show_offer.html",
        offer=offer,
        hold=hold,
        release=offer.release,
        batch=offer.release.batch,
        open_now=offer.status == "live" and hold.status == HoldStatus.ACTIVE and now < hold.expires_at,
        problem=problem,
        form=AnswerOfferForm(),
        now=now,
    )
    return page, status, {"Cache-Control": "private, no-store"}


@bp.get("/offers/<token>")
def show_offer(token: str):
    """The offer of a freed number: which one, until when, and the buttons to claim it or pass it on."""
    return render_offer(get_offer_or_404(token))


@bp.post("/offers/<token>/claim")
@reserve_limit_by_ip
@reserve_limit_by_buyer(offered_buyer)
def claim_offer(token: str):
    """Claim the offered number and go straight to payment; claiming twice returns to the same payment page."""
    offer = get_offer_or_404(token)
    form = AnswerOfferForm()
    if not form.validate_on_submit():
        return render_template("shop/stale_form.html", back_url=url_for("waitlist.show_offer", token=token)), 400
    now = clock.now()
    try:
        with write_transaction(db.session):
            hold = waitlist.claim_offer(
                db.session, offer.id, now, timedelta(minutes=current_app.config["HOLD_MINUTES"])
            )
            hold_id, hold_token = hold.id, hold.token
    except OfferUnavailable as refusal:
        return render_offer(offer, 409, refusal.message)
    except DomainError as refusal:
        return render_offer(offer, 409, refusal.message)
    held.remember_hold(hold_token)
    try:
        checkout_url = flows.start_checkout(db.session, gateway(), hold_id, now, checkout_settings_for(hold_token))
    except CheckoutUnavailable:
        db.session.rollback()
        db.session.refresh(offer)
        if offer.status == OfferStatus.LIVE:
            return render_offer(
                offer,
                503,
                "We could not open the payment page just now. The number is still held for you: try again in a moment.",
            )
        release = offer.release
        return render_template("shop/checkout_unavailable.html", release=release, batch=release.batch), 503
    return redirect(checkout_url, code=303)


@bp.post("/offers/<token>/decline")
def decline_offer(token: str):
    """Pass the number on to the next person in line (through the one flow every hold ending takes)."""
    offer = get_offer_or_404(token)
    form = AnswerOfferForm()
    if not form.validate_on_submit():
        return render_template("shop/stale_form.html", back_url=url_for("waitlist.show_offer", token=token)), 400
    if offer.status == "claimed":
        # A page left open from before the claim: the number is theirs while they pay, and is let go from there.
        message = "You claimed this number and went to pay for it. To let it go, cancel on its payment page."
        return render_offer(offer, 409, message)
    if offer.status != "live":
        return render_offer(offer, 409, waitlist.offer_ended_message(offer))
    try:
        flows.end_hold(db.session, gateway(), offer.hold_id, "declined", clock.now())
    except PaymentError:
        return render_offer(offer, 503, "We could not pass the number on just now; please try again in a minute.")
    db.session.refresh(offer)
    return render_offer(offer)


# --- Early access --------------------------------------------------------------------------------------------------


def early_access_or_problem(token: str):
    """(entry, release) for a usable early-access link, or the page that says why it cannot be used."""
    try:
        entry_id, release_id = tokens.read_early_access_token(token)
    except tokens.InvalidLink:
        return None, link_problem(
            "This early-access link is not valid: it may have been cut short when it was copied. Open the link "
            "from the mail again.",
            400,
        )
    try:
        entry, release = waitlist.early_access_entry(db.session, entry_id, release_id, clock.now())
    except EarlyAccessUnavailable as refusal:
        release = db.session.get(Release, release_id)
        page = render_template("waitlist/early_access_closed.html", message=refusal.message, release=release)
        return None, (page, 409 if release is not None else 404)
    return (entry, release), None


def render_early_access(token: str, entry: WaitlistEntry, release: Release, form: EarlyReserveForm, status=200):
    now = clock.now()
    page = render_template(
        "waitlist/show_early_access.html",
        token=token,
        entry=entry,
        release=release,
        batch=release.batch,
        form=form,
        open_to_all=now >= release.on_sale_at,
        hold_minutes=current_app.config["HOLD_MINUTES"],
        now=now,
    )
    return page, status, {"Cache-Control": "private, no-store"}


def early_reserve_form(release: Release) -> EarlyReserveForm:
    return EarlyReserveForm(
        limit=release.per_customer_limit,
        total_units=release.total_units,
        allow_number_choice=release.allow_number_choice,
    )


@bp.get("/early/<token>")
def show_early_access(token: str):
    """A waiter's personal early-access page: reserve before everyone else, for the address the link was sent to."""
    found, problem = early_access_or_problem(token)
    if problem is not None:
        return problem
    entry, release = found
    return render_early_access(token, entry, release, early_reserve_form(release))


@bp.post("/early/<token>")
@reserve_limit_by_ip
@reserve_limit_by_buyer(early_access_buyer)
def reserve_early(token: str):
    """Reserve with early access: for the link's own address and within its limit, whoever holds the link."""
    found, problem = early_access_or_problem(token)
    if problem is not None:
        return problem
    entry, release = found
    form = early_reserve_form(release)
    if not form.validate_on_submit():
        return render_early_access(token, entry, release, form, 400)
    now = clock.now()
    try:
        with write_transaction(db.session):
            hold = claim(
                db.session,
                release.id,
                form.quantity.data,
                Buyer(entry.email, entry.buyer_key),
                now,
                hold_for=timedelta(minutes=current_app.config["HOLD_MINUTES"]),
                number=form.number.data,
                early_access=True,
            )
            hold_id, hold_token = hold.id, hold.token
    except DomainError as refusal:
        outcome, status = describe_refusal(refusal, release, now)
        page = render_template(
            "waitlist/early_access_refused.html",
            outcome=outcome,
            refusal=refusal,
            release=release,
            batch=release.batch,
            token=token,
        )
        return page, status
    held.remember_hold(hold_token)
    try:
        checkout_url = flows.start_checkout(db.session, gateway(), hold_id, now, checkout_settings_for(hold_token))
    except CheckoutUnavailable:
        return render_template("shop/checkout_unavailable.html", release=release, batch=release.batch), 503
    return redirect(checkout_url, code=303)


# --- Errors --------------------------------------------------------------------------------------------------------


@bp.errorhandler(429)
def explain_too_many_joins(error):
    """Say plainly that joining (or reserving) from here is paused for a while, instead of a bare 429."""
    token = (request.view_args or {}).get("token", "")
    if request.endpoint == "waitlist.claim_offer":
        back_url = url_for("waitlist.show_offer", token=token)
        return too_many_requests("shop/too_many_reserves.html", back_url=back_url, back_label="Back to your offer")
    if request.endpoint == "waitlist.reserve_early":
        back_url = url_for("waitlist.show_early_access", token=token)
        return too_many_requests("shop/too_many_reserves.html", back_url=back_url, back_label="Back to early access")
    return too_many_requests("waitlist/too_many_joins.html")


@bp.errorhandler(CSRFError)
def explain_missing_form_token(error: CSRFError):
    """A waitlist form without its security token (a stale page, or a bot): nothing happened; 400."""
    arguments = request.view_args or {}
    if request.endpoint == "waitlist.join_release_waitlist":
        back_url = url_for("shop.show_release", slug=arguments.get("slug", ""))
    elif request.endpoint in ("waitlist.claim_offer", "waitlist.decline_offer"):
        back_url = url_for("waitlist.show_offer", token=arguments.get("token", ""))
    elif request.endpoint == "waitlist.reserve_early":
        back_url = url_for("waitlist.show_early_access", token=arguments.get("token", ""))
    else:
        back_url = url_for("shop.show_home")
    return render_template("shop/stale_form.html", back_url=back_url), 400
