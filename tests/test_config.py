"""Configuration comes from the environment; production refuses to start without its secrets or with unsafe ones."""

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import config
from storefront import create_app
from tests.integration.helpers import free_port

PROJECT = Path(__file__).resolve().parents[1]
GOOD_SECRET_KEY = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4"


def production(tmp_path, **settings) -> type:
    """A production settings class whose every value is safe, except those given."""
    safe = {
        "SECRET_KEY": GOOD_SECRET_KEY,
        "STRIPE_SECRET_KEY": "sk_live_example",
        "STRIPE_WEBHOOK_SECRET": "whsec_example",
        "STRIPE_API_BASE": "",
        "SHOP_URL": "https://shop.example.com",
        "TRUSTED_HOSTS": None,
        "PROXY_FIX": {},
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}",
    }
    return type("Production", (config.ProductionConfig,), {**safe, **settings})


@pytest.mark.parametrize("missing", ["SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, missing):
    with pytest.raises(RuntimeError, match=missing):
        create_app(production(tmp_path, **{missing: ""}))


def test_production_starts_with_its_secrets(tmp_path):
    app = create_app(production(tmp_path))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["STRICT_TRANSPORT_SECURITY"] is True
    assert app.config["TRUSTED_HOSTS"] == ["shop.example.com"]


@pytest.mark.parametrize(
    "secret_key",
    [
        "change-me",
        "dev",
        "secret",
        "test-secret-key",
        "a-long-random-production-secret",  # 31 characters
        "CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME",  # long, but the same few characters
        "x" * 64,
        "your-secret-key-here-your-secret-key-here",
    ],
)
def test_production_refuses_a_short_or_placeholder_secret_key(tmp_path, secret_key):
    with pytest.raises(RuntimeError, match="SECRET_KEY must be a random value of at least 32 characters"):
        create_app(production(tmp_path, SECRET_KEY=secret_key))


@pytest.mark.parametrize(
    "shop_url",
    [
        "http://shop.example.com",
        "shop.example.com",
        "",
        "https://localhost",
        "https://localhost:8443",
        "https://shop.localhost",
        "https://127.0.0.1",
        "https://127.8.9.10:5000",
        "https://127.1",
        "https://[::1]:5000",
        "https://[::ffff:127.0.0.1]",
        "https://0.0.0.0",
    ],
)
def test_production_refuses_a_shop_url_that_is_not_public_https(tmp_path, shop_url):
    with pytest.raises(RuntimeError, match="SHOP_URL must be the shop's public"):
        create_app(production(tmp_path, SHOP_URL=shop_url))


def test_production_refuses_the_stripe_simulator(tmp_path):
    with pytest.raises(RuntimeError, match="STRIPE_API_BASE must be empty in production"):
        create_app(production(tmp_path, STRIPE_API_BASE="http://127.0.0.1:12111"))


def test_trusted_hosts_always_include_shop_urls_host(tmp_path):
    app = create_app(production(tmp_path, TRUSTED_HOSTS=["www.example.com"]))
    assert app.config["TRUSTED_HOSTS"] == ["www.example.com", "shop.example.com"]
    app = create_app(production(tmp_path, TRUSTED_HOSTS="www.example.com, .example.com"))
    assert app.config["TRUSTED_HOSTS"] == ["www.example.com", ".example.com"]  # .example.com covers it
    development = config.DevelopmentConfig
    database = f"sqlite:///{tmp_path / 'd.db'}"
    app = create_app(
        development, SQLALCHEMY_DATABASE_URI=database, SHOP_URL="http://127.0.0.1:5000", TRUSTED_HOSTS="a.test"
    )
    assert app.config["TRUSTED_HOSTS"] == ["a.test", "127.0.0.1"]


def test_production_names_every_problem_at_once(tmp_path):
    unsafe = production(
        tmp_path, SECRET_KEY="dev", STRIPE_WEBHOOK_SECRET="", SHOP_URL="http://127.0.0.1:5000", STRIPE_API_BASE="x"
    )
    with pytest.raises(RuntimeError) as refusal:
        create_app(unsafe)
    message = str(refusal.value)
    for name in ("STRIPE_WEBHOOK_SECRET", "SECRET_KEY", "SHOP_URL", "STRIPE_API_BASE"):
        assert name in message


def test_development_and_tests_accept_what_production_refuses(tmp_path):
    relaxed = {"SECRET_KEY": "dev", "SHOP_URL": "http://127.0.0.1:5000", "STRIPE_API_BASE": "http://127.0.0.1:1"}
    database = f"sqlite:///{tmp_path / 'd.db'}"
    for settings in (config.DevelopmentConfig, config.TestConfig):
        app = create_app(settings, SQLALCHEMY_DATABASE_URI=database, **relaxed)
        assert app.config["TRUSTED_HOSTS"] is None
        assert app.config["STRICT_TRANSPORT_SECURITY"] is False


def test_development_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path)
    first = config.development_secret_key()
    assert len(first) >= 64
    assert config.development_secret_key() == first
    assert (tmp_path / "secret_key").read_text() == first


def test_postgres_urls_use_psycopg_3():
    assert config.normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_bad_integer_setting_is_reported_by_name(monkeypatch):
    monkeypatch.setenv("HOLD_MINUTES", "ten")
    with pytest.raises(RuntimeError, match="HOLD_MINUTES must be an integer"):
        config.env_int("HOLD_MINUTES", 10)


def test_unknown_environment_name_is_refused(monkeypatch):
    monkeypatch.setenv("STOREFRONT_ENV", "staging-ish")
    with pytest.raises(RuntimeError, match="STOREFRONT_ENV"):
        config.config_from_environment()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("0", {}),
        ("1", {"x_for": 1, "x_proto": 1}),
        ("2", {"x_for": 2, "x_proto": 2}),
        ("x_for=1,x_proto=1,x_host=1", {"x_for": 1, "x_proto": 1, "x_host": 1}),
        (" x_for = 2 , X_PREFIX=1, x_port=0 ", {"x_for": 2, "x_prefix": 1}),
    ],
)
def test_proxy_fix_is_a_count_of_proxies_or_named_counts(raw, expected):
    assert config.parse_proxy_fix(raw) == expected


