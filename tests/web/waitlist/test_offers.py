"""Freed numbers of a sold-out run offered to the next waiter, through the real pages, mail and payment.

Holds are cancelled on the hold page, payments made on the Stripe simulator's hosted page, refunds sent to the
simulator from the producer's refund page, and the sweeper run as the worker runs it; offer mail is delivered to a
real SMTP server in this process (tasks run inline, so it arrives before the request that caused it answers).
Every test runs on SQLite and PostgreSQL and ends with the auditor finding nothing wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from flask import current_app, g, has_app_context
from sqlalchemy import func, select

from storefront import tasks
from storefront.checkout import flows
from storefront.domain.accounts import create_producer
from storefront.models import Hold, OfferStatus, Order, Release, Unit, WaitlistEntry, WaitlistOffer
from storefront.payments import gateway
from storefront.unit_of_work import write_transaction
from tests.conftest import ShopClient
from tests.domain.test_waitlist import confirmed_waiter
from tests.factories import make_release
from tests.integration.helpers import assert_audit_clean
from tests.integration.smtp import SHOP_URL, Delivery, SmtpServer
from tests.payments import hold_webhooks, hold_with_checkout, pay, sim_post
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in
from tests.web.producer.test_refunds import post_refund, unit_id
from tests.web.shop.test_reserve import release_page_token, reserve

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
OFFER_MINUTES = 60  # WAITLIST_OFFER_MINUTES, the default
HOLD_MINUTES = 10  # HOLD_MINUTES, the default: a claimed offer's time on the payment page
OFFER_LINK = re.compile(rf"{re.escape(SHOP_URL)}(/waitlist/offers/[A-Za-z0-9_\-]+)")
PAYMENT_PAGE = re.compile(r"/pay/(cs_test_\w+)$")
UNSUBSCRIBE_LINK = re.compile(rf"{re.escape(SHOP_URL)}(/waitlist/unsubscribe/[A-Za-z0-9_.\-]+)")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


@pytest.fixture(autouse=True)
def on_sale(clock, stripe_sim):
    clock.set(ON_SALE + timedelta(minutes=1))
    hold_webhooks(stripe_sim)  # the success page asks Stripe itself, as when the webhook is late


# --- Helpers -------------------------------------------------------------------------------------------------------


class Browser(ShopClient):
    """One visitor's browser, with cookies of its own, among several in one test.

    The test's app context outlives each request, and with it `g`, where Flask-WTF keeps the CSRF token it made for
    the session of the last page it rendered: forgotten before each request, each browser's forms carry its own.
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            g.pop(current_app.config["WTF_CSRF_FIELD_NAME"], None)
        return super().open(*args, **kwargs)


def browser(app) -> Browser:
    """Another visitor."""
    return Browser(app, app.response_class, use_cookies=True)


@pytest.fixture
def client(app) -> Browser:
    return browser(app)


def paid_order(app, session, clock, stripe_sim, release_id: int, email: str, number: int) -> Order:
    """An order for one number, reserved and paid on the simulator, confirmed as the success page confirms it."""
    hold = hold_with_checkout(app, release_id, email, clock(), number=number)
    pay(stripe_sim, hold.payment_session_id)
    result = flows.complete_checkout(session, gateway(), gateway().retrieve_session(hold.payment_session_id), clock())
    return session.get(Order, result.order.id)


def sold_out_run(app, session, clock, stripe_sim, *, units: int = 2, limit: int = 1) -> tuple[Release, Hold]:
    """A run of `units`: No. 1 held by Carl, on the payment page; every other number sold to Dora and others."""
    release = make_release(session, on_sale_at=ON_SALE, units=units, limit=limit)
    session.commit()
    carls = hold_with_checkout(app, release.id, "carl@example.com", clock(), number=1)
    for number in range(2, units + 1):
        paid_order(app, session, clock, stripe_sim, release.id, f"buyer{number}@example.com", number)
    return session.get(Release, release.id), carls


