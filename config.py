"""Settings for every environment, all read from the process environment (and `.env` when present).

`create_app()` picks the class named by `STOREFRONT_ENV` (development by default); tests pass their own.
Every variable is listed in README.md under "Configuration".
"""

from __future__ import annotations

import os
import secrets
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

    # Where producer photos live; served at /media/<path>. Never inside static/, which is code.
    UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER") or str(INSTANCE_DIR / "uploads")

    HOLD_MINUTES = env_int("HOLD_MINUTES", 10)

    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    # Pinned: a new SDK or account default must not change the shapes the shop reads.
    STRIPE_API_VERSION = os.environ.get("STRIPE_API_VERSION", "2026-10-28.endive")
    STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 10)
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
    # How often the release page asks for a fresh count, in seconds.
    STOCK_REFRESH_SECONDS = env_int("STOCK_REFRESH_SECONDS", 15)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    SECRET_KEY = Config.SECRET_KEY or development_secret_key()


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    PREFERRED_URL_SCHEME = "https"
    REQUIRED = ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key"  # noqa: S105 - tests only
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    WTF_CSRF_ENABLED = True


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "test": TestConfig,
}


def config_from_environment() -> type[Config]:
    name = os.environ.get("STOREFRONT_ENV", "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError as error:
        raise RuntimeError(f"STOREFRONT_ENV must be one of {sorted(CONFIGS)}, got {name!r}") from error
