"""The per-customer limit counts one mailbox as one buyer, however its address is spelled (finding 5).

Before the canonical key, each spelling below was a new buyer: NFC against NFD, fullwidth letters, an IDN domain
against its punycode, a "+tag". Through the real form, on both databases.
"""

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from storefront.domain.audit import audit
from storefront.models import Hold, Unit
from tests.factories import make_release
from tests.web.shop.test_reserve import release_page_token, reserve

ON_SALE = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)

SAME_MAILBOX = [
    pytest.param(
        unicodedata.normalize("NFC", "josé@example.com"), unicodedata.normalize("NFD", "josé@example.com"), id="nfc-nfd"
    ),
    pytest.param("joe@example.com", "ｊｏｅ@ｅｘａｍｐｌｅ.com", id="fullwidth"),
    pytest.param("ann@bücher.de", "ANN@xn--bcher-kva.de", id="idn-punycode"),
    pytest.param("ann@example.com", "Ann+drop2026@Example.com", id="plus-tag"),
]


@pytest.fixture
def release(app, session, clock):
    clock.set(ON_SALE + timedelta(minutes=1))
    release = make_release(session, units=10, on_sale_at=ON_SALE, limit=1)
    session.commit()
    return release


def held(session, release) -> int:
    return session.scalar(select(func.count()).where(Unit.release_id == release.id, Unit.status == "held"))


@pytest.mark.parametrize(("first", "second"), SAME_MAILBOX)
def test_one_mailbox_spelled_two_ways_is_one_buyer(app, session, client, clock, release, first, second):
    token = release_page_token(client, release)
    assert reserve(client, release, token, email=first).status_code == 303

    response = reserve(client, release, token, email=second)

    assert response.status_code == 409
    assert held(session, release) == 1
    keys = session.scalars(select(Hold.buyer_key)).all()
    assert len(keys) == 1
    assert audit(session, clock()) == []


def test_the_hold_keeps_the_address_as_typed_for_mail(app, session, client, release):
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="Ann+drop@Example.com").status_code == 303
    hold = session.scalar(select(Hold))
    assert (hold.buyer_email, hold.buyer_key) == ("Ann+drop@Example.com", "ann@example.com")


def test_a_look_alike_letter_is_refused_with_a_message(app, session, client, release):
    token = release_page_token(client, release)
    response = reserve(client, release, token, email="\u0430nn@example.com")  # Cyrillic "а" then Latin "nn"
    assert response.status_code == 400
    assert "one alphabet" in response.get_data(as_text=True)
    assert held(session, release) == 0


@pytest.mark.parametrize("app_overrides", [{"BUYER_KEY_IGNORES_PLUS_TAGS": False}])
def test_a_shop_can_count_plus_tags_apart(app, session, client, release, app_overrides):
    token = release_page_token(client, release)
    assert reserve(client, release, token, email="ann@example.com").status_code == 303
    assert reserve(client, release, token, email="ann+two@example.com").status_code == 303
    assert held(session, release) == 2
