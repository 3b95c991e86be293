"""Engine set-up that differs between the embedded SQLite default and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, scoped_session

# Connection execution option that asks SQLite for the write lock when the transaction begins.
SQLITE_IMMEDIATE = "sqlite_begin_immediate"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def engine_options(
    database_uri: str, pool_size: int, max_overflow: int, prepare_threshold: int | None = 5
) -> dict[str, Any]:
    """Return create_engine() options suited to the database behind `database_uri`."""
    url = make_url(database_uri)
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {
        "pool_pre_ping": True,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": 30,
        # None: never a server-side prepared statement (pgbouncer in transaction mode; config.py).
        "connect_args": {"prepare_threshold": prepare_threshold},
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


# Set in `session.info` by `storefront.unit_of_work.write_transaction` while its block runs.
WRITE_TRANSACTION_ACTIVE = "write_transaction_active"


class NoWriteTransaction(RuntimeError):
    """Domain code ran outside a write transaction: an edge must open one with `write_transaction`."""


def require_write_transaction(session: Session | scoped_session) -> None:
    """Assert that the caller opened a write transaction (on SQLite: one that began with the write lock).

    The domain never begins or commits: it runs inside the edge's unit of work, so its changes and the
    edge's (the webhook's event record, the outbox mail) commit or roll back together.
    """
    if isinstance(session, scoped_session):
        session = session()
    if not session.in_transaction():
        raise NoWriteTransaction("No transaction is open: wrap the call in write_transaction(session).")
    if not session.info.get(WRITE_TRANSACTION_ACTIVE):
        # On PostgreSQL too: a read the caller left open is no unit of work, and nobody would commit these writes.
        raise NoWriteTransaction("This transaction is a read, not a write_transaction(session).")
    if session.get_bind().dialect.name == "sqlite" and not session.connection().get_execution_options().get(
        SQLITE_IMMEDIATE
    ):
        raise NoWriteTransaction("This transaction began as a read: on SQLite writes need write_transaction(session).")
