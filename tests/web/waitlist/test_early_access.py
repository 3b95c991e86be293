"""Early access to a product's next release: the announcement brings each waiter a personal link that reserves
before everyone else, from the release's early_access_at until its on_sale_at, for the address it was sent to.

The producer announces through the workspace; mail is delivered to a real SMTP server in this process; payments
are made on the Stripe simulator's hosted page. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain.accounts import create_producer
from storefront.domain.subscribers import confirm_subscription, subscribe
from storefront.models import Batch, Hold, Order, Product, Release, WaitlistEntry
from storefront.unit_of_work import write_transaction
from tests.domain.test_waitlist import confirmed_waiter, confirmed_waiter_of_product, join
from tests.factories import make_release
from tests.integration.helpers import assert_audit_clean
from tests.integration.smtp import SHOP_URL, Delivery, SmtpServer
from tests.payments import hold_webhooks
from tests.web.producer.conftest import PASSWORD, PRODUCER_EMAIL, csrf_from, sign_in
from tests.web.shop.test_reserve import release_page_token, reserve
from tests.web.waitlist.test_offers import Browser, browser, pay_on_hosted_page, subject, sweep

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)  # the test clock's start
EARLY_ACCESS = datetime(2026, 7, 2, 9, 0, tzinfo=UTC)  # Thu 2 July, 10:00 in Dublin
ON_SALE = datetime(2026, 7, 2, 11, 0, tzinfo=UTC)  # Thu 2 July, 12:00 in Dublin
EARLY_LINK = re.compile(rf"{re.escape(SHOP_URL)}(/waitlist/early/[A-Za-z0-9_.\-]+)")
WAITLIST_LINK = re.compile(rf"{re.escape(SHOP_URL)}(/waitlist/(?:confirm|unsubscribe)/[A-Za-z0-9_.\-]+)")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def app_overrides(smtp_server: SmtpServer) -> dict:
    return {"MAIL_URL": smtp_server.url, "SHOP_URL": SHOP_URL}


@pytest.fixture
def client(app) -> Browser:
    return browser(app)


@dataclass(frozen=True)
class Drop:
    """The product's sold-out first run, and its next release with early access, not yet announced."""

    product_slug: str
    first_run: Release
    next_release: Release


@pytest.fixture
def drop(app, session, clock, stripe_sim) -> Drop:
    clock.set(NOW)
    hold_webhooks(stripe_sim)  # the success page asks Stripe itself
    first_run = make_release(session, on_sale_at=datetime(2026, 6, 1, 10, 0, tzinfo=UTC), units=5)
    product = first_run.batch.product
    next_release = make_release(session, batch=next_batch(session, product), on_sale_at=ON_SALE, units=10, limit=2)
    with write_transaction(session):
        # Set by the producer in the release form.
        session.get(Release, next_release.id).early_access_at = EARLY_ACCESS
    return Drop(product.slug, session.get(Release, first_run.id), session.get(Release, next_release.id))


def next_batch(session, product: Product) -> Batch:
    batch = Batch(
        product=product,
        code="B-2026-09",
        slug=f"{product.slug}-b-2026-09",
        title="The September batch",
        produced_on=date(2026, 6, 1),
        summary="Five years in sherry casks.",
        story_markdown="The second batch.",
    )
    session.add(batch)
    session.flush()
    return batch


def add_subscriber(session, email: str, now: datetime) -> None:
    with write_transaction(session):
        subscriber = subscribe(session, email, now, resend_after=timedelta(minutes=15)).subscriber
        confirm_subscription(session, subscriber.id, now)


def announce(app, session, clock, release: Release):
    """The producer presses "Send" on the release's announcement page."""
    with write_transaction(session):
        create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    producer = browser(app)
    sign_in(producer, PRODUCER_EMAIL)
    path = f"/producer/releases/{release.id}/announce"
    page = producer.get(path)
    assert page.status_code == 200
    response = producer.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


def early_link(mail: Delivery) -> str:
    match = EARLY_LINK.search(mail.text)
    assert match, mail.text
    return match.group(1)


def holds_of(session) -> list[Hold]:
    session.commit()
    return list(session.scalars(select(Hold).order_by(Hold.id).execution_options(populate_existing=True)))


def reserve_early(client, path: str, token: str | None = None, **fields):
    """Send the early-access page's form (with the token of a page opened earlier, or of the page as it is now)."""
    if token is None:
        token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "quantity": "1", **fields})


