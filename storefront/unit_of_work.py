"""The unit of work at the edges: begin with the right locking, commit or roll back, then run after-commit hooks.

Only edges (views, the webhook, tasks, CLI commands) open a `write_transaction`; the domain asserts one is open
and never begins or commits. Side effects that must not happen for a rolled-back change (waking the worker to send
mail or a refund) are registered with `after_commit` and run only once the change is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, scoped_session

from storefront.database import SQLITE_IMMEDIATE, WRITE_TRANSACTION_ACTIVE

log = logging.getLogger(__name__)

HOOKS_KEY = "after_commit_hooks"
ACTIVE_KEY = WRITE_TRANSACTION_ACTIVE


class NestedWriteTransaction(RuntimeError):
    """An edge opened a write transaction inside another one: its commit would break the outer one's atomicity."""


def plain_session(session: Session | scoped_session) -> Session:
    return session() if isinstance(session, scoped_session) else session


@contextmanager
def write_transaction(session: Session | scoped_session) -> Iterator[Session]:
    """Run the block as one transaction that may write: committed on success, rolled back on any exception.

    A read the caller left open is ended first (it holds no changes: a pending change there is a bug and
    raises). On SQLite the transaction begins with BEGIN IMMEDIATE, since a read transaction cannot become a
    write once another writer has committed; on PostgreSQL row locks do that work.
    """
    session = plain_session(session)
    if session.info.get(ACTIVE_KEY):
        raise NestedWriteTransaction("A write transaction is already open on this session.")
    end_read(session)
    session.info[ACTIVE_KEY] = True
    session.info[HOOKS_KEY] = {}
    try:
        if session.get_bind().dialect.name == "sqlite":
            session.connection(execution_options={SQLITE_IMMEDIATE: True})
        else:
            session.connection()
        yield session
        session.commit()
    except BaseException:
        session.info.pop(HOOKS_KEY, None)
        session.rollback()
        raise
    finally:
        session.info.pop(ACTIVE_KEY, None)
    run_hooks(session.info.pop(HOOKS_KEY, {}))


def after_commit(session: Session | scoped_session, key: str, hook: Callable[[], object]) -> None:
    """Run `hook` once the current write transaction commits; the same `key` registers it once per transaction.

    Outside a write transaction (a domain test committing by hand) there is nobody to run it: the periodic tasks
    catch up with whatever it would have woken.
    """
    session = plain_session(session)
    hooks = session.info.get(HOOKS_KEY)
    if hooks is not None:
        hooks.setdefault(key, hook)


def run_hooks(hooks: dict[str, Callable[[], object]]) -> None:
    for key, hook in hooks.items():
        try:
            hook()
        except Exception:
            # The change is committed; a failed wake-up is caught up by the periodic tasks, never lost.
            log.exception("After-commit hook %s failed", key)


def end_read(session: Session | scoped_session) -> None:
    """End a read-only transaction before crossing the network: nothing stays open while we wait.

    A pending change here is a bug (writes belong in `write_transaction`), so it raises instead of committing it.
    """
    session = plain_session(session)
    if session.info.get(ACTIVE_KEY):
        raise NestedWriteTransaction("end_read inside a write transaction would commit it half-way.")
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("Uncommitted changes outside a write transaction: write inside write_transaction.")
        # Commit, not roll back: a read has nothing to keep, but anything flushed by mistake is not silently lost.
        session.commit()
