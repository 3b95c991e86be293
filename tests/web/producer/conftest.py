"""Signed-in clients for the producer's workspace: a producer, a customer, and nobody."""

from __future__ import annotations

import re

import pytest

from storefront.domain.accounts import create_producer, email_key, hash_password
from storefront.models import Role, User
from storefront.unit_of_work import write_transaction

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
PRODUCER_EMAIL = "ann@distillery.ie"
CUSTOMER_EMAIL = "bob@example.com"
PASSWORD = "correct horse battery"


def csrf_from(page_text: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_INPUT.search(page_text)
    assert match, "no csrf_token input on the page"
    return match.group(1)


def csrf_token(client, path: str = "/login") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


def sign_in(client, email: str, password: str = PASSWORD) -> None:
    response = client.post("/login", data={"csrf_token": csrf_token(client), "email": email, "password": password})
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def producer_user(session, clock) -> User:
    with write_transaction(session):
        user = create_producer(session, PRODUCER_EMAIL, PASSWORD, clock())
    return user


@pytest.fixture
def customer_user(session, clock) -> User:
    with write_transaction(session):
        user = User(
            email=CUSTOMER_EMAIL,
            email_key=email_key(CUSTOMER_EMAIL),
            password_hash=hash_password(PASSWORD),
            role=Role.CUSTOMER,
            created_at=clock(),
        )
        session.add(user)
    return user


@pytest.fixture
def producer_client(client, producer_user):
    """The test client, signed in as the shop's producer."""
    sign_in(client, PRODUCER_EMAIL)
    return client


@pytest.fixture
def customer_client(client, customer_user):
    """The test client, signed in as a customer (not a producer)."""
    sign_in(client, CUSTOMER_EMAIL)
    return client
