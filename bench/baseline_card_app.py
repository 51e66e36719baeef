"""Baseline for P1: a bare FastAPI route reading one card with raw SQL (psycopg pool).

No cache, no ORM, no middleware: the floor the real endpoint is compared with.
"""

import os

from fastapi import FastAPI, HTTPException
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ece.contracts.card_cache import card_document

pool = AsyncConnectionPool(os.environ["ECE_DATABASE_URL"], min_size=4, max_size=10, open=False,
                           kwargs={"row_factory": dict_row})
app = FastAPI()


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
    return card_document(row)
