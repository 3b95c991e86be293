"""The HTTP edge: security headers, NUL bytes, oversized bodies, trusted hosts, proxies and external URLs."""

from __future__ import annotations

import io
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask, request
from flask import session as cookie_session
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter, Rule

import config
from storefront import create_app
from storefront.models import Hold
from storefront.security import STRIPE_CHECKOUT_ORIGIN, content_security_policy
from storefront.text import render_markdown
from storefront.urls import external_url
from tests.factories import make_batch, make_release

PROJECT = Path(__file__).resolve().parents[2]
ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=63072000; includeSubDomains"


def production_app(tmp_path: Path, **overrides) -> Flask:
    """A production shop on SQLite with safe settings; overrides change them."""

    class Production(config.ProductionConfig):
        SECRET_KEY = secrets.token_hex(32)
        STRIPE_SECRET_KEY = "sk_live_example"
        STRIPE_WEBHOOK_SECRET = "whsec_example"
        STRIPE_API_BASE = ""
        SHOP_URL = "https://shop.example.com"
        TRUSTED_HOSTS = None
        PROXY_FIX: dict = {}
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'production.db'}"

    return create_app(Production, **overrides)


def shop_app(tmp_path: Path, **overrides) -> Flask:
    """A test shop on an empty SQLite file, for checks that do not touch the database."""
    return create_app(config.TestConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'shop.db'}", **overrides)


def fetch(client, path: str, **kwargs):
    """GET `path` and close the response (a static file's stays open until closed)."""
    with client.get(path, **kwargs) as response:
        response.get_data()
    return response


