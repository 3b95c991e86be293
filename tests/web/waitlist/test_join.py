"""Joining a waitlist from a release or story page: double opt-in, no address enumeration, no open relay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storefront.models import WaitlistEntry, WaitlistStatus
from storefront.waitlist import tokens
from tests.factories import make_batch
from tests.integration.helpers import assert_audit_clean
from tests.web.producer.conftest import csrf_from
from tests.web.waitlist import (
    ON_SALE,
    SHOP_URL,
    entries_of,
    entry_of,
    join,
    join_and_confirm,
    join_form_on,
    links_in,
    mails,
    sold_out_release,
    upcoming_release,
)


@pytest.fixture
def app_overrides() -> dict:
    return {"SHOP_URL": SHOP_URL}


def entry_count(session) -> int:
    session.commit()
    return session.scalar(select(func.count()).select_from(WaitlistEntry))


def home_page_token(client) -> str:
    return csrf_from(client.get("/").get_data(as_text=True))


# --- Joining from each page ----------------------------------------------------------------------------------------


def test_joining_from_a_sold_out_release_page_mails_a_signed_confirmation(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    action, _ = join_form_on(client, page_path)
    assert action == f"/waitlist/releases/{release.slug}"
    assert "Join the waitlist" in client.get(page_path).get_data(as_text=True)

    response = join(client, page_path, "Ann@Example.ie", name="Ann")

    assert response.status_code == 303
    assert response.headers["Location"] == "/waitlist/check-your-inbox"
    inbox_page = client.get(response.headers["Location"])
    assert inbox_page.status_code == 200 and "Check your inbox" in inbox_page.get_data(as_text=True)
    entry = entry_of(session, "ann@example.ie")
    assert (entry.status, entry.release_id, entry.email, entry.name) == (
        WaitlistStatus.PENDING,
        release.id,
        "Ann@Example.ie",
        "Ann",
    )
    (message,) = mails(session)
    assert message.recipient == "Ann@Example.ie"
    assert message.subject == f"Please confirm your place on the waitlist: {release.title}"
    assert message.body.startswith("Hello Ann,")
    assert "within 48 hours" in message.body
    links = links_in(message)
    assert set(links) == {"confirm", "unsubscribe"}
    with app.test_request_context():  # signed with the shop's key, naming this entry (and no address)
        assert tokens.read_confirmation_token(links["confirm"].rsplit("/", 1)[1]) == entry.id
        assert tokens.read_unsubscribe_token(links["unsubscribe"].rsplit("/", 1)[1]) == entry.id
    assert message.headers == {
        "List-Unsubscribe": f"<{SHOP_URL}{links['unsubscribe']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert_audit_clean(session, clock())


def test_joining_from_an_upcoming_release_page(app, session, client, clock):
    release = upcoming_release(session)
    page_path = f"/releases/{release.slug}"
    assert "Hear first, and wait for freed numbers" in client.get(page_path).get_data(as_text=True)

    response = join(client, page_path, "ann@example.ie")

    assert (response.status_code, response.headers["Location"]) == (303, "/waitlist/check-your-inbox")
    entry = entry_of(session, "ann@example.ie")
    assert (entry.status, entry.release_id) == (WaitlistStatus.PENDING, release.id)
    (message,) = mails(session)
    assert not message.body.startswith("Hello"), "no name given, no greeting by name"
    assert set(links_in(message)) == {"confirm", "unsubscribe"}
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_joining_from_a_story_page_waits_for_the_products_next_batches(app, session, client, clock):
    batch = make_batch(session)
    session.commit()
    page_path = f"/batches/{batch.slug}"
    action, _ = join_form_on(client, page_path)
    assert action == f"/waitlist/products/{batch.product.slug}"

    response = join(client, page_path, "ann@example.ie")

    assert (response.status_code, response.headers["Location"]) == (303, "/waitlist/check-your-inbox")
    entry = entry_of(session, "ann@example.ie")
    assert (entry.status, entry.product_id, entry.release_id) == (WaitlistStatus.PENDING, batch.product.id, None)
    (message,) = mails(session)
    assert message.subject == f"Please confirm your place on the waitlist: {batch.product.name}"
    assert f"the next batches of {batch.product.name}" in message.body
    assert set(links_in(message)) == {"confirm", "unsubscribe"}
    assert message.headers["List-Unsubscribe"] == f"<{SHOP_URL}{links_in(message)['unsubscribe']}>"


def test_a_release_on_public_sale_and_a_closed_one_show_no_join_form(app, session, client, clock):
    on_sale = upcoming_release(session)
    closed = upcoming_release(session, off_sale_at=ON_SALE + timedelta(hours=1))
    clock.set(ON_SALE + timedelta(minutes=1))
    assert 'class="waitlist__form"' not in client.get(f"/releases/{on_sale.slug}").get_data(as_text=True)
    clock.set(ON_SALE + timedelta(hours=2))
    assert 'class="waitlist__form"' not in client.get(f"/releases/{closed.slug}").get_data(as_text=True)


# --- Joining again: the same answer, whatever the address's state ----------------------------------------------------


def test_new_pending_confirmed_and_unsubscribed_addresses_get_identical_answers(app, session, client, clock):
    """Nobody can learn from the shop's answer whether an address is on the list, or in which state."""
    release = upcoming_release(session)
    page_path = f"/releases/{release.slug}"
    join_and_confirm(client, session, page_path, "confirmed@example.ie")
    join(client, page_path, "pending@example.ie")
    join_and_confirm(client, session, page_path, "left@example.ie")
    unsubscribe_path = links_in(mails(session)[-1])["unsubscribe"]
    assert app.test_client().post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    mailed_before = len(mails(session))
    clock.advance(minutes=20)  # past the resend window of the pending address's first mail

    addresses = ["fresh@example.ie", "pending@example.ie", "confirmed@example.ie", "left@example.ie"]
    answers = [join(client, page_path, email) for email in addresses]
    pages = [client.get(answer.headers["Location"]) for answer in answers]

    assert {(answer.status_code, answer.headers["Location"]) for answer in answers} == {
        (303, "/waitlist/check-your-inbox")
    }
    assert len({answer.get_data() for answer in answers}) == 1
    assert len({(page.status_code, page.get_data()) for page in pages}) == 1
    # Only the mail differs, which only the mailbox's owner sees: the confirmed address is not mailed again; the
    # one that left asked afresh, so it must confirm afresh.
    mailed = [message.recipient for message in mails(session)[mailed_before:]]
    assert mailed == ["fresh@example.ie", "pending@example.ie", "left@example.ie"]
    assert [entry_of(session, email).status for email in addresses] == [
        WaitlistStatus.PENDING,
        WaitlistStatus.PENDING,
        WaitlistStatus.CONFIRMED,
        WaitlistStatus.PENDING,
    ]
    assert entry_count(session) == 4, "one entry per address and list, however often it joins"


