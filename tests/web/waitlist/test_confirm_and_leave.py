"""Confirming a waitlist place from its mail (a button, not a link), the place in line, and leaving every list."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from storefront.audience import tokens as audience_tokens
from storefront.domain import waitlist
from storefront.domain.accounts import create_producer
from storefront.domain.activity import SHOP
from storefront.models import Hold, HoldStatus, OfferStatus, WaitlistEntry, WaitlistOffer, WaitlistStatus
from storefront.unit_of_work import write_transaction
from storefront.waitlist import tokens
from tests.factories import make_batch, make_release
from tests.integration.helpers import assert_audit_clean, release_committed, status_counts
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in
from tests.web.waitlist import (
    ON_SALE,
    SHOP_URL,
    entries_of,
    entry_of,
    join,
    join_and_confirm,
    links_in,
    mails,
    mails_to,
    press_button,
    sold_out_release,
    upcoming_release,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def app_overrides() -> dict:
    return {"SHOP_URL": SHOP_URL}


def joined(client, session, page_path: str, email: str) -> dict[str, str]:
    """Join from a page; the confirm and unsubscribe paths of the mail that came."""
    assert join(client, page_path, email).status_code == 303
    return links_in(mails_to(session, email)[-1])


def place_on(client, location: str) -> str:
    """The release page a confirmation redirected to, as its reader sees it."""
    page = client.get(location)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "private, no-store", "one waiter's place is never cached"
    return page.get_data(as_text=True)


def path_of(url: str) -> str:
    return urlsplit(url).path


def free_one_number(session, release_id: int, now) -> None:
    """A public buyer lets their hold go, so one number of the sold-out run comes free."""
    session.commit()
    hold = session.scalar(
        select(Hold)
        .where(Hold.release_id == release_id, Hold.status == HoldStatus.ACTIVE, Hold.for_offer.is_(False))
        .order_by(Hold.id)
        .limit(1)
    )
    release_committed(session, hold, now)


def offers_of(session, release_id: int) -> list[WaitlistOffer]:
    session.commit()
    query = select(WaitlistOffer).where(WaitlistOffer.release_id == release_id).order_by(WaitlistOffer.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def gone(session, entry_id: int) -> None:
    """The shop no longer has the entry (deleted behind the link's back)."""
    session.commit()
    with write_transaction(session):
        session.delete(session.get(WaitlistEntry, entry_id))


# --- Confirming ----------------------------------------------------------------------------------------------------


def test_opening_the_link_shows_a_button_and_changes_nothing(app, session, client, clock):
    """Mail scanners open every link of a mail before its reader does: opening must not confirm."""
    release = sold_out_release(session, clock)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")

    for _ in range(2):
        page = client.get(links["confirm"])
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "Confirm your place" in text and "Yes, keep my place" in text and release.title in text

    entry = entry_of(session, "ann@example.ie")
    assert (entry.status, entry.confirmed_at) == (WaitlistStatus.PENDING, None)


def test_pressing_the_button_confirms_and_shows_the_place_in_line(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"

    first = join_and_confirm(client, session, page_path, "ann@example.ie")
    clock.advance(seconds=30)
    second = join_and_confirm(client, session, page_path, "bob@example.ie")

    ann, bob = entry_of(session, "ann@example.ie"), entry_of(session, "bob@example.ie")
    assert first.status_code == 303
    assert first.headers["Location"] == f"/releases/{release.slug}?waiter={ann.token}#waitlist"
    assert second.headers["Location"] == f"/releases/{release.slug}?waiter={bob.token}#waitlist"
    assert (ann.status, ann.confirmed_at) == (WaitlistStatus.CONFIRMED, clock() - timedelta(seconds=30))
    ann_page, bob_page = place_on(client, first.headers["Location"]), place_on(client, second.headers["Location"])
    assert "You are 1st in line" in ann_page and "ann@example.ie" in ann_page
    assert "You are 2nd in line" in bob_page and "ann@example.ie" not in bob_page
    assert "waitlist--place" not in client.get(f"/releases/{release.slug}").get_data(as_text=True), "nobody's"
    assert_audit_clean(session, clock())


def test_the_line_counts_from_confirmation_not_from_joining(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    ann_links = joined(client, session, page_path, "ann@example.ie")
    clock.advance(seconds=10)
    bob_links = joined(client, session, page_path, "bob@example.ie")

    clock.advance(seconds=10)
    bob_place = press_button(client, bob_links["confirm"]).headers["Location"]
    clock.advance(seconds=10)
    ann_place = press_button(client, ann_links["confirm"]).headers["Location"]

    assert "You are 1st in line" in place_on(client, bob_place)
    assert "You are 2nd in line" in place_on(client, ann_place)


def test_a_pending_waiter_gets_no_offer(app, session, client, clock):
    """Only confirmed entries count: a freed number skips an address that never confirmed."""
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    joined(client, session, page_path, "ann@example.ie")
    clock.advance(seconds=10)
    join_and_confirm(client, session, page_path, "bob@example.ie")

    free_one_number(session, release.id, clock())

    (offer,) = offers_of(session, release.id)
    assert offer.entry_id == entry_of(session, "bob@example.ie").id
    assert [message.subject for message in mails_to(session, "ann@example.ie")] == [
        f"Please confirm your place on the waitlist: {release.title}"
    ]
    assert mails_to(session, "bob@example.ie")[-1].subject.startswith(f"No. {offer.number} of {release.title}")
    assert_audit_clean(session, clock())


def test_confirming_while_a_freed_number_is_on_public_sale_offers_it_at_once(app, session, client, clock):
    release = sold_out_release(session, clock)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    free_one_number(session, release.id, clock())  # nobody confirmed yet: the number goes back on sale
    assert status_counts(session, release.id)["available"] == 1

    place = press_button(client, links["confirm"]).headers["Location"]

    (offer,) = offers_of(session, release.id)
    assert offer.entry_id == entry_of(session, "ann@example.ie").id
    assert f"No. {offer.number} is offered to you" in place_on(client, place)
    assert mails_to(session, "ann@example.ie")[-1].subject.startswith(f"No. {offer.number} of {release.title}")
    assert status_counts(session, release.id)["available"] == 0
    assert_audit_clean(session, clock())


def test_a_place_link_shows_nothing_on_another_releases_page(app, session, client, clock):
    release = sold_out_release(session, clock)
    other = upcoming_release(session, on_sale_at=ON_SALE + timedelta(days=7))
    place = join_and_confirm(client, session, f"/releases/{release.slug}", "ann@example.ie").headers["Location"]
    token = entry_of(session, "ann@example.ie").token
    assert place.endswith(f"?waiter={token}#waitlist")

    for path in [f"/releases/{other.slug}?waiter={token}", f"/releases/{release.slug}?waiter=not-a-token"]:
        page = client.get(path).get_data(as_text=True)
        assert "in line</h2>" not in page and "ann@example.ie" not in page


def test_confirming_twice_is_harmless(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    links = joined(client, session, page_path, "ann@example.ie")
    first = press_button(client, links["confirm"])
    confirmed_at = entry_of(session, "ann@example.ie").confirmed_at
    clock.advance(seconds=30)
    join_and_confirm(client, session, page_path, "bob@example.ie")
    mailed = len(mails(session))

    clock.advance(seconds=30)
    again = client.post(links["confirm"], data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})

    assert (again.status_code, again.headers["Location"]) == (303, first.headers["Location"])
    assert entry_of(session, "ann@example.ie").confirmed_at == confirmed_at, "confirming again keeps the place"
    assert "You are 1st in line" in place_on(client, again.headers["Location"])
    confirmed_page = client.get(links["confirm"]).get_data(as_text=True)
    assert "You are on the waitlist" in confirmed_page and "Yes, keep my place" not in confirmed_page
    assert len(mails(session)) == mailed


def test_confirming_a_products_list_shows_that_it_is_done(app, session, client, clock):
    batch = make_batch(session)
    session.commit()
    links = joined(client, session, f"/batches/{batch.slug}", "ann@example.ie")

    response = press_button(client, links["confirm"])

    assert (response.status_code, response.headers["Location"]) == (303, links["confirm"])
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You are on the waitlist" in page and f"a new batch of {batch.product.name}" in page
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.CONFIRMED


def test_a_confirmation_without_its_form_token_changes_nothing(app, session, client, clock):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")

    for data in [{}, {"csrf_token": "forged"}]:
        response = app.test_client().post(links["confirm"], data=data)
        assert response.status_code == 400
        assert "Nothing was changed" in response.get_data(as_text=True)
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.PENDING


def test_tampered_and_wrong_purpose_links_change_nothing(app, session, client, clock):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    entry_id = entry_of(session, "ann@example.ie").id
    confirm_token = links["confirm"].rsplit("/", 1)[1]
    unsubscribe_token = links["unsubscribe"].rsplit("/", 1)[1]
    with app.test_request_context():
        newsletter_confirmation = audience_tokens.confirmation_token(entry_id)
        newsletter_unsubscribe = audience_tokens.unsubscribe_token(entry_id)
        other_shop = tokens.confirmation_serializer()
        other_shop.secret_keys = [b"another shop's secret"]
        forged = other_shop.dumps(entry_id)
    page_token = csrf_from(client.get("/").get_data(as_text=True))

    for path in [
        f"/waitlist/confirm/{confirm_token[:-2]}xx",
        f"/waitlist/confirm/{unsubscribe_token}",  # the other link of the same mail
        f"/waitlist/confirm/{newsletter_confirmation}",  # the newsletter's link for the same id
        f"/waitlist/confirm/{forged}",
        "/waitlist/confirm/garbage",
        "/waitlist/confirm/" + "A" * 2000,
    ]:
        for response in [client.get(path), client.post(path, data={"csrf_token": page_token})]:
            assert response.status_code == 400, (path, response.status_code)
            text = response.get_data(as_text=True)
            assert "This link cannot be used" in text and "Nothing was changed" in text
    for path in [
        f"/waitlist/unsubscribe/{unsubscribe_token[:-2]}xx",
        f"/waitlist/unsubscribe/{confirm_token}",
        f"/waitlist/unsubscribe/{newsletter_unsubscribe}",
        "/waitlist/unsubscribe/" + "A" * 2000,
    ]:
        answers = [client.get(path), app.test_client().post(path, data=ONE_CLICK)]
        answers.append(client.post(path, data={"csrf_token": page_token}))
        for response in answers:
            assert response.status_code == 400, (path, response.status_code)
            assert "This link cannot be used" in response.get_data(as_text=True)
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.PENDING


def test_the_confirmation_link_expires_by_the_shops_clock(app, session, client, clock):
    release = upcoming_release(session, on_sale_at=ON_SALE + timedelta(days=7))
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    page_token = csrf_from(client.get(links["confirm"]).get_data(as_text=True))

    clock.advance(hours=48, seconds=1)
    answers = [client.get(links["confirm"]), client.post(links["confirm"], data={"csrf_token": page_token})]

    for response in answers:
        assert response.status_code == 400
        text = response.get_data(as_text=True)
        assert "This confirmation link has expired" in text and "join the waitlist again" in text
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.PENDING
    # Joining again sends a fresh link that works.
    assert join(client, f"/releases/{release.slug}", "ann@example.ie").status_code == 303
    assert press_button(client, links_in(mails(session)[-1])["confirm"]).status_code == 303
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.CONFIRMED


def test_a_link_just_inside_its_lifetime_still_works(app, session, client, clock):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    clock.advance(hours=47, minutes=59)
    assert press_button(client, links["confirm"]).status_code == 303
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.CONFIRMED


def test_the_confirmation_lifetime_follows_the_setting(app, session, client, clock):
    app.config["WAITLIST_CONFIRM_HOURS"] = 2
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    assert "within 2 hours" in mails(session)[0].body
    clock.advance(hours=2, seconds=1)
    assert "links work for 2 hours" in client.get(links["confirm"]).get_data(as_text=True)
    clock.advance(seconds=-2)
    assert client.get(links["confirm"]).status_code == 200


@pytest.mark.parametrize("ending", ["unsubscribed", "removed by the producer"])
def test_a_link_for_an_address_that_has_left_since_is_refused(app, session, client, clock, ending):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    page_token = csrf_from(client.get(links["confirm"]).get_data(as_text=True))
    if ending == "unsubscribed":
        assert app.test_client().post(links["unsubscribe"], data=ONE_CLICK).status_code == 200
    else:
        entry_id = entry_of(session, "ann@example.ie").id
        with write_transaction(session):
            waitlist.remove_entry(session, entry_id, clock(), SHOP)

    shown = client.get(links["confirm"])
    pressed = client.post(links["confirm"], data={"csrf_token": page_token})

    assert shown.status_code == 409
    assert "This address has left the waitlist" in shown.get_data(as_text=True)
    assert "Yes, keep my place" not in shown.get_data(as_text=True)
    assert pressed.status_code == 409
    assert "has left the list since that link was sent" in pressed.get_data(as_text=True)
    assert entry_of(session, "ann@example.ie").status != WaitlistStatus.CONFIRMED


def test_a_link_for_an_entry_that_is_gone_is_a_404(app, session, client, clock):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    page_token = csrf_from(client.get(links["confirm"]).get_data(as_text=True))
    gone(session, entry_of(session, "ann@example.ie").id)

    answers = [
        client.get(links["confirm"]),
        client.post(links["confirm"], data={"csrf_token": page_token}),
        client.get(links["unsubscribe"]),
        app.test_client().post(links["unsubscribe"], data=ONE_CLICK),
    ]

    for response in answers:
        assert response.status_code == 404
        assert "no longer has" in response.get_data(as_text=True)


# --- Leaving -------------------------------------------------------------------------------------------------------


def test_leaving_from_the_page_takes_a_button_press_and_ends_every_list(app, session, client, clock):
    release = upcoming_release(session)
    other_product = make_batch(session)
    session.commit()
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    press_button(client, links["confirm"])
    joined(client, session, f"/batches/{other_product.slug}", "ANN@Example.ie")
    join_and_confirm(client, session, f"/releases/{release.slug}", "bob@example.ie")

    page = client.get(links["unsubscribe"])
    assert page.status_code == 200
    assert "Leave the waitlists" in page.get_data(as_text=True)
    assert [entry.status for entry in entries_of(session, "ann@example.ie")] == [
        WaitlistStatus.CONFIRMED,
        WaitlistStatus.PENDING,
    ], "opening the page changes nothing"

    response = client.post(links["unsubscribe"], data={"csrf_token": csrf_from(page.get_data(as_text=True))})

    assert (response.status_code, response.headers["Location"]) == (303, links["unsubscribe"])
    assert "You are off the waitlists" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert {entry.status for entry in entries_of(session, "ann@example.ie")} == {WaitlistStatus.UNSUBSCRIBED}
    assert entry_of(session, "bob@example.ie").status == WaitlistStatus.CONFIRMED


@pytest.mark.parametrize("as_multipart", [False, True])
def test_a_one_click_unsubscribe_needs_no_form_token(app, session, client, clock, as_multipart):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")
    press_button(client, links["confirm"])

    # A mail provider's server (RFC 8058): no cookies, no CSRF token, just the one-click body.
    provider = app.test_client()
    response = provider.post(
        links["unsubscribe"], data=ONE_CLICK, content_type="multipart/form-data" if as_multipart else None
    )

    assert response.status_code == 200
    assert "You are off the waitlists" in response.get_data(as_text=True)
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.UNSUBSCRIBED
    assert provider.post(links["unsubscribe"], data=ONE_CLICK).status_code == 200, "twice is harmless"


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "Yes"}, {"unsubscribe": "1"}, {"csrf_token": "forged"}])
def test_any_other_post_to_the_unsubscribe_link_still_needs_the_form_token(app, session, client, clock, body):
    release = upcoming_release(session)
    links = joined(client, session, f"/releases/{release.slug}", "ann@example.ie")

    response = app.test_client().post(links["unsubscribe"], data=body)

    assert response.status_code == 400
    assert "Nothing was changed" in response.get_data(as_text=True)
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.PENDING