def tampered(path: str) -> str:
    """The link with one character of its signature changed, as a mangled copy or a guess would have it."""
    last = path[-1]
    return path[:-1] + ("A" if last != "A" else "B")


# --- The announcement --------------------------------------------------------------------------------------------


def test_the_announcement_brings_each_waiter_one_mail_with_a_personal_link(app, session, clock, smtp_server, drop):
    first_run = drop.first_run
    confirmed_waiter_of_product(session, first_run, "ann@example.com", clock())
    confirmed_waiter(session, first_run, "ann@example.com", clock())  # on two of the product's lists: one mail
    confirmed_waiter(session, first_run, "bob@example.com", clock())
    confirmed_waiter_of_product(session, first_run, "carl@example.com", clock())
    add_subscriber(session, "carl@example.com", clock())  # a subscriber too: one mail, the waiter's
    add_subscriber(session, "dora@example.com", clock())
    join(session, first_run, "erin@example.com", clock())  # never confirmed
    other_product = make_release(session, on_sale_at=ON_SALE, units=3)
    confirmed_waiter_of_product(session, other_product, "fay@example.com", clock())

    announce(app, session, clock, drop.next_release)

    release = drop.next_release
    for waiter in ("ann@example.com", "bob@example.com", "carl@example.com"):
        (mail,) = smtp_server.mails_to(waiter)
        assert subject(mail) == (
            f"Early access for you: {release.batch.title}, {release.title} (on sale Thu 2 July 2026, 12:00 IST)"
        )
        assert "you can reserve before everyone else, from\nThu 2 July 2026, 10:00 IST" in mail.text
        assert early_link(mail).startswith("/waitlist/early/")
        assert "/waitlist/unsubscribe/" in mail.message["List-Unsubscribe"]
    links = {early_link(smtp_server.mails_to(waiter)[0]) for waiter in ("ann@example.com", "bob@example.com")}
    assert len(links) == 2  # each their own
    (plain,) = smtp_server.mails_to("dora@example.com")
    assert subject(plain).startswith("New release: ")
    assert "/waitlist/early/" not in plain.text
    assert f"{SHOP_URL}/releases/{release.slug}" in plain.text
    for nobody in ("erin@example.com", "fay@example.com"):
        assert nobody not in {address for mail in smtp_server.received() for address in mail.recipients}
    assert_audit_clean(session, clock())


# --- The link before, during and after its window -----------------------------------------------------------------


def test_the_link_reserves_only_in_its_window_and_for_the_address_it_was_sent_to(
    app, session, client, clock, stripe_sim, smtp_server, drop
):
    release = drop.next_release
    confirmed_waiter_of_product(session, drop.first_run, "ann@example.com", clock())
    confirmed_waiter(session, drop.first_run, "bob@example.com", clock())
    announce(app, session, clock, release)
    ann_link = early_link(smtp_server.mails_to("ann@example.com")[0])
    bob_link = early_link(smtp_server.mails_to("bob@example.com")[0])
    ann = browser(app)

    # The day before: not yet, and a form sent anyway (a token from another page of the shop) reserves nothing.
    too_soon = ann.get(ann_link)
    assert too_soon.status_code == 409
    assert "Early access has not started yet." in too_soon.get_data(as_text=True)
    assert reserve_early(ann, ann_link, release_page_token(ann, release)).status_code == 409
    assert holds_of(session) == []

    # Early access opens: the links reserve, the public form does not.
    clock.set(EARLY_ACCESS + timedelta(minutes=1))
    page = ann.get(ann_link)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Early access: " + release.title in text
    assert "Reserving for the address this link was sent to" in text
    assert "ann@example.com" not in text  # whoever holds the link is not shown whose address it is
    assert page.headers["Cache-Control"] == "private, no-store"
    public = reserve(client, release, release_page_token(client, release), email="quick@example.com")
    assert public.status_code == 409 and "Not on sale yet" in public.get_data(as_text=True)

    # Ann forwards her link to a friend, who reserves with it: the hold is Ann's, within Ann's limit.
    friend = browser(app)
    forwarded = reserve_early(friend, ann_link, quantity="2")
    assert forwarded.status_code == 303 and forwarded.headers["Location"].startswith(f"{stripe_sim.url}/pay/")
    (hold,) = holds_of(session)
    assert (hold.buyer_email, hold.quantity, hold.payment_url) == ("ann@example.com", 2, forwarded.headers["Location"])
    assert "You hold No. 1–2" in friend.get("/").get_data(as_text=True)  # the banner of the browser that reserved
    over = reserve_early(ann, ann_link, quantity="1")
    assert over.status_code == 409
    assert "You already have the limit of 2 from this release." in over.get_data(as_text=True)
    assert reserve_early(ann, ann_link, quantity="3").status_code == 400  # more than the limit: refused as asked
    assert len(holds_of(session)) == 1

    # Bob reserves with his own link and pays: the number is his.
    bob = browser(app)
    reserved = reserve_early(bob, bob_link, quantity="1")
    assert reserved.status_code == 303
    success = bob.get(pay_on_hosted_page(stripe_sim, reserved.headers["Location"], "bob@example.com"))
    assert success.status_code == 200 and "No. 3 of 10 is yours" in success.get_data(as_text=True)
    session.commit()
    (order,) = session.scalars(select(Order)).all()
    assert (order.email, order.release_id) == ("bob@example.com", release.id)

    # On sale to everyone: the link's page sends them to the release page.
    clock.set(ON_SALE + timedelta(minutes=1))
    after = ann.get(ann_link)
    assert after.status_code == 200
    text = after.get_data(as_text=True)
    assert "Early access has ended" in text
    assert f'href="/releases/{release.slug}"' in text
    assert 'name="quantity"' not in text
    sweep(session)  # Ann's friend never paid: the worker closes the payment page and frees the numbers
    assert [hold.status for hold in holds_of(session)] == ["released", "converted"]
    assert_audit_clean(session, clock())