def offer_mails(smtp_server: SmtpServer, email: str, count: int = 1) -> list[Delivery]:
    """The offer mails `email` received (there should be `count` by now)."""
    received = smtp_server.mails_to(email, count=count, timeout=2)
    return [mail for mail in received if "is yours to claim" in subject(mail)]


def subject(mail: Delivery) -> str:
    # A long Subject is folded onto its own line; Python's parser keeps the fold's space, mail programs do not.
    return mail.message["Subject"].strip()


def offer_path(mail: Delivery) -> str:
    """The personal claim link of an offer mail, as a path on the shop."""
    match = OFFER_LINK.search(mail.text)
    assert match, mail.text
    return match.group(1)


def offers_of(session, release_id: int) -> list[WaitlistOffer]:
    session.commit()
    query = select(WaitlistOffer).where(WaitlistOffer.release_id == release_id).order_by(WaitlistOffer.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def fresh(session, model, object_id: int):
    session.commit()
    return session.get(model, object_id, populate_existing=True)


def offer_page_token(client, path: str) -> str:
    """Open the offer page (while its buttons show) and keep its form's token, as a tab left open would."""
    page = client.get(path)
    assert page.status_code == 200
    return csrf_from(page.get_data(as_text=True))


def answer_offer(client, path: str, answer: str, token: str | None = None):
    """Press one of the offer page's buttons ("claim" or "decline"), on the page as it is now or on one opened
    earlier (`token`)."""
    return client.post(f"{path}/{answer}", data={"csrf_token": token or offer_page_token(client, path)})


def cancel_on_hold_page(client, hold: Hold):
    page = client.get(f"/holds/{hold.token}")
    assert page.status_code == 200
    return client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_from(page.get_data(as_text=True))})


def pay_on_hosted_page(stripe_sim, payment_url: str, email: str) -> str:
    """Pay on the simulator's checkout page as a buyer would; returns the shop path it sends them back to."""
    paid = requests.post(
        payment_url,
        data={
            "action": "pay",
            "email": email,
            "name": "Waiting Person",
            "line1": "1 Quay St",
            "city": "Cork",
            "postal_code": "T12",
            "country": "IE",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert paid.status_code == 303, paid.text
    back = urlsplit(paid.headers["Location"])
    return f"{back.path}?{back.query}"


def stock(client, release: Release) -> dict:
    data = client.get(f"/api/releases/{release.slug}").get_json()
    return {name: data[name] for name in ("available", "held", "sold")}


def sweep(session) -> None:
    """What the worker runs every minute (a periodic task: once per minute of the shop's clock)."""
    session.commit()
    tasks.sweep_holds.call_local()


def hold_count(session) -> int:
    session.commit()
    return session.scalar(select(func.count()).select_from(Hold))


def unit_status(session, release_id: int, number: int) -> tuple[str, int | None]:
    session.commit()
    unit = session.scalar(
        select(Unit)
        .where(Unit.release_id == release_id, Unit.number == number)
        .execution_options(populate_existing=True)
    )
    return unit.status, unit.hold_id


# --- The chain: cancel → offer → lapse → next waiter → claim → pay → order ----------------------------------------


def test_a_cancelled_number_goes_down_the_line_until_a_waiter_buys_it(
    app, session, client, clock, stripe_sim, smtp_server
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    assert "You are 2nd in line" in client.get(f"/releases/{release.slug}?waiter={bob.token}").get_data(as_text=True)

    # Carl changes his mind on the hold page: No. 1 comes free, and goes to Ann, not back on sale.
    response = cancel_on_hold_page(browser(app), carls_hold)
    assert response.status_code == 303

    (ann_mail,) = offer_mails(smtp_server, "ann@example.com")
    assert subject(ann_mail) == (f"No. 1 of {release.title} is yours to claim until Wed 1 July 2026, 12:01 IST")
    assert "No. 1 of 2 is held for you until Wed 1 July 2026, 12:01 IST, at €89.00." in ann_mail.text
    assert ann_mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ann_path = offer_path(ann_mail)
    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number, offer.status) == (ann.id, 1, OfferStatus.LIVE)
    assert offer.expires_at == clock() + timedelta(minutes=OFFER_MINUTES)
    assert stock(client, release) == {"available": 0, "held": 1, "sold": 1}  # the public sees it held
    public = reserve(client, release, release_page_token(client, release), email="quick@example.com")
    assert public.status_code == 409 and "Sold out" in public.get_data(as_text=True)
    assert "You are 1st in line" in client.get(f"/releases/{release.slug}?waiter={bob.token}").get_data(as_text=True)
    ann_browser = browser(app)
    ann_page = ann_browser.get(ann_path)
    assert ann_page.status_code == 200
    assert "No. 1 of 2 is yours to claim" in ann_page.get_data(as_text=True)
    assert ann_page.headers["Cache-Control"] == "private, no-store"
    ann_token = csrf_from(ann_page.get_data(as_text=True))

    # Ann does not answer: an hour later the sweeper ends her offer and No. 1 goes to Bob.
    clock.advance(minutes=OFFER_MINUTES + 1)
    sweep(session)

    (bob_mail,) = offer_mails(smtp_server, "bob@example.com")
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.LAPSED
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)
    lapsed = answer_offer(ann_browser, ann_path, "claim", ann_token)  # the page she left open
    assert lapsed.status_code == 409
    assert "This offer ran out of time; the number has passed to the next person in line." in lapsed.get_data(
        as_text=True
    )
    assert stock(client, release) == {"available": 0, "held": 1, "sold": 1}

    # Bob claims it: straight to the payment page; pressing again returns to the same one.
    bob_browser, bob_path = browser(app), offer_path(bob_mail)
    bob_token = offer_page_token(bob_browser, bob_path)
    claimed = answer_offer(bob_browser, bob_path, "claim", bob_token)
    assert claimed.status_code == 303
    payment_url = claimed.headers["Location"]
    assert PAYMENT_PAGE.search(payment_url) and payment_url.startswith(stripe_sim.url)
    again = answer_offer(bob_browser, bob_path, "claim", bob_token)  # a double click, or the back button
    assert (again.status_code, again.headers["Location"]) == (303, payment_url)
    assert f'href="{payment_url}" data-hold-continue' in bob_browser.get("/").get_data(as_text=True)  # his banner
    claimed_page = bob_browser.get(bob_path).get_data(as_text=True)
    assert "You claimed No. 1" in claimed_page and "Continue to payment" in claimed_page
    second_thoughts = answer_offer(bob_browser, bob_path, "decline", bob_token)  # the page from before the claim
    assert second_thoughts.status_code == 409
    assert "You claimed this number and went to pay for it." in second_thoughts.get_data(as_text=True)
    hold = fresh(session, Hold, second.hold_id)
    assert (hold.buyer_email, hold.payment_url) == ("bob@example.com", payment_url)
    assert hold.expires_at == clock() + timedelta(minutes=HOLD_MINUTES)
    assert offers_of(session, release.id)[1].status == OfferStatus.CLAIMED

    success = pay_on_hosted_page(stripe_sim, payment_url, "bob@example.com")
    page = bob_browser.get(success)

    assert page.status_code == 200
    assert "No. 1 of 2 is yours" in page.get_data(as_text=True)
    order = session.scalar(select(Order).where(Order.email == "bob@example.com"))
    assert [unit.number for unit in order.units] == [1]
    assert offers_of(session, release.id)[1].status == OfferStatus.PURCHASED
    assert stock(client, release) == {"available": 0, "held": 0, "sold": 2}
    assert "You bought it" in bob_browser.get(bob_path).get_data(as_text=True)
    confirmation = smtp_server.mails_to("bob@example.com", count=2)[-1]
    assert "No. 1" in confirmation.text and "order" in subject(confirmation).lower()
    assert_audit_clean(session, clock())


def test_a_unit_the_producer_returns_to_sale_is_offered_to_the_first_waiter(
    app, session, client, clock, stripe_sim, smtp_server
):
    release = make_release(session, on_sale_at=ON_SALE, units=2, limit=2)
    session.commit()
    order = paid_order(app, session, clock, stripe_sim, release.id, "dora@example.com", 1)
    paid_order(app, session, clock, stripe_sim, release.id, "dora@example.com", 2)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    producer = browser(app)
    sign_in(producer, PRODUCER_EMAIL)

    # The bottle came back corked; the producer refunds it and puts it back on sale. Stripe refunds at once.
    first = unit_id(session, release.id, 1)
    response = post_refund(producer, order.id, refund=[str(first)], return_to_sale=[str(first)])
    assert response.status_code == 303

    (mail,) = offer_mails(smtp_server, "ann@example.com")
    assert "No. 1 of 2 is held for you" in mail.text
    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.number, offer.status) == (ann.id, 1, OfferStatus.LIVE)
    assert unit_status(session, release.id, 1) == ("held", offer.hold_id)
    assert stock(client, release) == {"available": 0, "held": 1, "sold": 1}
    public = reserve(client, release, release_page_token(client, release), email="quick@example.com")
    assert public.status_code == 409

    ann_browser = browser(app)
    claimed = answer_offer(ann_browser, offer_path(mail), "claim")
    assert claimed.status_code == 303
    page = ann_browser.get(pay_on_hosted_page(stripe_sim, claimed.headers["Location"], "ann@example.com"))
    assert "No. 1 of 2 is yours" in page.get_data(as_text=True)
    assert offers_of(session, release.id)[0].status == OfferStatus.PURCHASED
    assert unit_status(session, release.id, 1)[0] == "sold"
    assert_audit_clean(session, clock())