@pytest.mark.parametrize("raw", ["yes", "true", "-1", "x_for", "x_for=one", "x_forwarded_for=1", "x_for=1;x_proto=1"])
def test_a_bad_proxy_fix_is_reported_by_name(raw):
    with pytest.raises(RuntimeError, match="PROXY_FIX must be"):
        config.parse_proxy_fix(raw)


# --- STOREFRONT_ENV left unset ------------------------------------------------------------------------------------


def test_an_unset_environment_is_development_for_the_flask_command_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "gunicorn", raising=False)
    assert config.config_for_app({"FLASK_RUN_FROM_CLI": "true"}) is config.DevelopmentConfig
    with pytest.raises(RuntimeError, match="STOREFRONT_ENV is not set. Set STOREFRONT_ENV=production"):
        config.config_for_app({})
    with pytest.raises(RuntimeError, match="STOREFRONT_ENV is not set"):
        config.config_for_app({"FLASK_RUN_FROM_CLI": "true", "SERVER_SOFTWARE": "gunicorn/23.0.0"})
    monkeypatch.setitem(sys.modules, "gunicorn", types.ModuleType("gunicorn"))
    with pytest.raises(RuntimeError, match="STOREFRONT_ENV is not set"):
        config.config_for_app({"FLASK_RUN_FROM_CLI": "true"})
    # Named explicitly, every environment is what it says, however the process was started.
    assert config.config_for_app({"STOREFRONT_ENV": "production"}) is config.ProductionConfig
    assert config.config_for_app({"STOREFRONT_ENV": "development"}) is config.DevelopmentConfig


def shop_environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any shop settings, with a throwaway instance folder."""
    drop = ("STOREFRONT_ENV", "FLASK_RUN_FROM_CLI", "SERVER_SOFTWARE", "DATABASE_URL", "SECRET_KEY", "FLASK_APP")
    env = {name: value for name, value in os.environ.items() if name not in drop}
    return {**env, "INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONPATH": str(PROJECT), **settings}


def test_the_flask_command_runs_in_development_without_storefront_env(tmp_path):
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    env = shop_environment(tmp_path)
    result = subprocess.run(
        [*command, "--app", "wsgi", "routes"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "shop.reserve_release" in result.stdout


def test_importing_the_app_elsewhere_without_storefront_env_refuses_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=PROJECT,
        env=shop_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to start: STOREFRONT_ENV is not set" in result.stderr


@pytest.mark.slow
def test_gunicorn_without_storefront_env_refuses_to_start(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.run(
            [str(gunicorn), "-w", "1", "-b", f"127.0.0.1:{free_port()}", "wsgi:app"],
            cwd=PROJECT,
            # Even when started from a shell that once ran `flask`: gunicorn is never a developer's server.
            env=shop_environment(tmp_path, FLASK_RUN_FROM_CLI="true"),
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    assert server.returncode != 0
    assert "Refusing to start: STOREFRONT_ENV is not set" in log.read_text()


@pytest.mark.parametrize("zone", ["Europe/Dubln", "", "../etc/passwd"])
def test_every_environment_refuses_a_shop_timezone_that_is_not_a_zone(tmp_path, zone):
    with pytest.raises(RuntimeError, match="SHOP_TIMEZONE"):
        create_app(config.TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 't.db'}", SHOP_TIMEZONE=zone)


def test_the_shop_timezone_defaults_to_dublin():
    assert config.Config.SHOP_TIMEZONE == "Europe/Dublin" or os.environ.get("SHOP_TIMEZONE")