def test_a_tampered_link_and_the_link_of_an_address_that_left_are_refused(
    app, session, client, clock, smtp_server, drop
):
    confirmed_waiter_of_product(session, drop.first_run, "ann@example.com", clock())
    announce(app, session, clock, drop.next_release)
    (mail,) = smtp_server.mails_to("ann@example.com")
    link = early_link(mail)
    clock.set(EARLY_ACCESS + timedelta(minutes=1))
    token = csrf_from(client.get(link).get_data(as_text=True))

    broken = client.get(tampered(link))
    assert broken.status_code == 400
    assert "This early-access link is not valid" in broken.get_data(as_text=True)
    assert reserve_early(client, tampered(link), token).status_code == 400

    # Ann leaves every waitlist from the same mail's one-click link: her early-access link stops working.
    unsubscribe_path = re.search(rf"{re.escape(SHOP_URL)}(/waitlist/unsubscribe/\S+)", mail.text).group(1)
    assert client.post(unsubscribe_path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    gone = client.get(link)
    assert gone.status_code == 409
    assert "This address has left the waitlist" in gone.get_data(as_text=True)
    assert reserve_early(client, link, token).status_code == 409
    assert holds_of(session) == []
    assert_audit_clean(session, clock())


def test_a_waiter_who_confirms_after_the_announcement_gets_their_link_then(
    app, session, client, clock, smtp_server, drop
):
    add_subscriber(session, "dora@example.com", clock())
    announce(app, session, clock, drop.next_release)
    story_page = client.get(f"/batches/{drop.first_run.batch.slug}").get_data(as_text=True)
    assert f'action="/waitlist/products/{drop.product_slug}"' in story_page

    joined = client.post(
        f"/waitlist/products/{drop.product_slug}",
        data={"csrf_token": csrf_from(story_page), "email": "gabe@example.com", "name": "Gabe"},
    )
    assert joined.status_code == 303
    (confirmation,) = smtp_server.mails_to("gabe@example.com")
    confirm_path = next(path for path in WAITLIST_LINK.findall(confirmation.text) if "/confirm/" in path)
    confirm_page = client.get(confirm_path)
    confirmed = client.post(confirm_path, data={"csrf_token": csrf_from(confirm_page.get_data(as_text=True))})
    assert confirmed.status_code == 303

    _confirmation, mail = smtp_server.mails_to("gabe@example.com", count=2)
    release = drop.next_release
    assert subject(mail) == f"Your early access to {release.title} opens Thu 2 July 2026, 10:00 IST"
    assert mail.text.startswith("Hello Gabe,")
    link = early_link(mail)
    clock.set(EARLY_ACCESS + timedelta(minutes=1))
    reserved = reserve_early(browser(app), link)
    assert reserved.status_code == 303
    (hold,) = holds_of(session)
    assert (hold.buyer_email, hold.release_id, hold.quantity) == ("gabe@example.com", release.id, 1)
    session.commit()
    assert session.scalar(select(func.count()).select_from(WaitlistEntry)) == 1
    assert_audit_clean(session, clock())
