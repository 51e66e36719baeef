"""Opaque keyset pagination on ``(created_at, id)``.

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


def encode_cursor(at: datetime, row_id: Any) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise validation_error(
            "cursor: not a cursor returned by this endpoint",
            [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    at_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = True,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``stmt`` (selecting one ORM entity) and the cursor of the next page."""
    key = tuple_(at_col, id_col)
    if cursor:
        at, row_id = decode_cursor(cursor)
        stmt = stmt.where(key < tuple_(at, row_id) if newest_first else key > tuple_(at, row_id))
    order = (at_col.desc(), id_col.desc()) if newest_first else (at_col.asc(), id_col.asc())
    rows = (await session.scalars(stmt.order_by(*order).limit(limit + 1))).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, at_col.key), getattr(last, id_col.key))


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
        raise validation_error(
            "cursor: not a cursor returned by this endpoint",
            [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc
