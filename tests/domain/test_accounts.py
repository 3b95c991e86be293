"""Accounts: producers are created once per mailbox, with a real password, and signing in reveals nothing."""

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from storefront.database import NoWriteTransaction
from storefront.domain import accounts
from storefront.domain.accounts import (
    EmailTaken,
    InvalidAccountEmail,
    WeakPassword,
    authenticate,
    create_producer,
)
from storefront.domain.errors import DomainError
from storefront.models import Role, User
from storefront.unit_of_work import write_transaction

PASSWORD = "correct horse battery"


def create(session, email="Ann@Distillery.ie", password=PASSWORD, now=None):
    with write_transaction(session):
        user = create_producer(session, email, password, now)
    return user


def sign_in(session, email, password, now):
    with write_transaction(session):
        return authenticate(session, email, password, now)


def test_a_producer_is_stored_lower_cased_with_an_argon2_hash(session, clock):
    user = create(session, now=clock())
    assert (user.email, user.email_key, user.role) == ("ann@distillery.ie", "ann@distillery.ie", Role.PRODUCER)
    assert user.is_producer
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert user.created_at == clock()
    assert user.last_login_at is None


@pytest.mark.parametrize("again", ["ann@distillery.ie", " ANN@DISTILLERY.IE ", "ａｎｎ@distillery.ie"])
def test_one_mailbox_gets_one_account_however_it_is_typed(session, clock, again):
    create(session, now=clock())
    with pytest.raises(EmailTaken) as refusal:
        create(session, email=again, now=clock())
    assert isinstance(refusal.value, DomainError)
    assert session.scalar(select(func.count()).select_from(User)) == 1


def test_plus_tags_are_separate_accounts(session, clock):
    create(session, now=clock())
    create(session, email="ann+shop@distillery.ie", now=clock())
    assert session.scalar(select(func.count()).select_from(User)) == 2


def test_a_short_password_is_refused(session, clock):
    with pytest.raises(WeakPassword, match="12 characters"):
        create(session, password="elevenchars", now=clock())
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_an_address_that_is_not_one_is_refused(session, clock):
    with pytest.raises(InvalidAccountEmail):
        create(session, email="not-an-address", now=clock())


def test_creating_needs_a_write_transaction(session, clock):
    with pytest.raises(NoWriteTransaction):
        create_producer(session, "ann@distillery.ie", PASSWORD, clock())


def test_the_right_password_signs_in_and_is_recorded(session, clock):
    create(session, now=clock())
    later = clock.advance(hours=1)
    user = sign_in(session, "ANN@distillery.ie", PASSWORD, later)
    assert user is not None and user.email == "ann@distillery.ie"
    assert user.last_login_at == later


def test_a_wrong_password_and_an_unknown_address_both_give_none(session, clock):
    create(session, now=clock())
    assert sign_in(session, "ann@distillery.ie", "wrong password here", clock()) is None
    assert sign_in(session, "nobody@distillery.ie", PASSWORD, clock()) is None
    assert sign_in(session, "not an address", PASSWORD, clock()) is None
    assert sign_in(session, "ann@distillery.ie", "x" * 5000, clock()) is None
    assert session.scalar(select(User.last_login_at)) is None


def test_an_unknown_address_still_costs_one_password_check(session, clock, monkeypatch):
    """Timing must not tell whether an address has an account: both paths verify one Argon2 hash."""
    create(session, now=clock())
    checks = []
    real_verify = accounts.verify

    def counting_verify(stored, password):
        checks.append(stored)
        return real_verify(stored, password)

    monkeypatch.setattr(accounts, "verify", counting_verify)
    sign_in(session, "nobody@distillery.ie", PASSWORD, clock())
    sign_in(session, "ann@distillery.ie", "wrong password here", clock())
    assert len(checks) == 2
    assert all(stored.startswith("$argon2id$") for stored in checks)


def test_a_hash_with_old_parameters_is_upgraded_on_sign_in(session, clock):
    user = create(session, now=clock())
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    with write_transaction(session):
        user.password_hash = weak.hash(PASSWORD)
    old_hash = user.password_hash
    assert accounts.password_hasher.check_needs_rehash(old_hash)

    signed_in = sign_in(session, "ann@distillery.ie", PASSWORD, clock() + timedelta(minutes=1))
    assert signed_in is not None
    session.expire_all()
    stored = session.scalar(select(User.password_hash))
    assert stored != old_hash
    assert not accounts.password_hasher.check_needs_rehash(stored)
    assert sign_in(session, "ann@distillery.ie", PASSWORD, clock()) is not None


def test_a_current_hash_is_left_alone(session, clock):
    user = create(session, now=clock())
    before = user.password_hash
    sign_in(session, "ann@distillery.ie", PASSWORD, clock())
    session.expire_all()
    assert session.scalar(select(User.password_hash)) == before


def test_the_database_refuses_an_unknown_role(session, clock):
    import sqlalchemy.exc

    with pytest.raises(sqlalchemy.exc.IntegrityError), write_transaction(session):
        session.add(User(email="x@y.ie", email_key="x@y.ie", password_hash="h", role="admin", created_at=clock()))
        session.flush()
