"""The activity log page: newest first, 50 a page by keyset, times on the shop's clock, links to what changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import url_for

from storefront.domain.activity import SHOP, Actor, list_activity, record_activity
from storefront.models import ActivityEntry
from storefront.unit_of_work import write_transaction
from tests.factories import make_batch, make_release


def shown_ids(page: str) -> list[int]:
    return [int(value) for value in re.findall(r'data-activity="(\d+)"', page)]


def link(page: str, rel: str) -> str | None:
    match = re.search(rf'<a class="pager__\w+" rel="{rel}" href="([^"]+)"', page)
    return match.group(1).replace("&amp;", "&") if match else None


def write_entries(session, count: int, when: datetime, subject_type: str = "product") -> None:
    with write_transaction(session):
        for index in range(count):
            record_activity(
                session, SHOP, "edited", subject_type, None, f"entry {index}", when + timedelta(seconds=index)
            )


def all_ids_newest_first(session) -> list[int]:
    return list(session.scalars(sa.select(ActivityEntry.id).order_by(ActivityEntry.id.desc())))


def test_the_log_pages_fifty_at_a_time_newest_first(producer_client, session, clock):
    write_entries(session, 120, clock())
    session.commit()
    expected = all_ids_newest_first(session)

    first = producer_client.get("/producer/activity").get_data(as_text=True)
    assert shown_ids(first) == expected[:50]
    assert link(first, "prev") is None

    second = producer_client.get(link(first, "next")).get_data(as_text=True)
    assert shown_ids(second) == expected[50:100]

    third = producer_client.get(link(second, "next")).get_data(as_text=True)
    assert shown_ids(third) == expected[100:]
    assert link(third, "next") is None

    back = producer_client.get(link(third, "prev")).get_data(as_text=True)
    assert shown_ids(back) == expected[50:100]
    newest = producer_client.get(link(back, "prev")).get_data(as_text=True)
    assert shown_ids(newest) == expected[:50]
    assert link(newest, "prev") is None


def test_an_entry_written_meanwhile_does_not_shift_the_next_page(producer_client, session, clock):
    write_entries(session, 60, clock())
    session.commit()
    expected = all_ids_newest_first(session)
    first = producer_client.get("/producer/activity").get_data(as_text=True)

    write_entries(session, 1, clock())
    session.commit()
    second = producer_client.get(link(first, "next")).get_data(as_text=True)

    assert shown_ids(second) == expected[50:]


def test_each_line_says_when_on_the_shops_clock_who_and_what(producer_client, producer_user, session, clock):
    clock.set(datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    with write_transaction(session):
        record_activity(session, Actor.of(producer_user), "edited", "product", None, "Renamed the rye", clock())
    clock.set(datetime(2026, 7, 15, 9, 30, tzinfo=UTC))
    with write_transaction(session):
        record_activity(session, SHOP, "created", "batch", None, "Loaded the demo", clock())
    session.commit()

    page = producer_client.get("/producer/activity").get_data(as_text=True)

    assert re.search(r"Thu 15 January 2026, 09:30 GMT</time>\s*<span[^>]*>ann@distillery.ie</span>", page)
    assert re.search(r"Wed 15 July 2026, 10:30 IST</time>\s*<span[^>]*>the shop</span>", page)
    assert page.index("Loaded the demo") < page.index("Renamed the rye")


def test_lines_link_to_what_they_are_about_when_the_workspace_has_a_page_for_it(app, producer_client, session, clock):
    release = make_release(session, units=2, on_sale_at=clock() + timedelta(days=1))
    batch = make_batch(session)
    with write_transaction(session):
        record_activity(session, SHOP, "paused", "release", release.id, "Paused the release", clock())
        record_activity(session, SHOP, "edited", "batch", batch.id, "Edited the batch", clock())
        record_activity(session, SHOP, "edited", "product", batch.product_id, "Edited the product", clock())
        record_activity(session, SHOP, "deleted", "photo", 3, "Deleted a photo", clock())
    session.commit()

    page = producer_client.get("/producer/activity").get_data(as_text=True)

    assert f'<a class="activity-list__what" href="/producer/releases/{release.id}">Paused the release</a>' in page
    assert '<span class="activity-list__what">Deleted a photo</span>' in page
    # Batches and products link once their pages exist (built alongside this one), and never break the page.
    with app.test_request_context():
        for endpoint, argument, subject_id, summary in [
            ("producer.edit_batch", "batch_id", batch.id, "Edited the batch"),
            ("producer.edit_product", "product_id", batch.product_id, "Edited the product"),
        ]:
            if endpoint in app.view_functions:
                expected = f'href="{url_for(endpoint, **{argument: subject_id})}">{summary}</a>'
            else:
                expected = f'<span class="activity-list__what">{summary}</span>'
            assert expected in page


def test_the_log_can_show_one_kind_of_subject(producer_client, session, clock):
    write_entries(session, 3, clock(), subject_type="product")
    write_entries(session, 2, clock(), subject_type="announcement")
    session.commit()

    page = producer_client.get("/producer/activity?subject=announcement").get_data(as_text=True)

    assert re.findall(r'data-subject-type="(\w+)"', page) == ["announcement", "announcement"]
    assert '<option value="announcement" selected>' in page


def test_a_filtered_log_pages_within_its_filter(producer_client, session, clock):
    write_entries(session, 55, clock(), subject_type="product")
    write_entries(session, 55, clock(), subject_type="batch")
    session.commit()

    first = producer_client.get("/producer/activity?subject=batch").get_data(as_text=True)
    second = producer_client.get(link(first, "next")).get_data(as_text=True)

    assert "subject=batch" in link(first, "next")
    assert set(re.findall(r'data-subject-type="(\w+)"', first + second)) == {"batch"}
    assert len(shown_ids(first)) + len(shown_ids(second)) == 55


def test_odd_paging_values_show_the_newest_entries(producer_client, session, clock):
    write_entries(session, 3, clock())
    session.commit()

    for query in ("before=abc", "after=", "before=-5&after=x", "subject="):
        response = producer_client.get(f"/producer/activity?{query}")
        assert response.status_code == 200, query
    assert shown_ids(producer_client.get("/producer/activity?before=abc").get_data(as_text=True)) == (
        all_ids_newest_first(session)
    )


def test_an_empty_log_says_so(producer_client, session):
    session.execute(sa.delete(ActivityEntry))
    session.commit()

    page = producer_client.get("/producer/activity").get_data(as_text=True)

    assert "Nothing has happened in the workspace yet." in page
    assert 'rel="next"' not in page


def test_list_activity_pages_by_id(session, clock):
    session.execute(sa.delete(ActivityEntry))
    write_entries(session, 7, clock())
    session.commit()
    ids = all_ids_newest_first(session)

    first = list_activity(session, limit=3)
    older = list_activity(session, before_id=first.entries[-1].id, limit=3)
    newer = list_activity(session, after_id=older.entries[0].id, limit=3)

    assert [entry.id for entry in first.entries] == ids[:3]
    assert (first.has_newer, first.has_older) == (False, True)
    assert [entry.id for entry in older.entries] == ids[3:6]
    assert (older.has_newer, older.has_older) == (True, True)
    assert [entry.id for entry in newer.entries] == ids[:3]
    assert not newer.has_newer
