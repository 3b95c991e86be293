"""Settings for every environment, all read from the process environment (and `.env` when present).

`create_app()` picks the class named by `STOREFRONT_ENV`; tests pass their own. Left unset, development is chosen
only for the `flask` command (`make run`, `flask run`, `flask storefront dev`); any other server (gunicorn, uWSGI...)
refuses to start, so a production server never runs on development settings by accident.
Every variable is listed in README.md under "Configuration".
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", BASE_DIR / "instance")).resolve()

# A `.env` file beside this one fills in variables the environment does not already set.
load_dotenv(BASE_DIR / ".env", override=False)


def env_int(name: str, default: int) -> int:
    """Read an integer setting, failing loudly on a value that is not one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from error


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str) -> list[str]:
    """Read a comma-separated setting as a list of its non-empty items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_int_list(name: str, default: list[int]) -> list[int]:
    """Read a comma-separated list of integers, failing loudly on an item that is not one."""
    items = env_list(name)
    try:
        return [int(item) for item in items] if items else list(default)
    except ValueError as error:
        raise RuntimeError(f"{name} must be comma-separated integers, got {os.environ.get(name)!r}") from error


def parse_prepare_threshold(raw: str) -> int | None:
    """Read DATABASE_PREPARE_THRESHOLD: empty for psycopg's default (5 runs), "none" to never prepare, else a count."""
    raw = raw.strip().lower()
    if raw in {"none", "off"}:
        return None
    if not raw:
        return 5
    if raw.isdigit():
        return int(raw)
    raise RuntimeError(f"DATABASE_PREPARE_THRESHOLD must be a whole number or 'none', got {raw!r}")


PROXY_FIX_HEADERS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def parse_proxy_fix(raw: str) -> dict[str, int]:
    """Read PROXY_FIX: empty (no proxy), a count of proxies, or `x_for=1,x_proto=1,x_host=1` (ProxyFix's arguments).

    A bare count N trusts X-Forwarded-For and X-Forwarded-Proto from N proxies, the two a reverse proxy is normally
    set up to send; X-Forwarded-Host, -Port and -Prefix are trusted only when named, since a proxy that passes them
    on unchecked would let any client choose them.
    """
    raw = raw.strip()
    if not raw:
        return {}
    if raw.isdigit():
        count = int(raw)
        return {"x_for": count, "x_proto": count} if count else {}
    counts: dict[str, int] = {}
    for item in raw.split(","):
        name, equals, value = (part.strip() for part in item.partition("="))
        name = name.lower().replace("-", "_")
        if not equals or name not in PROXY_FIX_HEADERS or not value.isdigit():
            raise RuntimeError(
                f"PROXY_FIX must be a number of proxies or name=count pairs such as 'x_for=1,x_proto=1' "
                f"(names: {', '.join(PROXY_FIX_HEADERS)}), got {raw!r}"
            )
        counts[name] = int(value)
    return {name: count for name, count in counts.items() if count}


def default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'storefront.db'}"


