"""The JSON answers the release page asks while a buyer picks a number: free ranges, and one number; both databases."""

from datetime import UTC, datetime, timedelta

import pytest

from storefront.api import views as api_views
from tests.factories import make_release
from tests.integration.helpers import claim_committed

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


@pytest.fixture
def release(session, clock):
    release = make_release(session, units=20, on_sale_at=ON_SALE, withheld=[20], allow_number_choice=True)
    for number in (5, 6, 9):
        claim_committed(session, release.id, 1, f"buyer{number}@example.com", clock(), number=number)
    return release


def test_the_free_numbers_come_as_ranges_with_their_counts(client, release):
    response = client.get(f"/api/releases/{release.slug}/numbers")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "slug": release.slug,
        "total": 20,
        "free": 16,
        "range_count": 3,
        "complete": True,
        "ranges": [[1, 4], [7, 8], [10, 19]],
    }


def test_a_fragmented_run_lists_its_first_ranges_and_counts_them_all(client, release, monkeypatch):
    monkeypatch.setattr(api_views, "NUMBER_RANGES_LISTED", 2)

    answer = client.get(f"/api/releases/{release.slug}/numbers").get_json()

    assert (answer["ranges"], answer["range_count"], answer["complete"]) == ([[1, 4], [7, 8]], 3, False)


@pytest.mark.parametrize(
    ("number", "status", "next_free"),
    [("4", "free", None), ("5", "taken", 7), ("20", "taken", 1), ("0007", "free", None)],
)
def test_one_number_is_free_or_taken_with_the_free_one_to_offer(client, release, number, status, next_free):
    response = client.get(f"/api/releases/{release.slug}/numbers/{number}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"number": int(number), "status": status, "next_free": next_free}


def test_a_number_outside_the_run_is_a_json_404_that_says_the_run(client, release):
    response = client.get(f"/api/releases/{release.slug}/numbers/21")

    assert response.status_code == 404
    answer = response.get_json()
    assert (answer["status"], answer["next_free"]) == ("not_in_run", None)
    assert answer["message"] == "Numbers of this release run from 1 to 20."


@pytest.mark.parametrize("number", ["x", "-1", "1.5", "1e3", "9999999999", "%20"])
def test_a_number_that_is_not_one_is_a_json_400(client, release, number):
    response = client.get(f"/api/releases/{release.slug}/numbers/{number}")

    assert response.status_code == 400
    assert response.get_json()["message"] == "Ask for a number in digits, such as 17."


@pytest.mark.parametrize("path", ["/api/releases/nope/numbers", "/api/releases/nope/numbers/3"])
def test_an_unknown_release_is_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


@pytest.mark.parametrize("path", ["numbers", "numbers/3"])
def test_a_release_without_number_picking_publishes_no_map_of_its_numbers(client, session, path):
    release = make_release(session, units=20, on_sale_at=ON_SALE, allow_number_choice=False)

    response = client.get(f"/api/releases/{release.slug}/{path}")

    assert response.status_code == 404
    assert response.get_json()["message"] == "This release does not let buyers pick a number."
