"""Signing up for news of new batches: double opt-in, no address enumeration, confirm and unsubscribe links."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from storefront.audience import tokens
from storefront.models import OutboxMessage, Subscriber, SubscriberStatus
from tests.factories import make_batch
from tests.web.producer.conftest import csrf_from

SHOP_URL = "https://smallbatch.example"
LINK = re.compile(rf"{re.escape(SHOP_URL)}/(subscribe/confirm|unsubscribe)/([A-Za-z0-9_.\-]+)")


@pytest.fixture
def app_overrides() -> dict:
    return {"SHOP_URL": SHOP_URL}


def sign_up(client, email: str, token: str | None = None):
    token = token if token is not None else csrf_from(client.get("/").get_data(as_text=True))
    return client.post("/subscribe", data={"csrf_token": token, "email": email})


def mails(session) -> list[OutboxMessage]:
    session.commit()
    return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def links_in(message: OutboxMessage) -> dict[str, str]:
    """The confirm and unsubscribe paths in a mail, keyed by kind."""
    return {kind: f"/{kind}/{token}" for kind, token in LINK.findall(message.body)}


def subscriber(session, email_key: str) -> Subscriber | None:
    session.commit()
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key))


def confirm(client, path: str):
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})


def test_the_home_and_story_pages_carry_the_sign_up_form(app, session, client):
    batch = make_batch(session)
    session.commit()
    for path in ["/", f"/batches/{batch.slug}"]:
        page = client.get(path).get_data(as_text=True)
        assert "Tell me about new batches" in page
        assert 'action="/subscribe"' in page and 'name="email"' in page and 'name="csrf_token"' in page


def test_signing_up_mails_a_confirmation_with_both_links_and_list_unsubscribe_headers(app, session, client):
    response = sign_up(client, "Ann@Example.ie")

    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/check-your-inbox"
    assert "Check your inbox" in client.get(response.headers["Location"]).get_data(as_text=True)
    (message,) = mails(session)
    assert message.recipient == "Ann@Example.ie"
    assert message.subject.startswith("Please confirm")
    links = links_in(message)
    assert set(links) == {"subscribe/confirm", "unsubscribe"}
    assert message.headers == {
        "List-Unsubscribe": f"<{SHOP_URL}{links['unsubscribe']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "48 hours" in message.body
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.PENDING


def test_new_pending_and_confirmed_addresses_get_identical_answers(app, session, client, clock):
    """Nobody can learn from the shop's answer whether an address is on the list, or in which state."""
    first = sign_up(client, "new@example.ie")
    (message,) = mails(session)
    confirm(client, links_in(message)["subscribe/confirm"])
    assert subscriber(session, "new@example.ie").status == SubscriberStatus.CONFIRMED
    sign_up(client, "pending@example.ie")

    answers = [sign_up(client, email) for email in ["fresh@example.ie", "pending@example.ie", "new@example.ie"]]

    assert {(answer.status_code, answer.headers["Location"]) for answer in [first, *answers]} == {
        (303, "/subscribe/check-your-inbox")
    }
    assert len({answer.get_data() for answer in answers}) == 1
    # Only the new address was mailed: the pending one within its resend window, the confirmed one never.
    mailed = [message.recipient for message in mails(session)]
    assert mailed == ["new@example.ie", "pending@example.ie", "fresh@example.ie"]


def test_a_pending_address_is_mailed_again_only_after_the_resend_window(app, session, client, clock):
    sign_up(client, "ann@example.ie")
    clock.advance(minutes=14)
    sign_up(client, "ANN@example.ie")
    assert len(mails(session)) == 1

    clock.advance(minutes=1)
    sign_up(client, "ann@example.ie")
    assert len(mails(session)) == 2
    assert subscriber(session, "ann@example.ie").confirmation_sent_at == clock()


@pytest.mark.parametrize("email", ["not an address", "ann@", "", "аnn@example.ie", "x" * 400 + "@example.ie"])
def test_an_invalid_address_shows_the_form_again_with_a_message_and_stores_nothing(app, session, client, email):
    response = sign_up(client, email)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'class="field__error"' in page and 'name="email"' in page
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert mails(session) == []