def development_secret_key() -> str:
    """Return a secret key kept in `instance/`, so development sessions survive restarts."""
    key_file = INSTANCE_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def normalise_database_url(url: str) -> str:
    """Point plain `postgresql://` URLs at psycopg 3, the driver this project installs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Config:
    ENV_NAME = "base"
    TESTING = False
    SHOP_NAME = os.environ.get("SHOP_NAME", "Small Batch")
    # The shop's public address: every link in mail starts here (mail is queued by webhooks and the worker).
    SHOP_URL = os.environ.get("SHOP_URL", "http://127.0.0.1:5000")
    SECRET_KEY = os.environ.get("SECRET_KEY")

    SQLALCHEMY_DATABASE_URI = normalise_database_url(os.environ.get("DATABASE_URL") or default_database_url())
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # Size of each process's connection pool on PostgreSQL: workers x (pool + overflow) must stay under
    # the server's max_connections (see README, "Running a drop").
    DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10)
    DATABASE_MAX_OVERFLOW = env_int("DATABASE_MAX_OVERFLOW", 5)
    # psycopg prepares a statement on the server once a connection has run it this many times. Behind pgbouncer in
    # transaction mode the next transaction may get another server connection, which never saw it: set "none" there,
    # unless pgbouncer is 1.21 or later with max_prepared_statements above 0 (README, "Deploying").
    DATABASE_PREPARE_THRESHOLD = parse_prepare_threshold(os.environ.get("DATABASE_PREPARE_THRESHOLD", ""))

    # Where producer photos live; served at /media/<path>. Never inside static/, which is code.
    UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER") or str(INSTANCE_DIR / "uploads")
    # Producer photos: the largest upload accepted (the one request allowed past MAX_CONTENT_LENGTH), the most pixels
    # a photo may have (checked from its header, before decoding: a small file can unpack to gigabytes), the widths
    # the pipeline re-encodes it to (served with srcset; never enlarged) and their JPEG quality.
    PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 15 * 1024 * 1024)
    PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 40_000_000)
    PHOTO_WIDTHS = env_int_list("PHOTO_WIDTHS", [480, 960, 1600])
    PHOTO_JPEG_QUALITY = env_int("PHOTO_JPEG_QUALITY", 82)

    HOLD_MINUTES = env_int("HOLD_MINUTES", 10)
    # Per-process caches of the reserve POST, in seconds (0 turns one off): a release's rules, and the answer that
    # it is sold out. Safe when stale: the claim re-reads and re-checks the release in its own transaction.
    RELEASE_RULES_CACHE_SECONDS = env_int("RELEASE_RULES_CACHE_SECONDS", 2)
    SOLD_OUT_CACHE_SECONDS = env_int("SOLD_OUT_CACHE_SECONDS", 1)
    # How long each process keeps the live count /api/releases/<slug> answers (every open release page polls it).
    STOCK_CACHE_SECONDS = env_int("STOCK_CACHE_SECONDS", 1)
    # How long each process keeps a rendered release page and its "sold out" answer for visitors whose session shapes
    # nothing on them (storefront/shop/page_cache.py); never past the release's next moment (on sale, off sale).
    PAGE_CACHE_SECONDS = env_int("PAGE_CACHE_SECONDS", 1)
    # The producer's time zone (IANA name): release times are entered and shown in it, stored in UTC.
    SHOP_TIMEZONE = os.environ.get("SHOP_TIMEZONE", "Europe/Dublin")

    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    # Pinned: a new SDK or account default must not change the shapes the shop reads.
    STRIPE_API_VERSION = os.environ.get("STRIPE_API_VERSION", "2026-10-28.endive")
    STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 10)
    # How often opening a checkout is retried at once on a 429, 409 or 5xx (the SDK waits 0.5 s, then 1 s).
    STRIPE_CHECKOUT_RETRIES = env_int("STRIPE_CHECKOUT_RETRIES", 2)
    # "ann+drop@example.com" is the same buyer as "ann@example.com" for the per-customer limit; off counts tags apart.
    BUYER_KEY_IGNORES_PLUS_TAGS = env_bool("BUYER_KEY_IGNORES_PLUS_TAGS", True)
    # Where the shop tells a person about money that needs a look (a refund that failed for good, an unmatched
    # payment). Empty: the log and `flask storefront refunds` only.
    PRODUCER_EMAIL = os.environ.get("PRODUCER_EMAIL", "")
    # Countries Checkout collects shipping addresses for (ISO 3166-1 alpha-2, comma separated).
    SHIPPING_COUNTRIES = [
        code.strip().upper()
        for code in os.environ.get("SHIPPING_COUNTRIES", "IE,GB,FR,DE,NL,BE,LU,AT,ES,PT,IT,DK,SE,FI").split(",")
        if code.strip()
    ]

    # The task queue (Huey): Redis when REDIS_URL is set, else a SQLite file beside the database.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    HUEY_SQLITE_PATH = os.environ.get("HUEY_SQLITE_PATH") or str(INSTANCE_DIR / "huey.db")
    # Run tasks inline instead of queueing them (tests; a shop without a worker should not use it).
    HUEY_IMMEDIATE = env_bool("HUEY_IMMEDIATE", False)
    # smtp://user:password@host:port (smtps:// for TLS); empty writes each mail as a .eml file to MAIL_DIR.
    MAIL_URL = os.environ.get("MAIL_URL", "")
    MAIL_DIR = os.environ.get("MAIL_DIR") or str(INSTANCE_DIR / "mail")
    MAIL_FROM = os.environ.get("MAIL_FROM", "Small Batch <shop@localhost>")

    WTF_CSRF_TIME_LIMIT = None  # a buyer who leaves the release page open until 10:00 must still be able to post
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True
    # Flask-Login's "remember me" cookie: the same care as the session cookie; Secure in production.
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_DURATION = timedelta(days=env_int("REMEMBER_COOKIE_DAYS", 30))

    # Failed sign-ins allowed per submitted address and per client IP (Flask-Limiter rate strings); successful
    # sign-ins do not count. Counted in RATELIMIT_STORAGE_URI: Redis when REDIS_URL is set (shared by every
    # worker), else each process's memory.
    LOGIN_LIMIT_PER_EMAIL = os.environ.get("LOGIN_LIMIT_PER_EMAIL", "5/minute")
    LOGIN_LIMIT_PER_IP = os.environ.get("LOGIN_LIMIT_PER_IP", "10/minute")
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or os.environ.get("REDIS_URL", "") or "memory://"
    # Every limit counts over the last window, not per clock minute: fixed windows start on the minute, as drops do,
    # and would let one client send a whole allowance at 09:59:59 and another at 10:00:00.
    RATELIMIT_STRATEGY = os.environ.get("RATELIMIT_STRATEGY", "moving-window")
    # Put before every counter's key: several shops (or a staging copy) can share one Redis without sharing counts.
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "")

    # Reserve attempts (the release page's form, a waiter's early-access reserve and offer claim, counted together)
    # allowed per client IP and per buyer (the email folded to its buyer key: "Ann+x@..." is "ann@..."). Every
    # attempt counts, refused or not, and the limit is checked before the claim, so a flood takes no units. Per IP is
    # generous because a family, an office or a mobile carrier's NAT puts many real buyers behind one address, each
    # trying once or twice at 10:00, while a bot sends hundreds; per buyer is tight because a person retrying
    # "only 2 left" or a taken number needs a few tries a minute, not dozens.
    RESERVE_LIMIT_PER_IP = os.environ.get("RESERVE_LIMIT_PER_IP", "60/minute")
    RESERVE_LIMIT_PER_EMAIL = os.environ.get("RESERVE_LIMIT_PER_EMAIL", "10/minute")

    # "Tell me about new batches": how long a confirmation link works, how soon a second sign-up may mail the same
    # address again, and how many sign-ups one client IP and one address may post (Flask-Limiter rate strings).
    SUBSCRIBE_CONFIRM_HOURS = env_int("SUBSCRIBE_CONFIRM_HOURS", 48)
    SUBSCRIBE_RESEND_MINUTES = env_int("SUBSCRIBE_RESEND_MINUTES", 15)
    SUBSCRIBE_LIMIT_PER_IP = os.environ.get("SUBSCRIBE_LIMIT_PER_IP", "10/hour")
    SUBSCRIBE_LIMIT_PER_EMAIL = os.environ.get("SUBSCRIBE_LIMIT_PER_EMAIL", "5/hour")

    # Waitlists: how long a freed number offered to the next waiter stays theirs (from when the offer is mailed),
    # how long a "confirm your place" link works, how soon joining again may mail the same address again, and how
    # many joins one client IP and one address may post (Flask-Limiter rate strings).
    WAITLIST_OFFER_MINUTES = env_int("WAITLIST_OFFER_MINUTES", 60)
    WAITLIST_CONFIRM_HOURS = env_int("WAITLIST_CONFIRM_HOURS", 48)
    WAITLIST_RESEND_MINUTES = env_int("WAITLIST_RESEND_MINUTES", 15)
    WAITLIST_LIMIT_PER_IP = os.environ.get("WAITLIST_LIMIT_PER_IP", "10/hour")
    WAITLIST_LIMIT_PER_EMAIL = os.environ.get("WAITLIST_LIMIT_PER_EMAIL", "5/hour")

    # Largest request body, in bytes: anything bigger is answered 413 before forms, CSRF or the webhook read it.
    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
    # Host names the shop answers to (Flask's TRUSTED_HOSTS; ".example.com" also accepts its subdomains), besides
    # SHOP_URL's host, which is always one; any other Host header gets 400. Empty: no check (development, tests),
    # except in production, which then answers SHOP_URL's host only.
    TRUSTED_HOSTS: list[str] | None = env_list("TRUSTED_HOSTS") or None
    # The reverse proxies in front of the shop whose X-Forwarded-* headers are believed (see parse_proxy_fix).
    PROXY_FIX = parse_proxy_fix(os.environ.get("PROXY_FIX", ""))
    # Strict-Transport-Security on every response: production only, where SHOP_URL must be https.
    STRICT_TRANSPORT_SECURITY = False
    # How often the release page asks for a fresh count, in seconds.
    STOCK_REFRESH_SECONDS = env_int("STOCK_REFRESH_SECONDS", 15)
    # How often the producer's dashboard redraws the sales chart and counts of a release that is selling, in seconds.
    DASHBOARD_REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 10)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    SECRET_KEY = Config.SECRET_KEY or development_secret_key()


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = env_bool("REMEMBER_COOKIE_SECURE", True)
    PREFERRED_URL_SCHEME = "https"
    STRICT_TRANSPORT_SECURITY = env_bool("STRICT_TRANSPORT_SECURITY", True)
    REQUIRED = ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key"  # noqa: S105 - tests only
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    WTF_CSRF_ENABLED = True
    # Tests move a frozen clock and expect every answer fresh; the caches' own tests turn them on.
    RELEASE_RULES_CACHE_SECONDS = 0
    SOLD_OUT_CACHE_SECONDS = 0
    STOCK_CACHE_SECONDS = 0
    PAGE_CACHE_SECONDS = 0
    # Each test app starts with fresh counters, even where REDIS_URL is set (CI).
    RATELIMIT_STORAGE_URI = "memory://"


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "test": TestConfig,
}


def started_by_flask_command(environ: Mapping[str, str]) -> bool:
    """True in a process started by the `flask` command (which sets FLASK_RUN_FROM_CLI), and not served by gunicorn."""
    served_by_gunicorn = "gunicorn" in sys.modules or environ.get("SERVER_SOFTWARE", "").startswith("gunicorn")
    return environ.get("FLASK_RUN_FROM_CLI") == "true" and not served_by_gunicorn


def config_from_environment(environ: Mapping[str, str] | None = None) -> type[Config]:
    """The settings class named by STOREFRONT_ENV (development when unset; create_app asks config_for_app)."""
    environ = os.environ if environ is None else environ
    name = environ.get("STOREFRONT_ENV", "").strip().lower() or "development"
    try:
        return CONFIGS[name]
    except KeyError as error:
        raise RuntimeError(f"STOREFRONT_ENV must be one of {sorted(CONFIGS)}, got {name!r}") from error


def config_for_app(environ: Mapping[str, str] | None = None) -> type[Config]:
    """The settings an app runs on: STOREFRONT_ENV's, where unset means development for the `flask` command only.

    A server started any other way (gunicorn, uWSGI, a script) without STOREFRONT_ENV refuses to start rather than
    serve real buyers with development settings.
    """
    environ = os.environ if environ is None else environ
    if not environ.get("STOREFRONT_ENV", "").strip() and not started_by_flask_command(environ):
        raise RuntimeError(
            "Refusing to start: STOREFRONT_ENV is not set. Set STOREFRONT_ENV=production to serve the shop "
            "(or STOREFRONT_ENV=development on your own machine; `make run` and `flask run` need nothing)"
        )
    return config_from_environment(environ)
