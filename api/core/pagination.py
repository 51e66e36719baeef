"""Opaque keyset pagination on ``(sort key, id)`` (usually ``(created_at, id)``): the one
cursor codec of the API.

Offsets shift when rows are inserted between two page requests (duplicates or
skipped rows); a keyset cursor names the last row seen, so a page always continues
exactly after it. The cursor is base64url JSON so clients treat it as opaque and
we can change its contents later.
"""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from api.core.problems import validation_error

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _invalid_cursor() -> Exception:
    return validation_error(
        "cursor: not a cursor returned by this endpoint (with this sort)",
        [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
    )


def encode_cursor(value: datetime | int, row_id: Any, sort: str | None = None) -> str:
    """The cursor naming a row by its sort key and id; ``sort`` (when the endpoint
    offers several keys) is stored so a cursor of one sort is refused by another."""
    key = value.isoformat() if isinstance(value, datetime) else value
    payload = [key, str(row_id)] if sort is None else [sort, key, str(row_id)]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key(cursor: str, sort: str | None, key_type: type) -> tuple[Any, uuid.UUID]:
    """``(sort key, id)`` of a cursor of ``sort`` whose key is a datetime or an int."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(payload, list):
            raise TypeError("not a cursor")
        if sort is not None:
            if len(payload) != 3 or payload[0] != sort:
                raise ValueError("a cursor of another sort")
            payload = payload[1:]
        key, row_id = payload
        if key_type is datetime:
            key = datetime.fromisoformat(key)
        elif not isinstance(key, key_type) or isinstance(key, bool):
            raise TypeError("sort key")
        return key, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise _invalid_cursor() from exc


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """``(created_at, id)`` of a cursor made by :func:`encode_cursor` without a sort."""
    at, row_id = decode_key(cursor, None, datetime)
    return at, row_id


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    key_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = True,
    sort: str | None = None,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``stmt`` (selecting one ORM entity) and the cursor of the next page.

    Keyset on ``(key_col, id_col)``, descending when ``newest_first``; ``key_col`` is
    a timestamp or an integer column. Endpoints offering several sort keys pass
    ``sort`` so a cursor is only valid for the sort that made it.
    """
    key = tuple_(key_col, id_col)
    if cursor:
        key_type = int if _is_integer(key_col) else datetime
        value, row_id = decode_key(cursor, sort, key_type)
        stmt = stmt.where(
            key < tuple_(value, row_id) if newest_first else key > tuple_(value, row_id)
        )
    order = (key_col.desc(), id_col.desc()) if newest_first else (key_col.asc(), id_col.asc())
    rows = (await session.scalars(stmt.order_by(*order).limit(limit + 1))).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, key_col.key), getattr(last, id_col.key), sort)


def _is_integer(column: InstrumentedAttribute[Any]) -> bool:
    try:
        return column.type.python_type is int
    except NotImplementedError:
        return False


def encode_id_cursor(row_id: int) -> str:
    """Cursor for tables keyed by a monotonic bigint (``audit_events``)."""
    return base64.urlsafe_b64encode(json.dumps([row_id]).encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        (row_id,) = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(row_id, int):
            raise TypeError("not an id")
        return row_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise _invalid_cursor() from exc
