"""Database access: one declarative base, one async engine per process, one session per request.

The async engine runs on psycopg 3 (``settings.sqlalchemy_url``) so the API and the
sync migration runner share one driver. Sessions never expire objects on commit:
routers serialise ORM objects after the service committed, and a lazy reload at
that point would be an extra round trip (or an error in async code).
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import FetchedValue, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import DateTime

from ece.settings import get_settings

# Deterministic constraint names: migrations and error mapping can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every ECE table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


@lru_cache
def get_engine() -> AsyncEngine:
    """The process-wide engine (created lazily so importing never connects)."""
    settings = get_settings()
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )


@lru_cache
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session that is rolled back unless the service committed."""
    async with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
"""The request's database session (one per request, closed after the answer)."""


async def dispose_engine() -> None:
    """Close pooled connections and forget the engine (app shutdown, tests switching DBs)."""
    if get_engine.cache_info().currsize:
        await get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


# --- column helpers shared by the domain models ------------------------------------


def uuid_pk() -> Any:
    """UUID primary key, generated in Python (known before flush) with a server fallback
    so raw-SQL inserts from workers and tests need not supply one."""
    return mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )


def created_at() -> Any:
    return mapped_column(server_default=func.now(), nullable=False)


def updated_at() -> Any:
    """Maintained by the ``ece_touch_updated_at`` trigger; the ORM reads it back."""
    return mapped_column(server_default=func.now(), server_onupdate=FetchedValue(), nullable=False)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """``column IN ('a', 'b')`` for CHECK constraints built from the Python enum tuples."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"
