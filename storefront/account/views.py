"""Sign in and sign out.

Failed sign-ins are limited per client IP and per submitted address (LOGIN_LIMIT_PER_IP, LOGIN_LIMIT_PER_EMAIL):
only answers other than the 303 of a successful sign-in count, and once a limit is reached every attempt is answered
429, the right password included, until the window ends. An unknown address and a wrong password get the same page,
status and message, and take about as long (storefront.domain.accounts.authenticate).
"""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask.wrappers import Response
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError

from storefront import clock
from storefront.account import bp
from storefront.account.forms import LoginForm, LogoutForm
from storefront.domain.accounts import authenticate, email_key
from storefront.domain.buyers import InvalidBuyerEmail
from storefront.extensions import db, limiter
from storefront.rate_limits import too_many_requests
from storefront.unit_of_work import write_transaction
from storefront.urls import safe_next_url

FAILED_SIGN_IN = "That email address and password do not match an account. Check both and try again."


def counts_as_failure(response: Response) -> bool:
    """Only attempts that did not sign anybody in use up the allowance."""
    return response.status_code != 303


def login_limit_per_ip() -> str:
    return current_app.config["LOGIN_LIMIT_PER_IP"]


def login_limit_per_email() -> str:
    return current_app.config["LOGIN_LIMIT_PER_EMAIL"]


def submitted_email() -> str:
    """The address being tried, in the spelling-independent form accounts are keyed by."""
    typed = (request.form.get("email") or "").strip()
    try:
        key = email_key(typed)
    except InvalidBuyerEmail:
        key = typed.lower()[:320]
    # Never empty: Flask-Limiter skips a limit whose key is empty.
    return f"email:{key}"


def start_new_session() -> None:
    """Drop everything in the session, and the CSRF token Flask-WTF cached for this request with it."""
    session.clear()
    # Flask-WTF keeps the request's token in `g` as well; left there, a form rendered later in the same app context
    # would carry a token the new session does not know.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def home_for(user) -> str:
    return url_for("producer.show_dashboard") if user.is_producer else url_for("shop.show_home")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit_per_ip, methods=["POST"], deduct_when=counts_as_failure)
@limiter.limit(login_limit_per_email, key_func=submitted_email, methods=["POST"], deduct_when=counts_as_failure)
def login():
    """Show the sign-in form; sign in and go back to `next` (a path on this shop) or the account's home page."""
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next_url(request.args.get("next"), default="")
        if current_user.is_authenticated:
            return redirect(safe_next_url(form.next.data, default=home_for(current_user)))
        return render_template("account/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("account/login.html", form=form), 400

    with write_transaction(db.session):
        user = authenticate(db.session, form.email.data, form.password.data, clock.now())
    if user is None:
        return render_template("account/login.html", form=form, failure=FAILED_SIGN_IN), 200

    target = safe_next_url(form.next.data, default=home_for(user))
    # A fresh session for the signed-in visitor: nothing set before signing in (by anyone) carries over.
    start_new_session()
    login_user(user, remember=form.remember.data)
    return redirect(target, code=303)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Show a sign-out button (GET); sign out (POST, with the form's CSRF token)."""
    form = LogoutForm()
    if form.validate_on_submit():
        # Cleared first: logout_user then marks the remember-me cookie for deletion in the new session.
        start_new_session()
        logout_user()
        flash("You are signed out.", "info")
        return redirect(url_for("shop.show_home"), code=303)
    return render_template("account/logout.html", form=form)


@bp.errorhandler(429)
def explain_too_many_attempts(error):
    """Say plainly why signing in is paused and for how long, instead of a bare 429."""
    return too_many_requests("account/too_many_attempts.html")


@bp.errorhandler(CSRFError)
def explain_missing_form_token(error: CSRFError):
    """A sign-in or sign-out form without its security token: nothing happened; offer the page again."""
    back_url = url_for(request.endpoint) if request.endpoint in {"account.login", "account.logout"} else "/"
    return render_template("shop/stale_form.html", back_url=back_url), 400
