"""The public shop: home and release pages, reserving numbered units, and the hold that keeps them."""

from datetime import datetime, timedelta

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from storefront import clock
from storefront.checkout import flows
from storefront.checkout.flows import CheckoutUnavailable
from storefront.domain import waitlist
from storefront.domain.buyers import buyer_key
from storefront.domain.errors import DomainError
from storefront.domain.inventory import (
    Buyer,
    LimitReached,
    NotOnSale,
    NumberTaken,
    ReleasePaused,
    SoldOut,
    claim,
    held_numbers,
)
from storefront.domain.numbers import number_choices
from storefront.domain.releases import kept_back_numbers
from storefront.domain.shipping_terms import shipping_terms
from storefront.domain.stock import describe_releases
from storefront.extensions import db
from storefront.models import Batch, Hold, HoldStatus, Release, ReleaseStatus
from storefront.payments import PaymentError, gateway
from storefront.rate_limits import too_many_requests
from storefront.shop import bp, held
from storefront.shop.forms import ReserveForm
from storefront.shop.limits import reserve_limit_by_buyer, reserve_limit_by_ip, submitted_buyer
from storefront.shop.page_cache import page_cache
from storefront.shop.reserve_cache import ReleaseRules, reserve_cache
from storefront.shop_time import shop_zone
from storefront.unit_of_work import end_read, write_transaction
from storefront.urls import external_url

RECENTLY_SOLD_OUT_SHOWN = 6
# A release page names the numbers kept by the maker when there are at most this many; beyond, it counts them.
KEPT_NUMBERS_NAMED = 10


def get_release_or_404(slug: str, *, full_page: bool = True) -> Release:
    """Load the release at `slug` with its batch in one round trip: with the product and photos for its page."""
    query = select(Release).where(Release.slug == slug)
    if full_page:
        # A release has one batch, one product and a few photos: one joined query costs less than four.
        query = query.options(
            joinedload(Release.batch).joinedload(Batch.images),
            joinedload(Release.batch).joinedload(Batch.product),
        )
    else:
        # A refusal names the batch and nothing more of it.
        query = query.options(joinedload(Release.batch))
    release = db.session.execute(query).unique().scalar_one_or_none()
    if release is None:
        abort(404, description="There is no release at this address. It may have been renamed or removed.")
    return release


def get_hold_or_404(token: str) -> Hold:
    hold = db.session.scalar(
        select(Hold)
        .where(Hold.token == token)
        .options(selectinload(Hold.release).selectinload(Release.batch).selectinload(Batch.product))
    )
    if hold is None:
        abort(404, description="There is no hold at this address. Check the link, or reserve again.")
    return hold


def reserve_form_for(release: Release | ReleaseRules, **kwargs) -> ReserveForm:
    return ReserveForm(
        limit=release.per_customer_limit,
        total_units=release.total_units,
        allow_number_choice=release.allow_number_choice,
        **kwargs,
    )


def render_release_page(release: Release, form: ReserveForm, status: int = 200):
    now = clock.now()
    (view,) = describe_releases(db.session, [release], now)
    kept = view.stock.withheld
    kept_numbers = kept_back_numbers(db.session, release.id) if 0 < kept <= KEPT_NUMBERS_NAMED else []
    page = render_template(
        "shop/show_release.html",
        view=view,
        kept_numbers=kept_numbers,
        release=release,
        batch=release.batch,
        form=form,
        hold_minutes=current_app.config["HOLD_MINUTES"],
        now=now,
        refresh_seconds=current_app.config["STOCK_REFRESH_SECONDS"],
        # A waiter who came from the link in their confirmation mail sees their place in line, or their offer.
        waiter=waitlist.waiter_status(db.session, release.id, request.args.get("waiter")),
        waitlist_open=waitlist_open(release, view.status),
        shipping=shipping_terms(db.session, release, current_app.config["SHIPPING_COUNTRIES"]),
        shipping_page_url=url_for("pages.show_page", kind="shipping"),
        number_choices=number_choices(db.session, release, now)
        if release.allow_number_choice and view.status is ReleaseStatus.ON_SALE
        else None,
    )
    response = make_response(page, status)
    if request.args.get("waiter"):
        # One waiter's place: never kept by a shared cache.
        response.headers["Cache-Control"] = "private, no-store"
    return response


def waitlist_open(release: Release, status: ReleaseStatus) -> bool:
    """Whether the release page offers its waitlist: while it is upcoming or sold out, not once it has closed."""
    return status in (ReleaseStatus.UPCOMING, ReleaseStatus.SOLD_OUT)


def describe_refusal(refusal: DomainError, release: Release, now: datetime) -> tuple[str, int]:
    """Name the outcome the refusal page explains, and the HTTP status that goes with it."""
    match refusal:
        case NotOnSale() if now < release.on_sale_at:
            return "not_on_sale_yet", 409
        case NotOnSale():
            return "closed", 409
        case ReleasePaused():
            return "paused", 409
        case SoldOut(available=available) if available > 0:
            return "only_some_left", 409
        case SoldOut() | NumberTaken(next_free=None):
            return "sold_out", 409
        case NumberTaken():
            return "number_taken", 409
        case LimitReached():
            return "limit_reached", 409
        case _:
            return "invalid", 400


