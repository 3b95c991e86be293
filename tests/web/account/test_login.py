"""Signing in and out, the producer's workspace guard, the failed-sign-in limits and `create-producer`."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from config import ProductionConfig
from storefront.account.views import FAILED_SIGN_IN
from storefront.domain.accounts import create_producer, email_key, hash_password
from storefront.models import Role, User
from storefront.unit_of_work import write_transaction
from tests.factories import make_release

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
PRODUCER = "ann@distillery.ie"
CUSTOMER = "bob@example.com"
PASSWORD = "correct horse battery"
SMALL_LIMITS = {"LOGIN_LIMIT_PER_EMAIL": "3/hour", "LOGIN_LIMIT_PER_IP": "5/hour"}


def csrf_token(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return CSRF_INPUT.search(page).group(1)


def sign_in(client, email=PRODUCER, password=PASSWORD, *, next=None, remember=False, token=None, **kwargs):
    data = {"csrf_token": token or csrf_token(client), "email": email, "password": password}
    if next is not None:
        data["next"] = next
    if remember:
        data["remember"] = "y"
    return client.post("/login", data=data, **kwargs)


@pytest.fixture
def producer(session, clock):
    with write_transaction(session):
        create_producer(session, PRODUCER, PASSWORD, clock())


@pytest.fixture
def customer(session, clock):
    with write_transaction(session):
        session.add(
            User(
                email=CUSTOMER,
                email_key=email_key(CUSTOMER),
                password_hash=hash_password(PASSWORD),
                role=Role.CUSTOMER,
                created_at=clock(),
            )
        )


# --- Signing in and out ------------------------------------------------------------------------------------------


def test_the_login_page_has_a_form_with_a_token(client):
    page = client.get("/login")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="csrf_token"' in text and 'name="password"' in text and 'type="password"' in text
    assert "<script>" not in text and "style=" not in text


def test_a_producer_signs_in_and_lands_on_the_dashboard(client, producer, session, clock):
    response = sign_in(client, email="  Ann@Distillery.IE ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/producer/"
    dashboard = client.get("/producer/")
    assert dashboard.status_code == 200
    assert f"Signed in as {PRODUCER}" in dashboard.get_data(as_text=True)
    assert session.scalar(select(User.last_login_at)) == clock()


def test_wrong_password_and_unknown_email_look_the_same(client, producer):
    wrong_password = sign_in(client, password="not the right one")
    unknown_email = sign_in(client, email="nobody@distillery.ie")
    assert wrong_password.status_code == unknown_email.status_code == 200
    pages = []
    for response, email in ((wrong_password, PRODUCER), (unknown_email, "nobody@distillery.ie")):
        text = response.get_data(as_text=True)
        assert FAILED_SIGN_IN in text
        assert "not the right one" not in text and PASSWORD not in text  # the password is never echoed
        pages.append(CSRF_INPUT.sub("", text).replace(email, "EMAIL"))
    assert pages[0] == pages[1]
    assert client.get("/producer/").status_code == 302  # nobody is signed in


def test_an_empty_form_is_explained(client):
    response = client.post("/login", data={"csrf_token": csrf_token(client), "email": "", "password": ""})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Enter your email address." in text and "Enter your password." in text


def test_signing_in_needs_the_csrf_token(client, producer):
    response = client.post("/login", data={"email": PRODUCER, "password": PASSWORD})
    assert response.status_code == 400
    assert "Please try that again" in response.get_data(as_text=True)
    assert client.get("/producer/").status_code == 302


def test_signing_out_is_a_post_with_a_token(client, producer):
    sign_in(client)
    page = client.get("/logout")
    assert page.status_code == 200
    assert f"signed in as {PRODUCER}" in page.get_data(as_text=True)

    assert client.post("/logout").status_code == 400  # no token: still signed in
    assert client.get("/producer/").status_code == 200

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/logout")})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert client.get("/producer/").status_code == 302


def test_remember_me_sets_a_protected_cookie(client, producer):
    response = sign_in(client, remember=True)
    cookies = response.headers.getlist("Set-Cookie")
    remember = [cookie for cookie in cookies if cookie.startswith("remember_token=")]
    assert remember, cookies
    assert "HttpOnly" in remember[0] and "SameSite=Lax" in remember[0]


def test_without_remember_me_there_is_no_remember_cookie(client, producer):
    response = sign_in(client)
    assert not [cookie for cookie in response.headers.getlist("Set-Cookie") if cookie.startswith("remember_token=")]


def test_production_cookies_are_secure():
    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert ProductionConfig.REMEMBER_COOKIE_SECURE is True
    assert ProductionConfig.REMEMBER_COOKIE_HTTPONLY is True
    assert ProductionConfig.REMEMBER_COOKIE_SAMESITE == "Lax"


# --- Where signing in leads --------------------------------------------------------------------------------------


def test_a_local_next_is_followed(client, producer):
    response = sign_in(client, next="/producer/?view=all")
    assert response.headers["Location"] == "/producer/?view=all"


@pytest.mark.parametrize(
    "unsafe",
    [
        "//evil.example",
        "https://evil.example",
        "http://evil.example/producer/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_an_unsafe_next_is_ignored(client, producer, unsafe):
    response = sign_in(client, next=unsafe)
    assert response.status_code == 303
    assert response.headers["Location"] == "/producer/"


def test_the_form_carries_next_from_the_address(client):
    text = client.get("/login?next=/producer/").get_data(as_text=True)
    assert 'name="next"' in text and 'value="/producer/"' in text
    text = client.get("/login?next=//evil.example").get_data(as_text=True)
    assert "evil.example" not in text


# --- The producer's workspace ------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client, producer):
    response = client.get("/producer/?view=all")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    next_url = parse_qs(location.query)["next"][0]
    assert next_url == "/producer/?view=all"
    assert sign_in(client, next=next_url).headers["Location"] == "/producer/?view=all"


def test_a_customer_gets_403(client, customer):
    assert sign_in(client, email=CUSTOMER).headers["Location"] == "/"
    response = client.get("/producer/")
    assert response.status_code == 403
    assert "This page is for the shop" in response.get_data(as_text=True)


def test_the_dashboard_shows_live_counts(client, producer, session):
    release = make_release(session, units=7)
    session.commit()
    sign_in(client)
    text = client.get("/producer/").get_data(as_text=True)
    assert release.title in text
    assert re.search(r'data-available="7">7<', text) and re.search(r'data-held="0">0<', text)
    assert re.search(r'data-total="7">7<', text)


# --- Failed sign-ins are limited ---------------------------------------------------------------------------------


@pytest.mark.parametrize("app_overrides", [SMALL_LIMITS])
def test_failures_for_one_address_are_limited(client, producer, app_overrides):
    for _ in range(3):
        assert sign_in(client, password="wrong password!!").status_code == 200
    blocked = sign_in(client)  # even the right password, until the window ends
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    # The same address however it is typed shares the allowance.
    assert sign_in(client, email="ANN@distillery.ie").status_code == 429
    assert client.get("/producer/").status_code == 302
    # Another address from the same client is not blocked by this one's failures.
    assert sign_in(client, email="other@distillery.ie").status_code == 200


@pytest.mark.parametrize("app_overrides", [SMALL_LIMITS])
def test_failures_from_one_ip_are_limited(client, producer, app_overrides):
    for number in range(5):
        assert sign_in(client, email=f"guess{number}@distillery.ie").status_code == 200
    assert sign_in(client).status_code == 429
    # Another client address is unaffected.
    elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
    token = csrf_token(client)
    assert sign_in(client, token=token, environ_base=elsewhere).status_code == 303


@pytest.mark.parametrize("app_overrides", [SMALL_LIMITS])
def test_successful_sign_ins_do_not_count(app, client, producer, app_overrides):
    for _ in range(6):
        assert sign_in(app.test_client()).status_code == 303  # a new browser each time: signed out
    assert sign_in(client, password="wrong password!!").status_code == 200


@pytest.mark.parametrize("app_overrides", [SMALL_LIMITS])
def test_the_form_page_itself_is_never_limited(client, producer, app_overrides):
    for _ in range(5):
        sign_in(client, password="wrong password!!")
    assert client.get("/login").status_code == 200


# --- flask storefront create-producer ----------------------------------------------------------------------------


def test_create_producer_prompts_twice(app, session):
    result = app.test_cli_runner().invoke(
        args=["storefront", "create-producer", "Ann@Distillery.ie"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "Producer ann@distillery.ie created" in result.output
    user = session.scalar(select(User))
    assert (user.email, user.role) == (PRODUCER, Role.PRODUCER)


def test_create_producer_reads_the_password_from_stdin(app, session, client):
    result = app.test_cli_runner().invoke(
        args=["storefront", "create-producer", PRODUCER, "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    assert sign_in(client).status_code == 303


def test_create_producer_refuses_mismatched_short_and_duplicate(app, session, producer):
    runner = app.test_cli_runner()
    mismatch = runner.invoke(
        args=["storefront", "create-producer", "new@distillery.ie"], input=f"{PASSWORD}\nsomething else!!\n"
    )
    assert mismatch.exit_code != 0
    short = runner.invoke(
        args=["storefront", "create-producer", "new@distillery.ie", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    duplicate = runner.invoke(
        args=["storefront", "create-producer", "ANN@distillery.ie", "--password-stdin"], input=f"{PASSWORD}\n"
    )
    assert duplicate.exit_code == 1 and "already an account" in duplicate.output
    assert [user.email for user in session.scalars(select(User))] == [PRODUCER]
