"""Accounts: creating a producer and checking a password, without revealing which addresses have an account.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile). A stored hash made with
older parameters is replaced by one with the current parameters the next time its owner signs in.
"""

from __future__ import annotations

from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session

from storefront.database import require_write_transaction
from storefront.domain.buyers import InvalidBuyerEmail, buyer_key
from storefront.domain.errors import DomainError
from storefront.models.accounts import Role, User

MIN_PASSWORD_LENGTH = 12
# Argon2 itself has no limit; a megabyte "password" would only cost CPU time.
MAX_PASSWORD_LENGTH = 1024

password_hasher = PasswordHasher()
# Verified against when the address has no account, so an unknown address costs as long as a wrong password.
_dummy_hash: str | None = None


class AccountError(DomainError):
    """An account could not be created as asked."""


class EmailTaken(AccountError):
    """An account already exists for this mailbox."""


class WeakPassword(AccountError):
    """The password is too short (or absurdly long)."""


class InvalidAccountEmail(AccountError):
    """The address cannot name an account."""


def email_key(email: str) -> str:
    """The key one mailbox shares however it is typed; "+tags" count apart (they are a person's own choice)."""
    return buyer_key(email, ignore_plus_tags=False)


def hash_password(password: str) -> str:
    return password_hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"Choose a password of at most {MAX_PASSWORD_LENGTH} characters.")


def create_producer(session: Session | scoped_session, email: str, password: str, now: datetime) -> User:
    """Create a producer account; refuse an address already taken (in any spelling) and a short password."""
    require_write_transaction(session)
    typed = email.strip().lower()
    try:
        key = email_key(typed)
    except InvalidBuyerEmail as error:
        raise InvalidAccountEmail(error.message) from error
    check_password_rules(password)
    if session.scalar(select(User.id).where((User.email_key == key) | (User.email == typed))) is not None:
        raise EmailTaken(f"There is already an account for {typed}.")
    user = User(email=typed, email_key=key, password_hash=hash_password(password), role=Role.PRODUCER, created_at=now)
    session.add(user)
    # The unique constraints on email and email_key are the last word if two of these race.
    session.flush()
    return user


def find_user(session: Session | scoped_session, email: str) -> User | None:
    try:
        key = email_key(email)
    except InvalidBuyerEmail:
        return None
    return session.scalar(select(User).where(User.email_key == key))


def dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password("not the password of anybody, ever")
    return _dummy_hash


def verify(stored_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session | scoped_session, email: str, password: str, now: datetime) -> User | None:
    """Return the user with this email and password, or None; records the sign-in and upgrades an old hash.

    Unknown addresses are checked against a dummy hash, so the time taken does not tell whether an address has
    an account. Writes (last_login_at, a new hash), so it runs inside the edge's write transaction.
    """
    require_write_transaction(session)
    user = find_user(session, email) if len(password) <= MAX_PASSWORD_LENGTH else None
    if user is None:
        verify(dummy_hash(), password[:MAX_PASSWORD_LENGTH])
        return None
    if not verify(user.password_hash, password):
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    session.flush()
    return user