# --- Answers ---------------------------------------------------------------------------------------------------------


def test_declining_passes_the_number_on_and_an_ended_offer_cannot_be_claimed(
    app, session, client, clock, stripe_sim, smtp_server
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    cancel_on_hold_page(client, carls_hold)
    ann_path = offer_path(offer_mails(smtp_server, "ann@example.com")[0])
    token = offer_page_token(client, ann_path)

    declined = answer_offer(client, ann_path, "decline", token)

    assert declined.status_code == 200
    assert "You passed No. 1 on to the next person in line. Thank you." in declined.get_data(as_text=True)
    (bob_mail,) = offer_mails(smtp_server, "bob@example.com")
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.DECLINED
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)

    # Ann changes her mind: too late, and nothing moves.
    holds_before = hold_count(session)
    for answer in ("claim", "decline"):
        refused = answer_offer(client, ann_path, answer, token)
        assert refused.status_code == 409
        assert "This offer was declined; the number has passed to the next person in line." in refused.get_data(
            as_text=True
        )
    assert hold_count(session) == holds_before
    assert unit_status(session, release.id, 1) == ("held", second.hold_id)
    assert offers_of(session, release.id)[1].status == OfferStatus.LIVE

    # Bob leaves every list from his offer mail's one-click link: his offer is withdrawn, and with nobody left in
    # line, No. 1 goes back on public sale.
    unsubscribe_path = UNSUBSCRIBE_LINK.search(bob_mail.text).group(1)
    left = client.post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200
    assert offers_of(session, release.id)[1].status == OfferStatus.WITHDRAWN
    withdrawn = answer_offer(client, offer_path(bob_mail), "claim", token)
    assert withdrawn.status_code == 409
    assert "This offer was withdrawn when the address left the waitlist." in withdrawn.get_data(as_text=True)
    assert stock(client, release) == {"available": 1, "held": 0, "sold": 1}
    assert_audit_clean(session, clock())