def hold_state(hold: Hold, now: datetime) -> str:
    """Say what the buyer's hold is now: active, cancelled (by the buyer, even while its payment page is still
    closing), expired (time is up), ended (released otherwise) or paid."""
    if hold.status == HoldStatus.CONVERTED:
        return "paid"
    # The buyer's own cancel is what they remember, whatever ended the hold after it (its time, the sweeper).
    if "cancelled" in (hold.end_requested, hold.end_reason):
        return "cancelled"
    if hold.status == HoldStatus.RELEASED:
        return "ended"
    return "active" if now < hold.expires_at else "expired"


def checkout_settings(hold: Hold) -> flows.CheckoutSettings:
    return checkout_settings_for(hold.token)


def checkout_settings_for(hold_token: str) -> flows.CheckoutSettings:
    """Stripe's return addresses, built from SHOP_URL: never from the Host this request happened to carry."""
    return flows.CheckoutSettings(
        success_url=external_url("checkout.show_success") + "?session_id={CHECKOUT_SESSION_ID}",
        # Stripe's back link: the hold's own page, with the way back to payment and the cancel button.
        cancel_url=external_url("shop.show_hold", token=hold_token),
        allowed_countries=current_app.config["SHIPPING_COUNTRIES"],
        time_zone=shop_zone(),
    )


def shop_buyer_key(email: str) -> str:
    """The key the per-customer limit counts `email` by, with the shop's plus-tag setting."""
    return buyer_key(email, ignore_plus_tags=current_app.config["BUYER_KEY_IGNORES_PLUS_TAGS"])


def buyer_from(email: str) -> Buyer:
    return Buyer(email, shop_buyer_key(email))


@bp.get("/")
def show_home():
    """Show live and upcoming releases first, then runs that sold out recently."""
    now = clock.now()
    releases = db.session.scalars(
        select(Release).options(selectinload(Release.batch).selectinload(Batch.images)).order_by(Release.on_sale_at)
    ).all()
    views = describe_releases(db.session, releases, now)
    # A paused release is still on sale, for a moment not taking reservations: its card says so.
    on_sale = [view for view in views if view.status in (ReleaseStatus.ON_SALE, ReleaseStatus.PAUSED)]
    upcoming = [view for view in views if view.status is ReleaseStatus.UPCOMING]
    sold_out = [view for view in views if view.status is ReleaseStatus.SOLD_OUT]
    sold_out.sort(key=lambda view: view.release.on_sale_at, reverse=True)
    return render_template(
        "shop/show_home.html",
        on_sale=on_sale,
        upcoming=upcoming,
        sold_out=sold_out[:RECENTLY_SOLD_OUT_SHOWN],
        now=now,
    )


@bp.get("/releases/<slug>")
def show_release(slug: str):
    """Show one release: price, how many are left, a countdown while it is upcoming, the reserve form."""
    # At a drop most visitors see the same page: kept for a second, with only their form token put in.
    with page_cache().lookup(("release", slug), clock.now()) as kept:
        if kept.body is not None:
            return kept.body
        release = get_release_or_404(slug)
        response = render_release_page(release, reserve_form_for(release))
        if response.status_code == 200 and "Cache-Control" not in response.headers:
            kept.keep(response.get_data(as_text=True), release)
        return response


@bp.post("/releases/<slug>/reserve")
@reserve_limit_by_ip
@reserve_limit_by_buyer(submitted_buyer)
def reserve_release(slug: str):
    """Hold units of a release for the buyer and send them to pay, or say plainly why not."""
    # The claim needs only the release's id and rules: at 10:00 every query on this path counts. They come from a
    # per-process cache that is safe when stale (see reserve_cache); a page that explains a refusal loads the
    # release with its batch when it shows it.
    now, cache = clock.now(), reserve_cache()
    rules = cache.release_rules(db.session, slug, now)
    if rules is None:
        abort(404, description="There is no release at this address. It may have been renamed or removed.")
    form = reserve_form_for(rules)
    if not form.validate_on_submit():
        return render_release_page(get_release_or_404(slug), form, status=400)

    release_id = rules.id
    try:
        if rules.status_at(now, available=1) is ReleaseStatus.ON_SALE and cache.is_sold_out(
            db.session, release_id, now
        ):
            # Most of a drop's traffic comes after the last unit went: answer it from one read (or a recent one),
            # not the write path.
            raise SoldOut("Every unit of this release is sold or held.", available=0)
        with write_transaction(db.session):  # the hold is ours before anything slow happens
            hold = claim(
                db.session,
                release_id,
                form.quantity.data,
                buyer_from(form.email.data),
                now,
                hold_for=timedelta(minutes=current_app.config["HOLD_MINUTES"]),
                number=form.number.data,
            )
            hold_id, hold_token = hold.id, hold.token
    except DomainError as refusal:
        if isinstance(refusal, SoldOut) and refusal.available == 0:
            cache.remember_sold_out(release_id, now)
        if isinstance(refusal, NumberTaken) and refusal.next_free is not None:
            return answer_number_taken(get_release_or_404(slug), form, refusal)
        # "Sold out" without a chosen number is the same page for everyone who came too late: kept for a second.
        if isinstance(refusal, SoldOut) and refusal.available == 0 and form.number.data is None:
            # The lookup may wait for another thread's render: never while holding a pooled connection.
            end_read(db.session)
            with page_cache().lookup(("sold_out", slug), now) as kept:
                if kept.body is not None:
                    return kept.body, 409
                page, status, release, outcome = render_refusal(refusal, slug, form, now)
                if outcome == "sold_out":
                    kept.keep(page, release)
                return page, status
        page, status, _, _ = render_refusal(refusal, slug, form, now)
        return page, status
    held.remember_hold(hold_token)
    # Built after the claim commits: nothing but the claim runs while it holds its locks.
    settings = checkout_settings_for(hold_token)
    try:
        checkout_url = flows.start_checkout(db.session, gateway(), hold_id, now, settings)
    except CheckoutUnavailable:
        release = get_release_or_404(slug)
        page = render_template("shop/checkout_unavailable.html", release=release, batch=release.batch)
        return page, 503
    return redirect(checkout_url, code=303)


