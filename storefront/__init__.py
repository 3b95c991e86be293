"""Small Batch: a storefront for numbered, limited releases of small-batch goods."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

import config as settings
from storefront import compression, http_caching, security, static_files
from storefront.database import configure_sqlite, engine_options
from storefront.extensions import csrf, db, limiter, login_manager, migrate

PROJECT_DIR = Path(__file__).resolve().parent.parent

log = logging.getLogger(__name__)

# Werkzeug's wording for these errors is written for developers; a buyer gets these instead.
FRIENDLY_DESCRIPTIONS = {
    413: "What you sent is larger than the shop accepts. Nothing was saved: go back and try again with less.",
}


def create_app(config_object: type | Mapping[str, Any] | None = None, **overrides: Any) -> Flask:
    """Build the shop.

    `config_object` is a class from config.py, or a mapping of overrides applied on top of the class chosen by
    `STOREFRONT_ENV` (which only the `flask` command may leave unset). Keyword arguments are further overrides
    (tests use them).
    """
    app = Flask(
        __name__,
        template_folder=str(PROJECT_DIR / "templates"),
        static_folder=str(PROJECT_DIR / "static"),
        instance_path=str(settings.INSTANCE_DIR),
    )
    if config_object is None or isinstance(config_object, Mapping):
        app.config.from_object(settings.config_for_app())
        if config_object:
            app.config.update(config_object)
    else:
        app.config.from_object(config_object)
    app.config.update(overrides)
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    security.configure_hosts_and_proxies(app)
    check_required_settings(app)
    check_shop_timezone(app)

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **engine_options(
            app.config["SQLALCHEMY_DATABASE_URI"],
            app.config["DATABASE_POOL_SIZE"],
            app.config["DATABASE_MAX_OVERFLOW"],
            app.config.get("DATABASE_PREPARE_THRESHOLD", 5),
        ),
        **app.config.get("SQLALCHEMY_EXTRA_ENGINE_OPTIONS", {}),
    }
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_DIR / "migrations"))
    # Before CSRF: an oversized body gets 413 and a NUL byte 400, not "the form expired".
    security.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    check_limits_on_writes_only(app)
    init_login(app)
    with app.app_context():
        configure_sqlite(db.engine)

    register_blueprints(app)
    register_error_pages(app)
    register_template_helpers(app)
    # After-request hooks run last-registered first: a page's ETag and 304 are decided on the page as rendered,
    # before it is compressed.
    compression.init_app(app)
    http_caching.init_app(app)
    static_files.init_app(app)

    from storefront import tasks  # noqa: F401 - connects the after-commit wake-ups to the task queue
    from storefront.cli import storefront_cli

    app.cli.add_command(storefront_cli)
    return app


def check_required_settings(app: Flask) -> None:
    """Refuse to start in production without the secrets a real shop needs, or with settings unsafe for one."""
    missing = [name for name in app.config.get("REQUIRED", ()) if not app.config.get(name)]
    problems = [f"set {', '.join(missing)} in the environment"] if missing else []
    if app.config.get("ENV_NAME") == "production":
        problems += security.production_problems(app.config)
    if problems:
        raise RuntimeError(f"Refusing to start: {'; '.join(problems)} (see README.md)")


def check_shop_timezone(app: Flask) -> None:
    """Refuse to start with a SHOP_TIMEZONE that is not an IANA zone: every release time is entered in it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = app.config.get("SHOP_TIMEZONE", "")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
        raise RuntimeError(
            f"Refusing to start: SHOP_TIMEZONE={name!r} is not a time zone name such as Europe/Dublin ({error})"
        ) from error


def init_login(app: Flask) -> None:
    """Sign-in with Flask-Login: accounts load by id; a session cookie replayed from elsewhere is dropped."""
    from flask import g

    from storefront.models import User

    login_manager.init_app(app)
    login_manager.login_view = "account.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    # "strong": a session whose client (address and browser) changes is signed out, remember-me cookie included.
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        return db.session.get(User, int(user_id)) if user_id.isdigit() else None

    @app.before_request
    def forget_cached_user() -> None:
        # Flask-Login caches the user in `g`, which lives as long as the app context: a request run inside another
        # one's context (the test client inside a test's, a request made from a CLI command) must still be judged
        # by its own cookies.
        g.pop("_login_user", None)


