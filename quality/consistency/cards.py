"""PostgreSQL against the Redis card cache: every cached card document is the row's.

The cache is partial by design (documents expire; a read fills them), so a card
that is not cached is no disagreement. A cached one must carry the row's
``version`` and exactly the document :func:`ece.contracts.card_cache.card_document`
makes of the row, and the version floor must not be ahead of the row (a floor
from a version PostgreSQL never committed would refuse every later write).

The API writes through right after a commit and the stream job a few
milliseconds later, so a document one version behind may be in flight: the
disagreeing cards are read again, both sides, until they agree or ``settle_s``
has passed.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from redis import Redis
from redis.exceptions import RedisError

from ece import db_roles
from ece.contracts.card_cache import (
    CARD_FIELDS,
    card_document,
    decode_entry,
    document_key,
    floor_key,
)
from ece.settings import Settings
from quality.consistency.model import Row, Unreachable, figure, first, verdict

SETTLE_S = 5.0
_PREFIX = document_key("")
_CARDS_SQL = """
SELECT id, name, set_name, number, rarity, edition, attributes, owner_id, status,
       image_object_key, created_at, updated_at, version
FROM cards WHERE id = ANY(%s::uuid[])
"""


def redis_client(settings: Settings) -> Redis:
    """A client that answers or says why (never hangs on a dead address)."""
    client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        client.ping()
    except RedisError as exc:
        client.close()
        raise Unreachable("redis", str(exc)) from None
    return client


def cached_ids(client: Redis) -> list[str]:
    """Card ids with a document in the cache (``ece:card:<id>``, floors excluded)."""
    ids = []
    for raw in client.scan_iter(match=_PREFIX + "*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        rest = key[len(_PREFIX):]
        with contextlib.suppress(ValueError):
            ids.append(str(uuid.UUID(rest)))  # floors (``<id>:version``) are not ids
    return sorted(ids)


def _problem(raw: bytes | None, floor: bytes | None, row: dict[str, Any] | None) -> str | None:
    if raw is None:
        return None  # expired since the scan: nothing cached, nothing wrong
    try:
        doc, version = decode_entry(raw)
    except (ValueError, KeyError, TypeError):
        return "not a card document"
    if row is None:
        return f"cached (v{version}), not in PostgreSQL"
    if version != row["version"]:
        return f"cached v{version}, PostgreSQL v{row['version']}"
    expected = card_document(row)
    fields = [f for f in CARD_FIELDS if doc.get(f) != expected.get(f)]
    if fields:
        return f"v{version} differs in {', '.join(fields)}"
    if floor is not None and int(floor) > int(row["version"]):
        return f"version floor {int(floor)} ahead of PostgreSQL v{row['version']}"
    return None


def judge(client: Redis, conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, str]:
    """card id -> what disagrees, for the cards of ``ids`` that disagree."""
    problems: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        docs = cast(list[bytes | None], client.mget([document_key(i) for i in chunk]))
        floors = cast(list[bytes | None], client.mget([floor_key(i) for i in chunk]))
        with conn.cursor(row_factory=dict_row) as cur:
            found = {str(r["id"]): r for r in cur.execute(_CARDS_SQL, [chunk]).fetchall()}
        for card_id, raw, floor in zip(chunk, docs, floors, strict=True):
            problem = _problem(raw, floor, found.get(card_id))
            if problem:
                problems[card_id] = problem
    return problems


def compare(settings: Settings, settle_s: float = SETTLE_S) -> list[Row]:
    client = redis_client(settings)
    try:
        conn = psycopg.connect(settings.role_url(db_roles.ETL), connect_timeout=5,
                               autocommit=True)  # read-only ece_etl, as the lake
    except psycopg.Error as exc:
        client.close()
        raise Unreachable("postgres", str(exc).strip().splitlines()[0]) from None
    try:
        ids = cached_ids(client)
        problems = judge(client, conn, ids)
        deadline = time.monotonic() + settle_s
        while problems and time.monotonic() < deadline:
            time.sleep(0.25)
            problems = judge(client, conn, sorted(problems))
        total_row = conn.execute("SELECT count(*) FROM cards").fetchone()
        total = int(total_row[0]) if total_row else 0
    except RedisError as exc:
        raise Unreachable("redis", str(exc)) from None
    finally:
        conn.close()
        client.close()
    listed = [f"{k} ({v})" for k, v in sorted(problems.items())]
    return [Row(
        store="redis", what="card documents",
        expected=f"{figure(len(ids))} cached cards as in PostgreSQL",
        found=(f"{figure(len(ids) - len(problems))} equal, {figure(len(problems))} differ "
               f"({figure(max(total - len(ids), 0))} cards not cached)"),
        verdict=verdict(not problems), detail=first(listed, 3) if problems else "")]