def assert_security_headers(response, checkout_origin: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
    assert directives == {
        "default-src": "'self'",
        "img-src": "'self' data:",
        "style-src": "'self'",
        "script-src": "'self'",
        "form-action": f"'self' {checkout_origin}",
        "frame-ancestors": "'none'",
        "base-uri": "'self'",
        "object-src": "'none'",
    }


# --- Headers ------------------------------------------------------------------------------------------------------


def test_every_public_page_carries_the_security_headers(app, session, client, clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, on_sale_at=ON_SALE)
    session.commit()
    pages = {
        "/": 200,
        f"/releases/{release.slug}": 200,
        f"/batches/{release.batch.slug}": 200,
        f"/api/releases/{release.slug}": 200,
        "/static/css/shop.css": 200,
        "/no-such-page": 404,
        "/api/releases/no-such-release": 404,
    }
    for path, status in pages.items():
        response = fetch(client, path)
        assert response.status_code == status, path
        assert_security_headers(response, checkout_origin=stripe_sim.url)
        assert "Strict-Transport-Security" not in response.headers, "HSTS is for production only"
    # The API's own Cache-Control survives beside them.
    assert client.get(f"/api/releases/{release.slug}").headers["Cache-Control"] == "no-store"


def test_a_header_a_view_sets_itself_is_kept(tmp_path):
    app = shop_app(tmp_path)

    @app.get("/_framed")
    def framed():
        return "ok", 200, {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'none'"}

    response = app.test_client().get("/_framed")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_production_adds_hsts_and_lets_forms_go_to_stripe_checkout(tmp_path):
    app = production_app(tmp_path)
    response = fetch(app.test_client(), "/static/css/shop.css", base_url="https://shop.example.com")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == HSTS
    assert_security_headers(response, checkout_origin=STRIPE_CHECKOUT_ORIGIN)


def test_form_action_allows_the_configured_simulator_origin_only():
    assert "form-action 'self' https://checkout.stripe.com;" in content_security_policy({"STRIPE_API_BASE": ""})
    policy = content_security_policy({"STRIPE_API_BASE": "http://127.0.0.1:12111/v1/"})
    assert "form-action 'self' http://127.0.0.1:12111;" in policy
    assert "checkout.stripe.com" not in policy


def test_the_shops_templates_have_no_inline_script_style_or_handlers():
    """The CSP allows neither: an inline script or style here would silently stop working.

    Mail is the exception for styles: mail programs read no stylesheet, so the HTML mail carries its own (and no
    script, handler or javascript: link, like every page)."""
    offenders = []
    for template in sorted((PROJECT / "templates").rglob("*.html")):
        text = template.read_text()
        patterns = [r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=\s*[\"']", r"javascript:"]
        if template.parent.name != "mail":
            patterns += [r"<style\b", r"\sstyle\s*="]
        for pattern in patterns:
            offenders += [f"{template.relative_to(PROJECT)}: {match}" for match in re.findall(pattern, text, re.I)]
    assert offenders == []


def test_session_cookie_is_secure_httponly_and_lax_in_production(tmp_path):
    app = production_app(tmp_path)

    @app.get("/_remember")
    def remember():
        cookie_session["seen"] = True
        return "ok"

    cookie = app.test_client().get("/_remember", base_url="https://shop.example.com").headers["Set-Cookie"]
    flags = {flag.strip().lower() for flag in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags


# --- Story images -------------------------------------------------------------------------------------------------


def test_story_keeps_the_shops_own_images():
    html = render_markdown('![Casks](/media/demo/cask.jpg "The warehouse")\n\n<img src="/static/img/x.svg" alt="Mark">')
    assert '<img alt="Casks" src="/media/demo/cask.jpg" title="The warehouse">' in html
    assert '<img src="/static/img/x.svg" alt="Mark">' in html


@pytest.mark.parametrize(
    "source",
    [
        "https://tracker.example/pixel.gif",
        "http://tracker.example/pixel.gif",
        "//tracker.example/pixel.gif",
        "/\\tracker.example/pixel.gif",
        " https://tracker.example/pixel.gif",
        "&#x2F;&#x2F;tracker.example/pixel.gif",
        "media/relative.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
)
def test_story_images_from_elsewhere_become_their_alt_text(source):
    markdown_html = render_markdown(f'Before <img src="{source}" alt="The farm"> after')
    assert "<img" not in markdown_html and "tracker" not in markdown_html
    assert "Before The farm after" in markdown_html

    markdown_image = render_markdown(f"Before ![The farm]({source.strip()}) after")
    assert "<img" not in markdown_image and "tracker" not in markdown_image


def test_alt_text_of_a_dropped_image_stays_text():
    html = render_markdown("""<img src="https://x.example/a.png" alt='"quoted" <script>alert(1)</script> & co'>""")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp; co" in html
    assert render_markdown('<img src="https://x.example/a.png">') == "<p></p>"


def test_batch_page_shows_no_foreign_story_image(app, session, client):
    batch = make_batch(session, story="Our farm: ![the barn](https://tracker.example/barn.jpg)")
    session.commit()
    page = client.get(f"/batches/{batch.slug}").get_data(as_text=True)
    assert "tracker.example" not in page
    assert "Our farm: the barn" in page


# --- NUL bytes and body size, on every route ------------------------------------------------------------------------


def routes(app: Flask) -> list[Rule]:
    return sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)


def methods_of(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def build(app: Flask, rule: Rule, value: str) -> str:
    """The path of `rule` with every argument set to `value` (percent-encoded as url_for does).

    An integer argument gets 1 when `value` is not a number the converter accepts, unless `value` holds a NUL:
    then it goes in as is, so the NUL still reaches the path.
    """
    values = {}
    for argument in rule.arguments:
        converter = rule._converters[argument]
        if isinstance(converter, IntegerConverter) and not value.isdigit():
            values[argument] = "1"
        else:
            values[argument] = value
    nul_in_int = [a for a in rule.arguments if isinstance(rule._converters[a], IntegerConverter) and "\x00" in value]
    if nul_in_int:
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(rf"<(?:[^:>]+:)?{argument}>", quote(value, safe=""), path)
        return path
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def test_every_route_answers_a_nul_in_its_path_with_the_404_page(app, client):
    checked = []
    for rule in routes(app):
        paths = {build(app, rule, "a\x00b")} if rule.arguments else {rule.rule.rstrip("/") + "/%00", rule.rule + "%00"}
        for path in sorted(paths):
            assert "%00" in path
            for method in methods_of(rule):
                response = client.open(path, method=method)
                assert response.status_code == 404, (method, path, response.status_code)
                checked.append((method, path))
                if not path.startswith("/api/"):
                    assert "Page not found" in response.get_data(as_text=True)
    assert {method for method, _ in checked} == {"GET", "POST"}


@pytest.mark.parametrize("query", ["q=%00", "%00=1", "q=a%00b&r=1", "q=ok&q=%00"])
def test_every_route_refuses_a_nul_in_its_query_string(app, client, query):
    for rule in routes(app):
        path = build(app, rule, "x")
        for method in methods_of(rule):
            response = client.open(f"{path}?{query}", method=method)
            assert response.status_code == 400, (method, path, response.status_code)
            body = response.get_data(as_text=True)
            if path.startswith("/api/"):
                assert response.json["error"] == "Bad Request" and "NUL" in response.json["message"]
            else:
                assert "NUL byte" in body and "Back to the shop" in body


def post_routes(app: Flask) -> list[str]:
    paths = [build(app, rule, "x") for rule in routes(app) if "POST" in rule.methods]
    assert "/stripe/webhook" in paths and len(paths) >= 3
    return paths


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json", ""]
)
def test_every_post_route_answers_an_oversized_body_413_before_csrf(app, client, content_type):
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == 1024 * 1024
    for path in post_routes(app):
        response = client.post(path, data=b"a" * (limit + 1), content_type=content_type or None)
        assert response.status_code == 413, (path, content_type, response.status_code)
        assert "larger than the shop accepts" in response.get_data(as_text=True)


def test_an_oversized_body_without_a_content_length_is_refused_while_it_is_read(app, client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    for path in post_routes(app):
        for content_type in ("application/x-www-form-urlencoded", "application/json"):
            response = client.post(
                path,
                input_stream=io.BytesIO(b"a" * (limit + 1)),
                content_type=content_type,
                environ_overrides={"wsgi.input_terminated": True},  # chunked: the server marks the end itself
            )
            assert response.status_code == 413, (path, content_type, response.status_code)


def test_an_oversized_request_to_the_api_is_answered_in_json(app, client):
    response = client.post("/api/releases/x", data=b"a" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert response.status_code == 413
    assert response.json["error"] == "Request Entity Too Large"


def test_max_content_length_comes_from_the_settings(tmp_path):
    app = shop_app(tmp_path, MAX_CONTENT_LENGTH=100)
    client = app.test_client()
    assert client.post("/holds/x/cancel", data={"a": "b" * 100}).status_code == 413
    assert client.post("/holds/x/cancel", data={"a": "b" * 90}).status_code == 400  # no CSRF token, but not too big


def test_the_webhook_refuses_a_nul_in_its_body(app, client):
    response = client.post("/stripe/webhook", data=b'{"id": "evt_1\x00"}', content_type="application/json")
    assert response.status_code == 400
    assert "NUL byte" in response.get_data(as_text=True)


def test_a_nul_in_a_form_field_is_refused_before_the_form_is_read(app, session, client, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, on_sale_at=ON_SALE)
    session.commit()
    token = CSRF_INPUT.search(client.get(f"/releases/{release.slug}").get_data(as_text=True)).group(1)
    fields = [
        {"email": "ada\x00@example.com", "quantity": "1"},
        {"email": "ada@example.com", "quantity": "1\x00"},
        {"email": "ada@example.com", "quantity": "1", "note\x00": "x"},
    ]
    for data in fields:
        for encoding in ("application/x-www-form-urlencoded", "multipart/form-data"):
            response = client.post(
                f"/releases/{release.slug}/reserve", data={"csrf_token": token, **data}, content_type=encoding
            )
            assert response.status_code == 400, (data, encoding)
            assert "NUL byte" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Hold)) == 0


# --- Hosts, proxies and external URLs ------------------------------------------------------------------------------


def test_a_request_for_another_host_is_refused_with_the_shops_page(tmp_path):
    app = shop_app(tmp_path, SHOP_URL="http://shop.example.com", TRUSTED_HOSTS=["shop.example.com"])
    client = app.test_client()

    assert fetch(client, "/static/css/shop.css", base_url="http://shop.example.com").status_code == 200
    refused = fetch(client, "/static/css/shop.css", base_url="http://evil.example")
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "Back to the shop" in page and 'href="/static/css/shop.css?v=' in page
    assert refused.headers["X-Frame-Options"] == "DENY"

    api = client.get("/api/releases/x", base_url="http://evil.example")
    assert api.status_code == 400 and api.json["error"] == "Bad Request"


def test_trusted_hosts_are_read_from_a_comma_separated_setting(tmp_path):
    app = shop_app(tmp_path, SHOP_URL="https://shop.example.com", TRUSTED_HOSTS="shop.example.com, .example.org")
    assert app.config["TRUSTED_HOSTS"] == ["shop.example.com", ".example.org"]
    client = app.test_client()
    assert fetch(client, "/static/css/shop.css", base_url="http://www.example.org").status_code == 200
    assert fetch(client, "/static/css/shop.css", base_url="http://example.net").status_code == 400


def test_development_and_tests_accept_any_host_by_default(tmp_path):
    app = shop_app(tmp_path)
    assert app.config["TRUSTED_HOSTS"] is None
    assert fetch(app.test_client(), "/static/css/shop.css", base_url="http://anything.test").status_code == 200


def test_production_trusts_shop_urls_host_by_default(tmp_path):
    app = production_app(tmp_path)
    assert app.config["TRUSTED_HOSTS"] == ["shop.example.com"]
    client = app.test_client()
    assert fetch(client, "/static/css/shop.css", base_url="https://shop.example.com").status_code == 200
    assert fetch(client, "/static/css/shop.css", base_url="https://attacker.example").status_code == 400


@pytest.mark.parametrize(
    ("proxy_fix", "scheme", "remote_addr", "host"),
    [
        ("", "http", "10.0.0.2", "localhost"),
        ("1", "https", "203.0.113.9", "localhost"),
        ("x_for=1,x_proto=1,x_host=1", "https", "203.0.113.9", "shop.example.com"),
    ],
)
def test_proxy_fix_believes_only_the_configured_forwarded_headers(tmp_path, proxy_fix, scheme, remote_addr, host):
    app = shop_app(tmp_path, PROXY_FIX=proxy_fix)

    @app.get("/_who")
    def who():
        return {"scheme": request.scheme, "remote_addr": request.remote_addr, "host": request.host}

    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example.com"}
    answer = app.test_client().get("/_who", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.2"}).json
    assert answer == {"scheme": scheme, "remote_addr": remote_addr, "host": host}


def test_external_urls_come_from_shop_url_not_the_requests_host(tmp_path):
    app = shop_app(tmp_path, SHOP_URL="https://shop.example.com")

    @app.get("/_links")
    def links():
        return {
            "success": external_url("checkout.show_success") + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel": external_url("checkout.cancel_checkout", token="tok en ü"),
            "release": external_url("shop.show_release", slug="rye", ref="mail", _anchor="reserve"),
        }

    spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    answer = app.test_client().get("/_links", base_url="http://evil.example:8080", headers=spoofed).json
    assert answer == {
        "success": "https://shop.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel": "https://shop.example.com/checkout/cancel/tok%20en%20%C3%BC",
        "release": "https://shop.example.com/releases/rye?ref=mail#reserve",
    }


def test_external_urls_keep_shop_urls_base_path_and_port_outside_a_request(tmp_path):
    app = shop_app(tmp_path, SHOP_URL="http://127.0.0.1:5000/small-batch/")
    with app.app_context():
        assert external_url("shop.show_home") == "http://127.0.0.1:5000/small-batch/"
        assert external_url("static", filename="css/shop.css").startswith(
            "http://127.0.0.1:5000/small-batch/static/css/shop.css?v="
        )


def test_an_id_too_large_for_the_database_is_not_found_not_a_crash(app, client):
    """Every `<int:…>` route answers 404 for an id no row can have, before the database sees it."""
    huge = "9" * 30
    checked = 0
    for rule in routes(app):
        if not any(isinstance(rule._converters[a], IntegerConverter) for a in rule.arguments):
            continue
        path = re.sub(r"<int:[a-z_]+>", huge, rule.rule)
        for method in methods_of(rule):
            response = client.open(path, method=method)
            assert response.status_code in (302, 404, 405), (method, path, response.status_code)
            checked += 1
    assert checked > 5
