"""Baselines for P1: a bare FastAPI route reading one card with raw SQL (psycopg pool),
and a JSON-only route that answers a fixed card document with no I/O at all.

No cache, no ORM, no middleware: the floor the real endpoint is compared with
(``/cards/{id}``) and the ceiling of uvicorn + FastAPI on this machine (``/json/{id}``).
"""

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import FastAPI, HTTPException, Response
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.core.jsonout import dumps
from ece.contracts.card_cache import card_document
from ece.settings import get_settings

# The app role's address as the API gets it (password file included).
pool = AsyncConnectionPool(get_settings().database_url, min_size=4, max_size=10, open=False,
                           kwargs={"row_factory": dict_row})
app = FastAPI()
_NOW = datetime.now(UTC)
FIXED = dumps(card_document({
    "id": uuid.UUID(int=1), "name": "Bench card", "set_name": "Bench", "number": "1",
    "rarity": "rare", "edition": None, "attributes": {}, "owner_id": uuid.UUID(int=2),
    "status": "available", "image_object_key": None, "created_at": _NOW, "updated_at": _NOW,
}))


@app.on_event("startup")
async def _open() -> None:
    await pool.open()


@app.get("/cards/{card_id}")
async def read_card(card_id: str) -> dict[str, object]:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT * FROM cards WHERE id = %s", (card_id,))
        row = await cursor.fetchone()
    if row is None:
        raise HTTPException(404)
    return card_document(cast(dict[str, Any], row))  # the pool's rows are dicts


@app.get("/json/{card_id}")
async def fixed_json(card_id: str) -> Response:
    return Response(FIXED, media_type="application/json")