def check_limits_on_writes_only(app: Flask) -> None:
    """Skip Flask-Limiter's before-request check on page views.

    That hook applies app-wide and blueprint limits, and the shop has none: every limit belongs to a form that writes
    (reserve, sign in, join a waitlist, subscribe), is declared on its POST view and is checked when that view runs.
    A page view would only pay for finding that out, and at a drop page views are most of the traffic.
    """
    hooks = app.before_request_funcs.setdefault(None, [])
    if limiter._check_request_limit not in hooks:  # RATELIMIT_ENABLED=False: Flask-Limiter registered nothing
        return
    index = hooks.index(limiter._check_request_limit)
    check = hooks[index]

    def check_unless_reading() -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            check()

    hooks[index] = check_unless_reading


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every route: an id the database can hold (1 to 2**31 - 1), else the URL matches nothing (404).

    Werkzeug's own converter accepts any length of digits, and a 30-digit id then fails inside the database driver
    (an OverflowError on SQLite, an out-of-range error on PostgreSQL) instead of answering "not found".
    """

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = RowIdConverter
    from storefront.account import bp as account_bp
    from storefront.api import bp as api_bp
    from storefront.audience import bp as audience_bp
    from storefront.checkout import bp as checkout_bp
    from storefront.media import bp as media_bp
    from storefront.pages import bp as pages_bp
    from storefront.producer import bp as producer_bp
    from storefront.shop import bp as shop_bp
    from storefront.story import bp as story_bp
    from storefront.waitlist import bp as waitlist_bp
    from storefront.webhooks import bp as webhooks_bp

    app.register_blueprint(shop_bp)
    app.register_blueprint(story_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(checkout_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(producer_bp)
    app.register_blueprint(audience_bp)
    app.register_blueprint(waitlist_bp)
    app.register_blueprint(pages_bp)


def register_error_pages(app: Flask) -> None:
    """Answer every error with the shop's own page (JSON under /api/), never a traceback."""
    from flask import jsonify, request
    from flask.globals import request_ctx

    from storefront.urls import shop_url_adapter

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    def ensure_url_adapter() -> None:
        # A Host outside TRUSTED_HOSTS is refused before routing, leaving the request no URL builder; the error
        # page's own links (relative paths) are then built against SHOP_URL.
        if request_ctx.url_adapter is None:
            request_ctx.url_adapter = shop_url_adapter(app)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        if error.code in FRIENDLY_DESCRIPTIONS and error.description == type(error).description:
            error.description = FRIENDLY_DESCRIPTIONS[error.code]
        if wants_json():
            return jsonify({"error": error.name, "message": error.description}), error.code
        ensure_url_adapter()
        template = "errors/404.html" if error.code == 404 else "errors/error.html"
        return render_template(template, error=error), error.code

    @app.errorhandler(Exception)
    def handle_unexpected_error(error: Exception):
        log.exception("Unhandled error on %s", request.path)
        db.session.rollback()
        if wants_json():
            return jsonify({"error": "Internal Server Error", "message": "Something went wrong on our side."}), 500
        ensure_url_adapter()
        return render_template("errors/500.html"), 500


def register_template_helpers(app: Flask) -> None:
    from storefront import text

    app.jinja_env.filters["money"] = text.format_money
    app.jinja_env.filters["markdown"] = text.render_markdown
    app.jinja_env.filters["iso_utc"] = text.iso_utc
    app.jinja_env.filters["human_datetime"] = text.human_datetime
    app.jinja_env.filters["ordinal"] = text.ordinal
    app.jinja_env.filters["country_name"] = text.country_name

    @app.context_processor
    def shop_globals() -> dict[str, Any]:
        backend = payment_backend(app)
        return {
            "shop_name": app.config["SHOP_NAME"],
            "payment_backend": backend,
            "test_payments": backend != "stripe-live",
        }


def payment_backend(app: Flask) -> str:
    """Where payments go: "simulator" (STRIPE_API_BASE set), "stripe-test" (sk_test_ key) or "stripe-live"."""
    if app.config["STRIPE_API_BASE"]:
        return "simulator"
    if app.config["STRIPE_SECRET_KEY"].startswith("sk_live_") or app.config["STRIPE_SECRET_KEY"].startswith("rk_live_"):
        return "stripe-live"
    return "stripe-test"
