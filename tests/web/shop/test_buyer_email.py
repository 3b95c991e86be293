"""The reserve form refuses an address that could pass for another buyer's, next to the email field."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.models import Hold, Unit
from tests.factories import make_release
from tests.web.shop.test_reserve import release_page_token, reserve

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def on_sale(clock):
    clock.set(ON_SALE + timedelta(minutes=1))


def email_error_of(page: str) -> str:
    """The text of the error shown under the email field."""
    assert 'id="email-error"' in page
    return page.split('id="email-error"', 1)[1].split("</p>", 1)[0]


def test_a_mixed_alphabet_email_is_refused_next_to_the_field(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()
    token = release_page_token(client, release)

    response = reserve(client, release, token, email="\u0430da@example.com")  # a Cyrillic "а", then Latin "da"

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    error = email_error_of(page)
    assert "mixes Cyrillic and Latin letters" in error
    assert "using one alphabet" in error
    assert session.scalar(select(func.count()).select_from(Hold)) == 0
    assert session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "held")) == 0


def test_a_typo_gets_one_message_not_two(app, session, client, on_sale):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()

    response = reserve(client, release, release_page_token(client, release), email="ada@@example.com")

    assert response.status_code == 400
    assert email_error_of(response.get_data(as_text=True)).count("Error: ") == 1


def test_an_address_in_one_other_alphabet_may_reserve(app, session, client, on_sale, stripe_sim):
    release = make_release(session, units=10, on_sale_at=ON_SALE)
    session.commit()

    response = reserve(client, release, release_page_token(client, release), email="\u0430\u0434\u0430@example.com")

    assert response.status_code == 303
    assert session.scalar(select(func.count()).select_from(Hold)) == 1
