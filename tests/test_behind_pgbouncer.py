"""Behind pgbouncer in transaction mode each transaction may run on a different server connection: the shop keeps
no state on a connection between transactions, and can be told never to prepare statements on the server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config import TestConfig, parse_prepare_threshold
from storefront import create_app
from storefront.extensions import db

STOREFRONT = Path(__file__).resolve().parents[1] / "storefront"
# Session-level state a pooled server connection would carry into a stranger's transaction (or lose from ours):
# advisory locks held past the transaction, SET without LOCAL, LISTEN, temporary tables, prepared statements by hand,
# cursors WITH HOLD. SQL keywords are matched in capitals, as the shop writes them, so prose does not match.
SESSION_STATE = [
    re.compile(r"pg_advisory_lock|pg_try_advisory_lock|pg_advisory_unlock", re.IGNORECASE),
    re.compile(r"\bSET (?!LOCAL\b)|\bLISTEN \w|\bTEMP(ORARY)? TABLE\b|\bPREPARE \w+ AS\b|\bWITH HOLD\b"),
]


def test_nothing_in_the_shop_relies_on_session_state_between_transactions():
    found = [
        f"{path.relative_to(STOREFRONT.parent)}:{number}: {line.strip()}"
        for path in sorted(STOREFRONT.rglob("*.py"))
        if "stripe_sim" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if any(pattern.search(line) for pattern in SESSION_STATE) and not line.lstrip().startswith("#")
    ]
    assert found == []


@pytest.mark.parametrize(("raw", "threshold"), [("", 5), ("none", None), ("Off", None), ("0", 0), ("12", 12)])
def test_the_prepare_threshold_reads_a_count_or_none(raw, threshold):
    assert parse_prepare_threshold(raw) == threshold


def test_a_prepare_threshold_that_is_neither_is_refused():
    with pytest.raises(RuntimeError, match="DATABASE_PREPARE_THRESHOLD"):
        parse_prepare_threshold("never")


@pytest.mark.parametrize("threshold", [None, 5])
def test_the_shop_s_postgresql_connections_prepare_as_configured(postgres_schema_url, threshold):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=postgres_schema_url, DATABASE_PREPARE_THRESHOLD=threshold)
    with app.app_context():
        try:
            connection = db.session.connection().connection.driver_connection
            assert connection.prepare_threshold == threshold
            for _ in range(8):  # past psycopg's default threshold
                db.session.execute(db.text("SELECT count(*) FROM pg_class WHERE relpages > :pages"), {"pages": 0})
            prepared = db.session.execute(db.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
            assert (prepared > 0) == (threshold is not None)
        finally:
            db.session.remove()
            db.engine.dispose()