def test_a_pending_address_is_mailed_again_only_after_the_resend_window(app, session, client, clock):
    release = upcoming_release(session)
    page_path = f"/releases/{release.slug}"
    join(client, page_path, "ann@example.ie")
    clock.advance(minutes=14)
    assert join(client, page_path, " ANN@example.ie ").status_code == 303
    assert len(mails(session)) == 1

    clock.advance(minutes=1)
    assert join(client, page_path, "ann@example.ie").status_code == 303
    first, second = mails(session)
    assert entry_of(session, "ann@example.ie").confirmation_sent_at == clock()
    assert links_in(first)["unsubscribe"] == links_in(second)["unsubscribe"], "still the one entry"


def test_joining_a_release_and_its_products_list_are_two_places(app, session, client, clock):
    release = upcoming_release(session)
    join(client, f"/releases/{release.slug}", "ann@example.ie")
    join(client, f"/batches/{release.batch.slug}", "ann@example.ie")

    release_entry, product_entry = entries_of(session, "ann@example.ie")
    assert (release_entry.release_id, product_entry.release_id) == (release.id, None)
    assert len(mails(session)) == 2


# --- Bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["not an address", "ann@", "", "ann@example", "аnn@example.ie", "x" * 400 + "@example.ie"]
)
def test_an_invalid_address_shows_the_form_again_with_a_message_and_stores_nothing(app, session, client, clock, email):
    release = upcoming_release(session)

    response = join(client, f"/releases/{release.slug}", email)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'class="field__error" id="email-error"' in page and 'name="email"' in page
    assert "Nothing was changed" in page
    assert entry_count(session) == 0
    assert mails(session) == []


@pytest.mark.parametrize(
    "name",
    [
        "Visit https://cheap.example",
        "www.cheap.example",
        "cheap.example/pills",
        "Claim at cheap.example",
        "write to boss@example.com",
        "<b>Ann</b>",
        "Ann\nBcc: everyone@example.com",
        "x" * 61,
    ],
)
def test_a_name_that_is_a_message_or_a_link_is_refused(app, session, client, name):
    """The name is the only text of a visitor's that reaches a mail: the form must not relay a message."""
    release = upcoming_release(session)

    response = join(client, f"/releases/{release.slug}", "victim@example.ie", name=name)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'class="field__error" id="name-error"' in page
    assert entry_count(session) == 0
    assert mails(session) == []


@pytest.mark.parametrize("name", ["Ann", "Seán Ó Briain", "Mary-Kate O'Neill", "J. R. Hartley", "  Ann  "])
def test_an_ordinary_name_greets_the_reader(app, session, client, name):
    release = upcoming_release(session)

    assert join(client, f"/releases/{release.slug}", "ann@example.ie", name=name).status_code == 303

    (message,) = mails(session)
    assert message.body.startswith(f"Hello {name.strip()},")


