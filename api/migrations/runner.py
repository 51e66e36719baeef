"""Programmatic Alembic entry point used by the stack supervisor and the tests.

Kept free of ``fileConfig``: the supervisor owns logging, and Alembic's ini would
silently reconfigure it.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

API_DIR = Path(__file__).resolve().parent.parent


def sync_url(database_url: str) -> str:
    """``postgresql://...`` -> ``postgresql+psycopg://...`` (sync psycopg 3 driver)."""
    scheme, rest = database_url.split("://", 1)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return f"postgresql+psycopg://{rest}"
    return database_url


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(API_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(API_DIR / "migrations"))
    if database_url:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Bring the database at ``database_url`` to the newest schema revision.

    Safe to call concurrently from several processes: env.py serialises runs with a
    session advisory lock, and a database already at head is left untouched.
    """
    command.upgrade(alembic_config(database_url), "head")
