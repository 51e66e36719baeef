"""Alembic environment: sync psycopg 3, URL from the config or from ece settings.

Without a URL in the config, migrations log in as ``ece_owner`` (the role that owns
every table; docs/operations.md "Database roles"), not as the app.
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text

import api.models  # noqa: F401  (registers every table on Base.metadata)
from api.core.db import Base
from api.migrations.runner import sync_url
from ece.db_roles import OWNER
from ece.settings import get_settings

# Any constant: one migration run at a time per database.
MIGRATION_LOCK_KEY = 7_310_001

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or sync_url(get_settings().role_url(OWNER))


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
