"""Configuration comes from the environment; production refuses to start without its secrets."""

import pytest

import config
from storefront import create_app


@pytest.mark.parametrize("missing", ["SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, missing):
    settings = {
        "SECRET_KEY": "a-long-random-production-secret",
        "STRIPE_SECRET_KEY": "sk_live_example",
        "STRIPE_WEBHOOK_SECRET": "whsec_example",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}",
        missing: "",
    }
    production = type("Production", (config.ProductionConfig,), settings)

    with pytest.raises(RuntimeError, match=missing):
        create_app(production)


def test_production_starts_with_its_secrets(tmp_path):
    class Production(config.ProductionConfig):
        SECRET_KEY = "a-long-random-production-secret"
        STRIPE_SECRET_KEY = "sk_live_example"
        STRIPE_WEBHOOK_SECRET = "whsec_example"
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'p.db'}"

    assert create_app(Production).config["SESSION_COOKIE_SECURE"] is True


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