def test_an_unknown_offer_link_is_not_found(app, session, client, clock, stripe_sim):
    page = client.get(f"/releases/{make_release(session, on_sale_at=ON_SALE).slug}")
    token = csrf_from(page.get_data(as_text=True))

    assert client.get("/waitlist/offers/no-such-offer").status_code == 404
    for answer in ("claim", "decline"):
        assert client.post(f"/waitlist/offers/no-such-offer/{answer}", data={"csrf_token": token}).status_code == 404
    assert hold_count(session) == 0


def test_an_answer_without_its_form_token_changes_nothing(app, session, client, clock, stripe_sim, smtp_server):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    confirmed_waiter(session, release, "ann@example.com", clock())
    cancel_on_hold_page(client, carls_hold)
    ann_path = offer_path(offer_mails(smtp_server, "ann@example.com")[0])

    for answer in ("claim", "decline"):
        response = client.post(f"{ann_path}/{answer}", data={})
        assert response.status_code == 400
    assert offers_of(session, release.id)[0].status == OfferStatus.LIVE
    assert fresh(session, Hold, offers_of(session, release.id)[0].hold_id).payment_session_id is None
    assert_audit_clean(session, clock())


def test_a_waiter_who_has_the_limit_by_now_is_refused_the_claim(app, session, client, clock, stripe_sim, smtp_server):
    release = make_release(session, on_sale_at=ON_SALE, units=3, limit=2)
    session.commit()
    paid_order(app, session, clock, stripe_sim, release.id, "ann@example.com", 3)  # Ann bought one in the drop
    carls_hold = hold_with_checkout(app, release.id, "carl@example.com", clock(), number=1)
    paid_order(app, session, clock, stripe_sim, release.id, "dora@example.com", 2)
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    cancel_on_hold_page(client, carls_hold)
    ann_path = offer_path(offer_mails(smtp_server, "ann@example.com")[0])
    # Meanwhile the producer lowers the limit to one per customer.
    with write_transaction(session):
        session.get(Release, release.id).per_customer_limit = 1

    refused = answer_offer(client, ann_path, "claim")

    assert refused.status_code == 409
    assert "You already have the limit of 1 from this release." in refused.get_data(as_text=True)
    (offer,) = offers_of(session, release.id)
    assert offer.status == OfferStatus.LIVE
    assert fresh(session, Hold, offer.hold_id).payment_session_id is None  # no payment page was opened
    # She can still pass it on, and Bob gets it.
    assert answer_offer(client, ann_path, "decline").status_code == 200
    assert offers_of(session, release.id)[1].entry_id == bob.id
    assert_audit_clean(session, clock())