def test_a_closed_release_cannot_be_waited_for(app, session, client, clock):
    release = upcoming_release(session, off_sale_at=ON_SALE + timedelta(hours=1))
    clock.set(ON_SALE + timedelta(hours=2))

    response = client.post(
        f"/waitlist/releases/{release.slug}", data={"csrf_token": home_page_token(client), "email": "ann@example.ie"}
    )

    assert response.status_code == 400
    assert "This release has closed" in response.get_data(as_text=True)
    assert entry_count(session) == 0
    assert mails(session) == []


def test_an_unknown_release_or_product_is_a_404(app, session, client):
    token = home_page_token(client)
    for path in ["/waitlist/releases/no-such-release", "/waitlist/products/no-such-product"]:
        response = client.post(path, data={"csrf_token": token, "email": "ann@example.ie"})
        assert response.status_code == 404, path
    assert entry_count(session) == 0


def test_a_join_without_its_form_token_is_refused(app, session, client, clock):
    """A bot that posts straight to the form's address, without the page's CSRF token, gets 400."""
    release = upcoming_release(session)
    batch_slug = release.batch.slug
    product_slug = release.batch.product.slug

    answers = {
        path: client.post(path, data={"email": "ann@example.ie"})
        for path in [f"/waitlist/releases/{release.slug}", f"/waitlist/products/{product_slug}"]
    }
    forged = client.post(f"/waitlist/releases/{release.slug}", data={"csrf_token": "forged", "email": "ann@example.ie"})

    for response in [*answers.values(), forged]:
        assert response.status_code == 400
        assert "Nothing was changed" in response.get_data(as_text=True)
    assert f'href="/releases/{release.slug}"' in answers[f"/waitlist/releases/{release.slug}"].get_data(as_text=True)
    assert entry_count(session) == 0
    assert mails(session) == []
    assert join(client, f"/batches/{batch_slug}", "ann@example.ie").status_code == 303, "with the token it works"


def test_garbage_posts_are_answered_400_not_with_a_traceback(app, session, client):
    release = upcoming_release(session)
    path = f"/waitlist/releases/{release.slug}"
    token = home_page_token(client)
    answers = [
        client.post(path, data={"csrf_token": token}),
        client.post(path, data={"csrf_token": token, "email": ["a@example.ie", "b@example.ie"]}),
        client.post(path, data=b"\xff\xfe", content_type="application/octet-stream"),
        client.post(path, json={"email": "ann@example.ie"}),
    ]
    assert [answer.status_code for answer in answers] == [400, 303, 400, 400]
    assert client.get(path).status_code == 405


class TestRateLimits:
    @pytest.fixture
    def app_overrides(self) -> dict:
        return {"SHOP_URL": SHOP_URL, "WAITLIST_LIMIT_PER_EMAIL": "3/hour", "WAITLIST_LIMIT_PER_IP": "5/hour"}

    def test_one_address_is_limited_however_it_is_typed_and_whichever_list(self, app, session, client, clock):
        release = upcoming_release(session)
        paths = [f"/releases/{release.slug}", f"/batches/{release.batch.slug}"]
        statuses = [join(client, paths[number % 2], "ann@example.ie").status_code for number in range(3)]

        refused = [join(client, path, " ANN@Example.ie ") for path in paths]

        assert statuses == [303, 303, 303]
        for response in refused:
            assert response.status_code == 429
            assert int(response.headers["Retry-After"]) > 0
            assert "Nothing was changed" in response.get_data(as_text=True)
        assert len(mails(session)) == 2, "one confirmation per list"
        assert join(client, paths[0], "bob@example.ie").status_code == 303, "another address is not held up"

    def test_one_client_is_limited_whatever_the_address_and_list(self, app, session, client, clock):
        release = upcoming_release(session)
        paths = [f"/releases/{release.slug}", f"/batches/{release.batch.slug}"]
        statuses = [join(client, paths[number % 2], f"reader{number}@example.ie").status_code for number in range(6)]

        assert statuses == [303] * 5 + [429]
        assert len(mails(session)) == 5
        action, token = join_form_on(client, paths[0])
        response = client.post(
            action,
            data={"csrf_token": token, "email": "x@example.ie"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert response.status_code == 303, "another client's address has an allowance of its own"


def test_a_confirmed_waiter_sees_their_place_instead_of_the_form(app, session, client, clock):
    release = sold_out_release(session, clock)
    answer = join_and_confirm(client, session, f"/releases/{release.slug}", "ann@example.ie")

    page = client.get(answer.headers["Location"]).get_data(as_text=True)

    assert "You are 1st in line" in page
    assert 'class="waitlist__form"' not in page
    assert 'class="waitlist__form"' in client.get(f"/releases/{release.slug}").get_data(as_text=True)
    assert_audit_clean(session, clock())