def render_refusal(refusal: DomainError, slug: str, form: ReserveForm, now: datetime):
    """The page that explains a refused reservation: (page, status, release, outcome)."""
    release = get_release_or_404(slug, full_page=False)
    outcome, status = describe_refusal(refusal, release, now)
    page = render_template(
        "shop/reserve_release.html",
        outcome=outcome,
        refusal=refusal,
        release=release,
        batch=release.batch,
        form=form,
        now=now,
        # Only holds this browser made: typing someone's email must never lead to their payment page.
        limit_holds=held.known_holds_of_buyer(release.id, shop_buyer_key(form.email.data))
        if outcome == "limit_reached"
        else [],
    )
    return page, status, release, outcome


def answer_number_taken(release: Release, form: ReserveForm, taken: NumberTaken):
    """Answer a picked number someone else took first on the release page itself: the error on the number field,
    the free numbers as they are now, the buyer's email and the next free number filled in; 409."""
    wanted = form.number.data
    form.number.errors.append(f"No. {wanted} was just taken. No. {taken.next_free} is free, and now chosen for you.")
    form.number.data = taken.next_free
    form.number.raw_data = [str(taken.next_free)]
    return render_release_page(release, form, status=409)


@bp.get("/holds/<token>")
def show_hold(token: str):
    """Show the numbers a hold keeps for the buyer, until when, and how to let them go."""
    hold = get_hold_or_404(token)
    now = clock.now()
    response = make_response(
        render_template(
            "shop/show_hold.html",
            hold=hold,
            state=hold_state(hold, now),
            numbers=held_numbers(db.session, hold),
            release=hold.release,
            batch=hold.release.batch,
            now=now,
        )
    )
    # One buyer's page: never kept by a shared cache, and always fresh when they come back to it.
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/holds/<token>/cancel")
def cancel_hold(token: str):
    """Let a hold go: close its payment page, then put its numbers back on sale. Cancelling twice is harmless."""
    return finish_cancel(get_hold_or_404(token))


def finish_cancel(hold: Hold):
    """Cancel a hold through the one flow every ending takes, and tell the buyer what happened."""
    token, session_id = hold.token, hold.payment_session_id
    try:
        ending = flows.end_hold(db.session, gateway(), hold.id, "cancelled", clock.now())
    except PaymentError:
        # The payment page could not be closed yet: the numbers stay held (it might still be paid) until the
        # sweeper closes it, within a minute or two. The hold's page says so.
        return redirect(url_for("shop.show_hold", token=token), code=303)
    if ending is flows.Ending.PAID:
        return redirect(url_for("checkout.show_success", session_id=session_id), code=303)
    # The hold's page says it was cancelled, and where its numbers went.
    return redirect(url_for("shop.show_hold", token=token), code=303)


@bp.errorhandler(429)
def explain_too_many_reserves(error):
    """Say plainly that reserving from here, or for this email, is paused for a moment; nothing was reserved."""
    slug = (request.view_args or {}).get("slug", "")
    return too_many_requests("shop/too_many_reserves.html", back_url=url_for("shop.show_release", slug=slug))


@bp.errorhandler(CSRFError)
def explain_missing_form_token(error: CSRFError):
    """Answer a shop form that arrived without its security token with a way back, not a bare 400."""
    arguments = request.view_args or {}
    if "slug" in arguments:
        back_url = url_for("shop.show_release", slug=arguments["slug"])
    elif "token" in arguments:
        back_url = url_for("shop.show_hold", token=arguments["token"])
    else:
        back_url = url_for("shop.show_home")
    return render_template("shop/stale_form.html", back_url=back_url), 400