def test_a_claimed_number_whose_payment_runs_out_passes_to_the_next_waiter(
    app, session, client, clock, stripe_sim, smtp_server
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    cancel_on_hold_page(client, carls_hold)
    ann_path = offer_path(offer_mails(smtp_server, "ann@example.com")[0])
    claimed = answer_offer(client, ann_path, "claim")
    assert claimed.status_code == 303
    ann_session = PAYMENT_PAGE.search(claimed.headers["Location"]).group(1)

    # Ann leaves the payment page open and never pays: once her time is up, the sweeper closes it.
    clock.advance(minutes=HOLD_MINUTES + 1)
    sweep(session)

    assert gateway().retrieve_session(ann_session).status == "expired"
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.LAPSED
    assert (second.entry_id, second.number, second.status) == (bob.id, 1, OfferStatus.LIVE)
    (bob_mail,) = offer_mails(smtp_server, "bob@example.com")
    assert "No. 1 of 2 is held for you" in bob_mail.text
    paying_late = requests.post(f"{stripe_sim.url}/_sim/checkout/sessions/{ann_session}/pay", json={}, timeout=10)
    assert paying_late.status_code == 409  # she cannot pay for a number that is Bob's now
    page = client.get(ann_path).get_data(as_text=True)
    assert "This offer has ended" in page
    assert_audit_clean(session, clock())


def test_leaving_the_payment_page_of_a_claimed_offer_passes_the_number_on(
    app, session, client, clock, stripe_sim, smtp_server
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    confirmed_waiter(session, release, "ann@example.com", clock())
    bob = confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    cancel_on_hold_page(client, carls_hold)
    claimed = answer_offer(client, offer_path(offer_mails(smtp_server, "ann@example.com")[0]), "claim")
    hold = session.scalar(select(Hold).where(Hold.payment_url == claimed.headers["Location"]))

    # Stripe's back link leads to the hold's page; Ann confirms there she is not buying.
    page = client.get(f"/holds/{hold.token}")
    response = client.post(f"/holds/{hold.token}/cancel", data={"csrf_token": csrf_from(page.get_data(as_text=True))})

    assert response.status_code == 303
    assert "You passed your number on" in client.get(f"/holds/{hold.token}").get_data(as_text=True)
    first, second = offers_of(session, release.id)
    assert first.status == OfferStatus.DECLINED
    assert (second.entry_id, second.status) == (bob.id, OfferStatus.LIVE)
    assert offer_mails(smtp_server, "bob@example.com")
    assert_audit_clean(session, clock())


def test_each_waiter_gets_one_offer_per_run(app, session, client, clock, stripe_sim, smtp_server):
    release = make_release(session, on_sale_at=ON_SALE, units=3, limit=1)
    session.commit()
    first_hold = hold_with_checkout(app, release.id, "carl@example.com", clock(), number=1)
    second_hold = hold_with_checkout(app, release.id, "erin@example.com", clock(), number=2)
    paid_order(app, session, clock, stripe_sim, release.id, "dora@example.com", 3)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    cancel_on_hold_page(client, first_hold)
    answer_offer(client, offer_path(offer_mails(smtp_server, "ann@example.com")[0]), "decline")

    cancel_on_hold_page(client, second_hold)  # another number comes free: Ann has had her turn

    assert len(offer_mails(smtp_server, "ann@example.com", count=2)) == 1
    (offer,) = offers_of(session, release.id)
    assert (offer.entry_id, offer.status) == (ann.id, OfferStatus.DECLINED)
    assert stock(client, release) == {"available": 2, "held": 0, "sold": 1}
    assert (
        fresh(session, WaitlistEntry, ann.id).status == "confirmed"
    )  # still on the list: the next batches' early access
    assert_audit_clean(session, clock())


def test_a_payment_page_that_cannot_open_leaves_the_offer_with_its_waiter(
    app, session, client, clock, stripe_sim, smtp_server
):
    release, carls_hold = sold_out_run(app, session, clock, stripe_sim)
    ann = confirmed_waiter(session, release, "ann@example.com", clock())
    confirmed_waiter(session, release, "bob@example.com", clock() + timedelta(seconds=1))
    cancel_on_hold_page(client, carls_hold)
    ann_path = offer_path(offer_mails(smtp_server, "ann@example.com")[0])
    token = offer_page_token(client, ann_path)
    (offer,) = offers_of(session, release.id)
    offer_ends = offer.expires_at
    sim_post(
        stripe_sim, "/_sim/faults", {"method": "POST", "path": "/v1/checkout/sessions", "status": 500, "count": None}
    )

    failed = answer_offer(client, ann_path, "claim", token)

    assert failed.status_code == 503
    assert "The number is still held for you" in failed.get_data(as_text=True)
    (offer,) = offers_of(session, release.id)  # Bob got nothing: it is still Ann's turn
    assert (offer.entry_id, offer.status) == (ann.id, OfferStatus.LIVE)
    hold = fresh(session, Hold, offer.hold_id)
    assert (hold.status, hold.expires_at, hold.payment_session_id) == ("active", offer_ends, None)
    assert unit_status(session, release.id, 1) == ("held", offer.hold_id)

    requests.delete(f"{stripe_sim.url}/_sim/faults", timeout=5).raise_for_status()
    claimed = answer_offer(client, ann_path, "claim", token)
    assert claimed.status_code == 303
    assert offers_of(session, release.id)[0].status == OfferStatus.CLAIMED
    assert_audit_clean(session, clock())
