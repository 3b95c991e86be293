"""Engine set-up that differs between the embedded SQLite default and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, scoped_session

# Connection execution option that asks SQLite for the write lock when the transaction begins.
SQLITE_IMMEDIATE = "sqlite_begin_immediate"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def engine_options(database_uri: str, pool_size: int, max_overflow: int) -> dict[str, Any]:
    """Return create_engine() options suited to the database behind `database_uri`."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": 30,
    }


def configure_sqlite(engine: Engine) -> None:
    """Make SQLite transactional the way the shop needs: WAL, foreign keys, explicit BEGIN.

    pysqlite starts transactions lazily and on its own terms, which makes `BEGIN IMMEDIATE` impossible; the
    SQLAlchemy documentation's recipe hands BEGIN back to SQLAlchemy so a claim can take the write lock up front.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):  # pragma: no cover - exercised by every SQLite test
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):  # pragma: no cover - exercised by every SQLite test
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class TransactionAlreadyStarted(RuntimeError):
    """A write on SQLite was attempted inside a transaction that began as a plain read."""


def begin_write_transaction(session: Session | scoped_session) -> None:
    """Make sure the session's transaction holds the database write lock from its start (SQLite only).

    SQLite in WAL mode cannot upgrade a read transaction to a write once another writer has committed: it fails
    at once instead of waiting. So writers begin with BEGIN IMMEDIATE, which waits (busy timeout) for its turn.
    On PostgreSQL this does nothing: row locks do the work there.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    if isinstance(session, scoped_session):
        session = session()
    if not session.in_transaction():
        session.connection(execution_options={SQLITE_IMMEDIATE: True})
    elif not session.connection().get_execution_options().get(SQLITE_IMMEDIATE):
        raise TransactionAlreadyStarted(
            "This write must start its own transaction on SQLite: commit or roll back the session first."
        )
