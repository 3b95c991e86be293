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
