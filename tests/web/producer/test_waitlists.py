"""The producer's waitlists: every list's numbers, one list's entries and CSV, removing a waiter, pausing offers, and
the release form's early access. Through the test client (CSRF included) on SQLite and PostgreSQL.

The lists are built through the domain as buyers and waiters would build them: holds that sell a release out,
joins and confirmations, freed numbers offered to the next in line, an offer claimed and paid. Anything that moves
stock ends with the invariant auditor finding nothing wrong.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain import waitlist
from storefront.domain.buyers import buyer_key
from storefront.domain.subscribers import confirm_subscription, subscribe
from storefront.models import (
    ActivityEntry,
    Announcement,
    Hold,
    OfferStatus,
    OutboxMessage,
    Release,
    Unit,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release
from tests.integration.helpers import (
    assert_audit_clean,
    claim_committed,
    convert_committed,
    new_order_for,
    release_committed,
    status_counts,
)
from tests.web.producer.conftest import csrf_from

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # Wed 1 July 2026, 11:00 in Dublin (IST)
BOM = "\ufeff"
HYPERLINK = '=HYPERLINK("https://evil.example/steal","Click me")'


# --- Building lists through the domain -------------------------------------------------------------------------------


def join(session, product_id: int, release_id: int | None, email: str, now: datetime, name: str = "") -> int:
    with write_transaction(session):
        joined = waitlist.join_waitlist(
            session,
            product_id=product_id,
            release_id=release_id,
            email=email,
            buyer_key=buyer_key(email),
            name=name,
            now=now,
            resend_after=timedelta(minutes=15),
        )
        return joined.entry.id


def confirm(session, entry_id: int, now: datetime) -> None:
    with write_transaction(session):
        waitlist.confirm_entry(session, entry_id, now)


def offer_of(session, release_id: int, entry_id: int) -> WaitlistOffer | None:
    session.commit()
    return session.scalar(
        select(WaitlistOffer).where(WaitlistOffer.release_id == release_id, WaitlistOffer.entry_id == entry_id)
    )


@dataclass
class Scenario:
    release: Release
    product_id: int
    holds: list[Hold]
    entries: dict[str, int]


@pytest.fixture
def scenario(session, clock) -> Scenario:
    """A sold-out run of 3 with five on its list and two on its product's list.

    Ann, Bob and Cara confirmed in that order, Dan never confirmed, Eve confirmed and unsubscribed. Two holds ended:
    No. 1 went to Ann, who claimed and paid; No. 2 is offered to Bob. Cara is first of those still waiting.
    """
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, on_sale_at=ON_SALE, units=3, limit=2)
    session.commit()
    product_id = release.batch.product_id
    holds = [claim_committed(session, release.id, 1, f"buyer{n}@example.com", clock()) for n in range(3)]

    entries = {}
    for name in ("ann", "bob", "cara", "eve"):
        entries[name] = join(session, product_id, release.id, f"{name}@example.com", clock(), name.title())
        confirm(session, entries[name], clock())
        clock.advance(seconds=1)
    entries["dan"] = join(session, product_id, release.id, "dan@example.com", clock(), HYPERLINK)
    with write_transaction(session):
        waitlist.unsubscribe_address(session, entries["eve"], clock())
    entries["fay"] = join(session, product_id, None, "fay@example.com", clock(), "Fay")
    confirm(session, entries["fay"], clock())
    entries["gus"] = join(session, product_id, None, "gus@example.com", clock(), "Gus")

    release_committed(session, holds[0], clock())
    ann_offer = offer_of(session, release.id, entries["ann"])
    assert (ann_offer.number, ann_offer.status) == (1, OfferStatus.LIVE)
    with write_transaction(session):
        hold = waitlist.claim_offer(session, ann_offer.id, clock(), timedelta(minutes=10))
    convert_committed(session, hold, new_order_for(hold), clock())
    release_committed(session, holds[1], clock())
    assert offer_of(session, release.id, entries["bob"]).number == 2
    assert_audit_clean(session, clock())
    return Scenario(release, product_id, holds, entries)


# --- Reading pages ---------------------------------------------------------------------------------------------------


def page_of(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def row(page: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr {attribute}="{value}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(1)


def cell(html: str, attribute: str) -> str:
    match = re.search(rf"<(?:td|dd)[^>]* {attribute}>(.*?)</(?:td|dd)>", html, re.S)
    assert match, f"no cell {attribute}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip()


def counts(html: str) -> dict[str, str]:
    names = ("size", "confirmed", "pending", "offers-out", "offers-claimed", "purchased", "conversion")
    return {name: cell(html, f"data-{name}") for name in names}


def entry_order(page: str) -> list[str]:
    return re.findall(
        r'<tr data-entry="\d+" data-status="\w+">\s*<td[^>]*>[^<]*</td>\s*<th scope="row">([^<]+)</th>', page
    )


def token_of(client, path: str = "/logout") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def csv_rows(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text[len(BOM) :])))


def release_list(scenario: Scenario) -> str:
    return f"/producer/waitlists/releases/{scenario.release.id}"


# --- Who may come in -------------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/producer/waitlists"),
    ("GET", "/producer/waitlists/releases/{release}"),
    ("GET", "/producer/waitlists/releases/{release}.csv"),
    ("GET", "/producer/waitlists/products/{product}"),
    ("GET", "/producer/waitlists/products/{product}.csv"),
    ("POST", "/producer/waitlists/entries/{entry}/remove"),
    ("POST", "/producer/waitlists/releases/{release}/pause"),
    ("POST", "/producer/waitlists/releases/{release}/resume"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_signed_out_visitors_are_sent_to_sign_in_and_nothing_changes(session, client, clock, method, path):
    release = make_release(session)
    session.commit()
    entry = join(session, release.batch.product_id, release.id, "ann@example.com", clock())
    url = path.format(release=release.id, product=release.batch.product_id, entry=entry)
    # With a valid token: the CSRF check (which runs before the workspace's guard) is not what is tested here.
    data = {"csrf_token": csrf_from(client.get("/login").get_data(as_text=True))} if method == "POST" else None

    response = client.open(url, method=method, data=data)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    session.commit()
    assert session.get(WaitlistEntry, entry).status == WaitlistStatus.PENDING
    assert session.get(Release, release.id).waitlist_paused_at is None


@pytest.mark.parametrize(("method", "path"), ROUTES[1:])
def test_unknown_ids_are_404(producer_client, method, path):
    url = path.format(release=4242, product=4242, entry=4242)
    data = {"csrf_token": token_of(producer_client)} if method == "POST" else None
    assert producer_client.open(url, method=method, data=data).status_code == 404


@pytest.mark.parametrize("path", ["/releases/{release}/pause", "/releases/{release}/resume", "/entries/{entry}/remove"])
def test_a_post_without_its_csrf_token_is_400_and_changes_nothing(producer_client, session, scenario, path):
    url = "/producer/waitlists" + path.format(release=scenario.release.id, entry=scenario.entries["bob"])

    assert producer_client.post(url, data={}).status_code == 400

    session.commit()
    assert session.get(WaitlistEntry, scenario.entries["bob"]).status == WaitlistStatus.CONFIRMED
    assert session.get(Release, scenario.release.id).waitlist_paused_at is None
    assert (
        session.scalar(select(func.count()).select_from(ActivityEntry).where(ActivityEntry.action.like("waitlist.%")))
        == 0
    )


# --- The lists and their numbers -------------------------------------------------------------------------------------


def test_the_workspace_lists_every_waitlist_with_its_numbers(producer_client, scenario):
    page = page_of(producer_client, "/producer/")
    assert 'href="/producer/waitlists"' in page  # in the workspace's navigation

    page = page_of(producer_client, "/producer/waitlists")

    release_row = row(page, "data-waitlist", f"release-{scenario.release.id}")
    # On the list: Ann, Bob, Cara (confirmed) and Dan (to confirm); Eve left. Offers: Ann's bought, Bob's live.
    assert counts(release_row) == {
        "size": "4",
        "confirmed": "3",
        "pending": "1",
        "offers-out": "1",
        "offers-claimed": "1",
        "purchased": "1",
        "conversion": "50%",
    }
    assert f'href="{release_list(scenario)}"' in release_row
    product_row = row(page, "data-waitlist", f"product-{scenario.product_id}")
    assert counts(product_row) == {
        "size": "2",
        "confirmed": "1",
        "pending": "1",
        "offers-out": "–",
        "offers-claimed": "–",
        "purchased": "–",
        "conversion": "–",
    }
    assert f'href="/producer/waitlists/products/{scenario.product_id}"' in product_row
    # The product's own list comes first, then its releases'.
    assert page.index(f'data-waitlist="product-{scenario.product_id}"') < page.index('data-waitlist="release-')


def test_conversion_is_a_dash_before_any_offer(producer_client, session, clock):
    release = make_release(session, on_sale_at=ON_SALE + timedelta(days=1))
    session.commit()
    confirm(session, join(session, release.batch.product_id, release.id, "ann@example.com", clock()), clock())

    release_row = row(page_of(producer_client, "/producer/waitlists"), "data-waitlist", f"release-{release.id}")

    assert counts(release_row) == {
        "size": "1",
        "confirmed": "1",
        "pending": "0",
        "offers-out": "0",
        "offers-claimed": "0",
        "purchased": "0",
        "conversion": "–",
    }


def test_without_any_list_the_page_says_how_people_join(producer_client):
    assert "Nobody has joined a waitlist yet." in page_of(producer_client, "/producer/waitlists")


def test_a_release_list_shows_its_entries_in_line_order_with_their_offers(producer_client, scenario):
    page = page_of(producer_client, release_list(scenario))

    assert counts(re.search(r"<dl[^>]*data-summary>(.*?)</dl>", page, re.S).group(1))["conversion"] == "50%"
    assert entry_order(page) == [
        "ann@example.com",
        "bob@example.com",
        "cara@example.com",
        "dan@example.com",
        "eve@example.com",
    ]
    entries = scenario.entries
    ann = row(page, "data-entry", str(entries["ann"]))
    assert cell(ann, "data-offer") == "No. 1 of 3: bought" and cell(ann, "data-position") == ""
    assert "Wed 1 July 2026, 11:01 IST" in ann  # joined and confirmed on the shop's clock
    bob = row(page, "data-entry", str(entries["bob"]))
    # The offer's hour started when its mail was queued (at once, in tests).
    assert cell(bob, "data-offer") == "No. 2 of 3: offered, waiting for an answer, until Wed 1 July 2026, 12:01 IST"
    cara = row(page, "data-entry", str(entries["cara"]))
    assert cell(cara, "data-position") == "1" and cell(cara, "data-offer") == ""
    dan = row(page, "data-entry", str(entries["dan"]))
    assert "waiting to confirm" in dan and "<td>–</td>" in dan
    assert "=HYPERLINK(&#34;https://evil.example/steal&#34;,&#34;Click me&#34;)" in dan  # shown as text, escaped
    eve = row(page, "data-entry", str(entries["eve"]))
    assert "unsubscribed" in eve
    # Everyone still on the list can be removed; those who left cannot be removed again.
    for name in ("ann", "bob", "cara", "dan"):
        assert f'action="/producer/waitlists/entries/{entries[name]}/remove"' in page
    assert f'action="/producer/waitlists/entries/{entries["eve"]}/remove"' not in page
    assert f'href="{release_list(scenario)}.csv"' in page
    assert "Pause offers" in page and 'data-offers-state="open"' in page


def test_a_product_list_shows_its_entries(producer_client, scenario):
    page = page_of(producer_client, f"/producer/waitlists/products/{scenario.product_id}")

    assert entry_order(page) == ["fay@example.com", "gus@example.com"]
    assert cell(row(page, "data-entry", str(scenario.entries["fay"])), "data-position") == "1"
    assert "Pause offers" not in page and "data-offer" not in page
    assert f'href="/producer/waitlists/products/{scenario.product_id}.csv"' in page


def test_the_release_page_links_to_its_waitlist(producer_client, scenario):
    page = page_of(producer_client, f"/producer/releases/{scenario.release.id}")
    assert f'href="{release_list(scenario)}"' in page


# --- The CSV ---------------------------------------------------------------------------------------------------------


def test_a_release_list_as_csv_with_formulas_made_inert(producer_client, scenario):
    response = producer_client.get(f"{release_list(scenario)}.csv")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    slug = scenario.release.slug
    assert response.headers["Content-Disposition"] == f'attachment; filename="waitlist-{slug}-2026-07-01.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    header, *rows = csv_rows(response)
    assert header == [
        "Position",
        "Email",
        "Name",
        "Status",
        "Joined (Europe/Dublin)",
        "Confirmed (Europe/Dublin)",
        "Offer number",
        "Offer status",
    ]
    assert rows == [
        ["", "ann@example.com", "Ann", "confirmed", "2026-07-01 11:01", "2026-07-01 11:01", "1", "bought"],
        [
            "",
            "bob@example.com",
            "Bob",
            "confirmed",
            "2026-07-01 11:01",
            "2026-07-01 11:01",
            "2",
            "offered, waiting for an answer",
        ],
        ["1", "cara@example.com", "Cara", "confirmed", "2026-07-01 11:01", "2026-07-01 11:01", "", ""],
        ["", "dan@example.com", "'" + HYPERLINK, "waiting to confirm", "2026-07-01 11:01", "", "", ""],
        ["", "eve@example.com", "Eve", "unsubscribed", "2026-07-01 11:01", "2026-07-01 11:01", "", ""],
    ]
    # Every cell is quoted, so a spreadsheet reads none of them as anything but text.
    assert '"\'=HYPERLINK(""https://evil.example/steal"",""Click me"")"' in response.get_data(as_text=True)


def test_a_product_list_as_csv(producer_client, scenario):
    response = producer_client.get(f"/producer/waitlists/products/{scenario.product_id}.csv")

    assert response.status_code == 200
    _header, *rows = csv_rows(response)
    assert [r[:4] for r in rows] == [
        ["1", "fay@example.com", "Fay", "confirmed"],
        ["", "gus@example.com", "Gus", "waiting to confirm"],
    ]


# --- Removing a waiter -----------------------------------------------------------------------------------------------


def test_removing_a_waiter_with_a_live_offer_passes_the_number_to_the_next(producer_client, session, clock, scenario):
    entries, release = scenario.entries, scenario.release
    bob_offer = offer_of(session, release.id, entries["bob"])

    response = producer_client.post(
        f"/producer/waitlists/entries/{entries['bob']}/remove", data={"csrf_token": token_of(producer_client)}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == release_list(scenario)
    session.commit()
    assert session.get(WaitlistEntry, entries["bob"]).status == WaitlistStatus.REMOVED
    session.refresh(bob_offer)
    assert bob_offer.status == OfferStatus.WITHDRAWN
    cara_offer = offer_of(session, release.id, entries["cara"])
    assert (cara_offer.number, cara_offer.status) == (2, OfferStatus.LIVE)
    unit = session.scalar(select(Unit).where(Unit.release_id == release.id, Unit.number == 2))
    assert (unit.status, unit.hold_id) == ("held", cara_offer.hold_id)
    assert session.scalar(
        select(OutboxMessage.subject).where(
            OutboxMessage.recipient == "cara@example.com", OutboxMessage.subject.like("No. 2 of%")
        )
    )
    assert_audit_clean(session, clock())

    page = page_of(producer_client, response.headers["Location"])
    assert (
        "Removed bob@example.com from the list. Their offer is withdrawn; the number goes to the next in line." in page
    )
    assert cell(row(page, "data-entry", str(entries["bob"])), "data-offer") == "No. 2 of 3: withdrawn"
    assert f'action="/producer/waitlists/entries/{entries["bob"]}/remove"' not in page
    activity = page_of(producer_client, "/producer/activity")
    assert "Removed bob@example.com from a waitlist" in activity and "ann@distillery.ie" in activity


def test_removing_a_waiter_without_an_offer_and_again_changes_nothing_more(producer_client, session, clock, scenario):
    dan = scenario.entries["dan"]
    url = f"/producer/waitlists/entries/{dan}/remove"
    token = token_of(producer_client)

    assert producer_client.post(url, data={"csrf_token": token}).status_code == 303
    assert producer_client.post(url, data={"csrf_token": token}).status_code == 303

    session.commit()
    assert session.get(WaitlistEntry, dan).status == WaitlistStatus.REMOVED
    removals = session.scalars(select(ActivityEntry).where(ActivityEntry.action == "waitlist.removed")).all()
    assert [entry.summary for entry in removals] == ["Removed dan@example.com from a waitlist"]
    # Nobody's offer moved.
    assert offer_of(session, scenario.release.id, scenario.entries["bob"]).status == OfferStatus.LIVE
    assert_audit_clean(session, clock())


# --- Pausing offers --------------------------------------------------------------------------------------------------


def test_paused_offers_send_freed_numbers_to_public_sale_until_resumed(producer_client, session, clock, scenario):
    release, entries = scenario.release, scenario.entries
    token = token_of(producer_client)

    response = producer_client.post(f"{release_list(scenario)}/pause", data={"csrf_token": token})

    assert response.status_code == 303 and response.headers["Location"] == release_list(scenario)
    page = page_of(producer_client, release_list(scenario))
    assert "Offers paused: numbers that come free go back on public sale until you resume." in page
    assert 'data-offers-state="paused"' in page and "Resume offers" in page
    assert "Paused since Wed 1 July 2026, 11:01 IST" in page

    # A hold ends while paused: its number goes on public sale, not to Cara.
    release_committed(session, scenario.holds[2], clock())
    assert offer_of(session, release.id, entries["cara"]) is None
    assert status_counts(session, release.id)["available"] == 1
    assert_audit_clean(session, clock())

    clock.advance(minutes=5)
    response = producer_client.post(f"{release_list(scenario)}/resume", data={"csrf_token": token})

    assert response.status_code == 303
    cara_offer = offer_of(session, release.id, entries["cara"])
    assert (cara_offer.number, cara_offer.status) == (3, OfferStatus.LIVE)
    assert status_counts(session, release.id)["available"] == 0
    assert_audit_clean(session, clock())
    page = page_of(producer_client, release_list(scenario))
    assert "Offers resumed: numbers that come free go to the next in line." in page
    assert 'data-offers-state="open"' in page
    activity = page_of(producer_client, "/producer/activity")
    title = release.title
    assert f"Paused waitlist offers of “{title}”" in activity and f"Resumed waitlist offers of “{title}”" in activity


# --- Early access on the release form --------------------------------------------------------------------------------

RELEASE_FORM = {
    "title": "Carlow Rye, Batch 9, 70 cl",
    "slug": "",
    "price": "89.00",
    "currency": "EUR",
    "total_units": "30",
    "on_sale_at": "2026-07-02T11:00",
    "off_sale_at": "",
    "early_access_at": "2026-07-02T09:00",
    "per_customer_limit": "2",
    "allow_number_choice": "y",
}
EARLY_ACCESS_ORDER = "Early access must start before the release goes on sale to everyone."


def open_release_through_form(client, batch_id: int, **fields):
    token = csrf_from(client.get("/producer/releases/new").get_data(as_text=True))
    return client.post(
        "/producer/releases", data={**RELEASE_FORM, "csrf_token": token, "batch_id": str(batch_id), **fields}
    )


def release_count(session) -> int:
    session.commit()
    return session.scalar(select(func.count()).select_from(Release))


def test_early_access_is_set_in_the_shops_time_and_shown_on_the_release(producer_client, session):
    with write_transaction(session):
        batch_id = make_batch(session).id
    page = page_of(producer_client, "/producer/releases/new")
    assert 'id="early_access_at"' in page and 'type="datetime-local"' in re.search(
        r'<input[^>]*id="early_access_at"[^>]*>', page
    ).group(0)

    response = open_release_through_form(producer_client, batch_id)

    assert response.status_code == 303
    release = session.scalar(select(Release))
    assert release.early_access_at == datetime(2026, 7, 2, 8, 0, tzinfo=UTC)  # 09:00 in Dublin
    page = page_of(producer_client, response.headers["Location"])
    assert "From Thu 2 July 2026, 09:00 IST" in page

    edit = page_of(producer_client, f"/producer/releases/{release.id}/edit")
    assert 'value="2026-07-02T09:00"' in re.search(r'<input[^>]*id="early_access_at"[^>]*>', edit).group(0)


@pytest.mark.parametrize("early", ["2026-07-02T11:00", "2026-07-02T12:30"])
def test_early_access_not_before_the_sale_is_refused_and_nothing_is_saved(producer_client, session, early):
    with write_transaction(session):
        batch_id = make_batch(session).id

    response = open_release_through_form(producer_client, batch_id, early_access_at=early)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was saved: please check" in page and EARLY_ACCESS_ORDER in page
    assert release_count(session) == 0


def test_early_access_is_edited_checked_and_cleared(producer_client, session):
    release = make_release(session, on_sale_at=datetime(2026, 7, 2, 10, 0, tzinfo=UTC))  # 11:00 in Dublin
    session.commit()
    url = f"/producer/releases/{release.id}/edit"
    terms = {
        **RELEASE_FORM,
        "title": release.title,
        "slug": release.slug,
        "total_units": str(release.total_units),
        "per_customer_limit": str(release.per_customer_limit),
    }

    def save(**fields):
        return producer_client.post(url, data={**terms, "csrf_token": token_of(producer_client, url), **fields})

    assert save(early_access_at="2026-07-02T10:30").status_code == 303
    session.refresh(release)
    assert release.early_access_at == datetime(2026, 7, 2, 9, 30, tzinfo=UTC)
    edited = session.scalar(select(ActivityEntry).where(ActivityEntry.action == "release.edited"))
    assert "early access from 2026-07-02T09:30:00+00:00" in edited.summary

    # Moving the sale before the early access is the same mistake, told next to the early-access field.
    refused = save(early_access_at="2026-07-02T10:30", on_sale_at="2026-07-02T10:00")
    assert refused.status_code == 422 and EARLY_ACCESS_ORDER in refused.get_data(as_text=True)
    session.commit()
    session.refresh(release)
    assert release.on_sale_at == datetime(2026, 7, 2, 10, 0, tzinfo=UTC)
    assert release.early_access_at == datetime(2026, 7, 2, 9, 30, tzinfo=UTC)

    assert save(early_access_at="").status_code == 303
    session.refresh(release)
    assert release.early_access_at is None
    assert "None" in re.search(
        r"<dd data-early-access>(.*?)</dd>", page_of(producer_client, f"/producer/releases/{release.id}")
    ).group(1)


# --- The announcement reaches the product's waiters too --------------------------------------------------------------


def test_the_announcement_counts_waiters_once_and_tells_of_their_early_access(producer_client, session, clock):
    release = make_release(session, on_sale_at=datetime(2026, 7, 3, 10, 0, tzinfo=UTC))
    session.commit()
    with write_transaction(session):
        session.get(Release, release.id).early_access_at = datetime(2026, 7, 2, 10, 0, tzinfo=UTC)
    product_id = release.batch.product_id
    for email in ("ann@example.ie", "sub@example.ie"):
        with write_transaction(session):
            subscriber = subscribe(session, email, clock(), resend_after=timedelta(minutes=15)).subscriber
            confirm_subscription(session, subscriber.id, clock())
    # Ann waits and subscribes (one mail); Wes only waits; Pat has not confirmed (no mail).
    confirm(session, join(session, product_id, None, "ann@example.ie", clock()), clock())
    confirm(session, join(session, product_id, None, "wes@example.ie", clock()), clock())
    join(session, product_id, None, "pat@example.ie", clock())
    url = f"/producer/releases/{release.id}/announce"

    page = page_of(producer_client, url)

    assert "Send to 3 people" in page
    assert 'data-waiters="2"' in page
    assert "They get this mail with a personal early-access link" in page
    assert "Thu 2 July 2026, 11:00 IST" in page

    response = producer_client.post(url, data={"csrf_token": token_of(producer_client, url)})

    assert response.status_code == 303
    session.commit()
    assert session.scalar(select(Announcement.recipient_count)) == 3
    assert "The announcement is on its way to 3 people." in page_of(producer_client, url)