def test_a_waiter_who_left_gets_no_offer_and_no_announcement(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    later = make_release(session, batch=release.batch, on_sale_at=ON_SALE + timedelta(days=14))
    later_id = later.id
    session.commit()
    join_and_confirm(client, session, page_path, "ann@example.ie")
    clock.advance(seconds=10)
    join_and_confirm(client, session, page_path, "bob@example.ie")
    unsubscribe_path = links_in(mails_to(session, "ann@example.ie")[0])["unsubscribe"]
    assert app.test_client().post(unsubscribe_path, data=ONE_CLICK).status_code == 200
    ann_mail_count = len(mails_to(session, "ann@example.ie"))

    # A number comes free: it goes to bob, ann's place has gone.
    free_one_number(session, release.id, clock())
    (offer,) = offers_of(session, release.id)
    assert offer.entry_id == entry_of(session, "bob@example.ie").id
    assert mails_to(session, "bob@example.ie")[-1].subject.startswith(f"No. {offer.number} of ")

    # The producer announces the product's next release: the waiters still on a list hear of it, ann does not.
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    sign_in(client, PRODUCER_EMAIL)  # in the same browser: signing in starts a fresh session
    announce_path = f"/producer/releases/{later_id}/announce"
    token = csrf_from(client.get(announce_path).get_data(as_text=True))
    assert client.post(announce_path, data={"csrf_token": token}).status_code == 303
    assert mails_to(session, "bob@example.ie")[-1].subject.startswith("New release")

    assert len(mails_to(session, "ann@example.ie")) == ann_mail_count
    assert_audit_clean(session, clock())


def test_leaving_with_a_live_offer_passes_the_number_to_the_next_waiter(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    ann_place = join_and_confirm(client, session, page_path, "ann@example.ie").headers["Location"]
    clock.advance(seconds=10)
    bob_place = join_and_confirm(client, session, page_path, "bob@example.ie").headers["Location"]
    free_one_number(session, release.id, clock())
    (ann_offer,) = offers_of(session, release.id)
    offer_mail = mails_to(session, "ann@example.ie")[-1]
    assert offer_mail.subject.startswith(f"No. {ann_offer.number} of ")
    assert f"No. {ann_offer.number} is offered to you" in place_on(client, ann_place)
    assert "You are 1st in line" in place_on(client, bob_place)

    clock.advance(minutes=5)
    one_click = path_of(offer_mail.headers["List-Unsubscribe"].strip("<>"))
    assert app.test_client().post(one_click, data=ONE_CLICK).status_code == 200

    withdrawn, bob_offer = offers_of(session, release.id)
    assert (withdrawn.id, withdrawn.status) == (ann_offer.id, OfferStatus.WITHDRAWN)
    assert session.get(Hold, withdrawn.hold_id).status != HoldStatus.ACTIVE
    assert (bob_offer.entry_id, bob_offer.number, bob_offer.status) == (
        entry_of(session, "bob@example.ie").id,
        ann_offer.number,
        OfferStatus.LIVE,
    )
    assert mails_to(session, "bob@example.ie")[-1].subject.startswith(f"No. {ann_offer.number} of ")
    assert f"No. {ann_offer.number} is offered to you" in place_on(client, bob_place)
    assert "held" in status_counts(session, release.id) and status_counts(session, release.id)["available"] == 0
    assert_audit_clean(session, clock())


def test_joining_again_after_leaving_needs_a_new_confirmation_and_goes_to_the_back(app, session, client, clock):
    release = sold_out_release(session, clock)
    page_path = f"/releases/{release.slug}"
    join_and_confirm(client, session, page_path, "ann@example.ie")
    ann_links = links_in(mails_to(session, "ann@example.ie")[0])
    clock.advance(seconds=10)
    join_and_confirm(client, session, page_path, "bob@example.ie")
    assert app.test_client().post(ann_links["unsubscribe"], data=ONE_CLICK).status_code == 200
    assert client.get(ann_links["unsubscribe"]).status_code == 200  # the page says so, no button
    assert "You are off the waitlists" in client.get(ann_links["unsubscribe"]).get_data(as_text=True)

    clock.advance(minutes=20)
    assert join(client, page_path, "ann@example.ie").status_code == 303
    assert entry_of(session, "ann@example.ie").status == WaitlistStatus.PENDING
    fresh = mails_to(session, "ann@example.ie")[-1]
    assert fresh.subject.startswith("Please confirm")
    place = press_button(client, links_in(fresh)["confirm"]).headers["Location"]

    assert "You are 2nd in line" in place_on(client, place)
    assert_audit_clean(session, clock())