def test_a_sign_up_without_its_form_token_is_refused(app, session, client):
    response = client.post("/subscribe", data={"email": "ann@example.ie"})

    assert response.status_code == 400
    assert "Nothing was changed" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_confirmation_link_shows_a_button_and_confirms_once_pressed(app, session, client):
    sign_up(client, "ann@example.ie")
    path = links_in(mails(session)[0])["subscribe/confirm"]

    page = client.get(path)
    assert page.status_code == 200 and "Confirm your subscription" in page.get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.PENDING, "opening the link confirms nothing"

    response = client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 303
    assert "You are on the list" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.CONFIRMED


def test_the_confirmation_link_expires_by_the_shops_clock(app, session, client, clock):
    sign_up(client, "ann@example.ie")
    path = links_in(mails(session)[0])["subscribe/confirm"]
    token = csrf_from(client.get(path).get_data(as_text=True))

    clock.advance(hours=48, seconds=1)
    page = client.get(path)
    pressed = client.post(path, data={"csrf_token": token})

    for response in (page, pressed):
        assert response.status_code == 400
        assert "expired" in response.get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.PENDING


def test_a_link_just_inside_its_lifetime_still_works(app, session, client, clock):
    sign_up(client, "ann@example.ie")
    path = links_in(mails(session)[0])["subscribe/confirm"]
    clock.advance(hours=47, minutes=59)
    assert confirm(client, path).status_code == 303
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.CONFIRMED


def test_tampered_and_wrong_purpose_links_change_nothing(app, session, client):
    sign_up(client, "ann@example.ie")
    links = links_in(mails(session)[0])
    confirm_token = links["subscribe/confirm"].rsplit("/", 1)[1]
    unsubscribe_token = links["unsubscribe"].rsplit("/", 1)[1]
    with app.test_request_context():
        other_secret = tokens.unsubscribe_serializer()
        other_secret.secret_keys = [b"another shop's secret"]
        forged = other_secret.dumps(1)

    refused = [
        f"/subscribe/confirm/{confirm_token[:-2]}xx",
        f"/subscribe/confirm/{unsubscribe_token}",  # an unsubscribe token where a confirmation is expected
        "/subscribe/confirm/garbage",
        f"/unsubscribe/{confirm_token}",
        f"/unsubscribe/{forged}",
        f"/unsubscribe/{unsubscribe_token}x",
        "/unsubscribe/" + "A" * 2000,
    ]
    for path in refused:
        answers = [client.get(path), client.post(path, data={"List-Unsubscribe": "One-Click"})]
        if path.startswith("/subscribe/confirm/"):  # pressing the button with a bad link, with the page's token
            answers.append(client.post(path, data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))}))
        for response in answers:
            assert response.status_code == 400, (path, response.status_code)
            assert "Nothing was changed" in response.get_data(as_text=True)
        assert "This link cannot be used" in answers[0].get_data(as_text=True)
        assert "This link cannot be used" in answers[-1].get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.PENDING


def test_a_link_for_a_subscriber_that_is_gone_is_a_404(app, session, client):
    with app.test_request_context():
        confirm_path = f"/subscribe/confirm/{tokens.confirmation_token(404)}"
        unsubscribe_path = f"/unsubscribe/{tokens.unsubscribe_token(404)}"
    assert client.get(confirm_path).status_code == 404
    assert client.get(unsubscribe_path).status_code == 404
    assert client.post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"}).status_code == 404


