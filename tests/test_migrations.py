"""The Alembic revisions build the same schema as the models, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade

from config import TestConfig
from storefront import PROJECT_DIR, create_app
from storefront.extensions import db, render_migration_type


def test_there_is_a_single_head():
    from alembic.config import Config

    config = Config(str(PROJECT_DIR / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_upgrade_builds_exactly_the_models_schema(database_url, tmp_path):
    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, UPLOAD_FOLDER=str(tmp_path))
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_item": render_migration_type}
            )
            differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == []


def test_the_buyer_key_revision_fills_existing_rows(database_url, tmp_path):
    """Rows written before holds and orders had a canonical buyer key, a unit price and a refund lease get them."""
    import json
    from datetime import UTC, datetime

    from flask_migrate import downgrade
    from sqlalchemy import text

    app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, UPLOAD_FOLDER=str(tmp_path))
    created = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    with app.app_context():
        upgrade(revision="54a2a7862496")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO product (id, slug, name, category, description, created_at)"
                    " VALUES (1, 'rye', 'Rye', '', '', :at)"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    "INSERT INTO batch (id, product_id, code, slug, title, produced_on, summary, story_markdown,"
                    " created_at, updated_at) VALUES (1, 1, 'B-1', 'b-1', 'B', '2026-01-01', '', '', :at, :at)"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    "INSERT INTO release (id, batch_id, slug, title, price_amount, currency, total_units, on_sale_at,"
                    " per_customer_limit, allow_number_choice, created_at)"
                    " VALUES (1, 1, 'r-1', 'R', 8900, 'EUR', 3, :at, 2, false, :at)"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    "INSERT INTO hold (id, token, release_id, buyer_email, quantity, status, created_at, expires_at,"
                    " payment_session_id) VALUES (1, 't1', 1, 'ann+drop@bücher.de', 1, 'active', :at, :at, 'cs_1')"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    'INSERT INTO "order" (id, reference, release_id, email, quantity, amount_total, currency, status,'
                    " created_at, payment_intent_id, shipping_name, shipping_address, note)"
                    " VALUES (1, 'SB-1', 1, 'ANN@XN--BCHER-KVA.DE', 2, 17800, 'EUR', 'refunding', :at, 'pi_1', '',"
                    " '{}', '')"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    "INSERT INTO unit (release_id, number, status, hold_id, held_until) VALUES (1, 1, 'held', 1, :at)"
                ),
                {"at": created},
            )
            connection.execute(
                text(
                    "INSERT INTO refund (order_id, amount, currency, reason, status, attempts, last_error, created_at,"
                    " updated_at) VALUES (1, 17800, 'EUR', 'units_unavailable', 'pending', 0, '', :at, :at)"
                ),
                {"at": created},
            )
        upgrade()
        with db.engine.connect() as connection:
            hold = connection.execute(
                text("SELECT buyer_key, expected_amount, unit_amount, payment_currency, checkout_numbers FROM hold")
            ).one()
            order = connection.execute(text('SELECT buyer_key, unit_amount FROM "order"')).one()
            refund = connection.execute(text("SELECT payment_intent_id, status, next_attempt_at FROM refund")).one()
            fulfilment = connection.execute(text('SELECT fulfilment_status, carrier FROM "order"')).one()
            timeline = connection.execute(text("SELECT order_id, kind, summary FROM order_event")).all()
        downgrade(revision="54a2a7862496")  # and back, with the data in place
        upgrade()
        db.engine.dispose()
    assert hold.buyer_key == order.buyer_key == "ann@xn--bcher-kva.de"
    assert (hold.expected_amount, hold.unit_amount, hold.payment_currency) == (8900, 8900, "EUR")
    numbers = hold.checkout_numbers
    assert (json.loads(numbers) if isinstance(numbers, str) else numbers) == [1]
    assert order.unit_amount == 8900
    assert (refund.payment_intent_id, refund.status) == ("pi_1", "pending")
    assert refund.next_attempt_at is not None
    assert tuple(fulfilment) == ("unfulfilled", "")
    assert [tuple(event) for event in timeline] == [(1, "paid", "Paid SB-1")]