def test_unsubscribing_from_the_page_takes_a_button_press(app, session, client):
    sign_up(client, "ann@example.ie")
    links = links_in(mails(session)[0])
    confirm(client, links["subscribe/confirm"])

    page = client.get(links["unsubscribe"])
    assert page.status_code == 200 and "Unsubscribe" in page.get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.CONFIRMED

    response = client.post(links["unsubscribe"], data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 303
    assert "You are unsubscribed" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize("as_multipart", [False, True])
def test_a_one_click_unsubscribe_needs_no_form_token(app, session, client, as_multipart):
    sign_up(client, "ann@example.ie")
    links = links_in(mails(session)[0])
    confirm(client, links["subscribe/confirm"])

    # A mail provider's server: no cookies, no CSRF token, just RFC 8058's body.
    provider = app.test_client()
    data = {"List-Unsubscribe": "One-Click"}
    response = provider.post(
        links["unsubscribe"], data=data, content_type="multipart/form-data" if as_multipart else None
    )

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.UNSUBSCRIBED
    assert provider.post(links["unsubscribe"], data=data).status_code == 200  # twice is harmless


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "Yes"}, {"unsubscribe": "1"}])
def test_any_other_post_to_the_unsubscribe_link_still_needs_the_form_token(app, session, client, body):
    sign_up(client, "ann@example.ie")
    path = links_in(mails(session)[0])["unsubscribe"]

    response = app.test_client().post(path, data=body)

    assert response.status_code == 400
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.PENDING


def test_other_forms_still_need_their_token(app, client):
    assert client.post("/subscribe", data={"email": "ann@example.ie"}).status_code == 400
    assert client.post("/login", data={"email": "ann@example.ie", "password": "x" * 12}).status_code == 400


def test_an_unsubscribed_address_is_confirmed_again_only_from_a_fresh_sign_up(app, session, client, clock):
    sign_up(client, "ann@example.ie")
    links = links_in(mails(session)[0])
    confirm(client, links["subscribe/confirm"])
    app.test_client().post(links["unsubscribe"], data={"List-Unsubscribe": "One-Click"})

    old_confirmation = client.get(links["subscribe/confirm"])
    assert "has unsubscribed" in old_confirmation.get_data(as_text=True)
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.UNSUBSCRIBED

    clock.advance(hours=1)
    sign_up(client, "ann@example.ie")
    first, fresh = mails(session)
    confirm(client, links_in(fresh)["subscribe/confirm"])
    assert subscriber(session, "ann@example.ie").status == SubscriberStatus.CONFIRMED


def test_garbage_posts_are_answered_400_not_with_a_traceback(app, session, client):
    token = csrf_from(client.get("/").get_data(as_text=True))
    answers = [
        client.post("/subscribe", data={"csrf_token": token}),
        client.post("/subscribe", data={"csrf_token": token, "email": ["a@example.ie", "b@example.ie"]}),
        client.post("/subscribe", data=b"\xff\xfe", content_type="application/octet-stream"),
        client.post("/subscribe", json={"email": "ann@example.ie"}),
    ]
    assert [answer.status_code for answer in answers] == [400, 303, 400, 400]


class TestRateLimits:
    @pytest.fixture
    def app_overrides(self) -> dict:
        return {"SHOP_URL": SHOP_URL, "SUBSCRIBE_LIMIT_PER_EMAIL": "3/hour", "SUBSCRIBE_LIMIT_PER_IP": "5/hour"}

    def test_one_address_is_limited(self, app, session, client):
        statuses = [sign_up(client, "ann@example.ie").status_code for _ in range(4)]

        assert statuses == [303, 303, 303, 429]
        refused = sign_up(client, " ANN@example.ie ")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "Too many sign-ups" in refused.get_data(as_text=True)
        assert sign_up(client, "bob@example.ie").status_code == 303

    def test_one_client_is_limited_whatever_the_address(self, app, session, client):
        statuses = [sign_up(client, f"reader{number}@example.ie").status_code for number in range(6)]

        assert statuses == [303] * 5 + [429]
        assert len(mails(session)) == 5
        response = client.post(
            "/subscribe",
            data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True)), "email": "x@example.ie"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert response.status_code == 303, "another client's address has an allowance of its own"


def test_the_confirmation_lifetime_follows_the_setting(app, session, client, clock):
    app.config["SUBSCRIBE_CONFIRM_HOURS"] = 1
    sign_up(client, "ann@example.ie")
    path = links_in(mails(session)[0])["subscribe/confirm"]
    assert "1 hours" in mails(session)[0].body or "1 hour" in mails(session)[0].body
    clock.advance(hours=1, seconds=1)
    assert client.get(path).status_code == 400
    clock.advance(seconds=-2)
    assert client.get(path).status_code == 200
