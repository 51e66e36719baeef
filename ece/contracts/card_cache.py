"""The Redis card cache: one layout and one write rule shared by the API and Flink.

Two writers fill the cache: the API (read-through on a miss, and right after
each committed change) and the Flink card-cache job (from the CDC stream).
Either may be late: a replayed stream event or a slow read-through can carry an
older row than the one already cached. Every write therefore carries the row's
``version`` and goes through one Lua compare-and-set that refuses anything older
than the highest version ever written for that card. The floor key has no TTL,
so an evicted document can never be replaced by an older one either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

CARD_FIELDS = (
    "id",
    "name",
    "set_name",
    "number",
    "rarity",
    "edition",
    "attributes",
    "owner_id",
    "status",
    "image_url",
    "created_at",
    "updated_at",
)

# KEYS[1] document key, KEYS[2] version floor key; ARGV: version, document, ttl seconds.
# Returns 1 when written, 0 when refused as older than the floor.
SET_IF_NEWER_LUA = """
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local version = tonumber(ARGV[1])
if version < floor then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


def document_key(card_id: str) -> str:
    return f"ece:card:{card_id}"


def floor_key(card_id: str) -> str:
    return f"ece:card:{card_id}:version"


def etag(card_id: str, version: int) -> str:
    """Strong ETag derived from the row version, so API and Flink agree on it."""
    return f'"{card_id}.{version}"'


def _rfc3339(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, int | float):  # epoch micros (Debezium MicroTimestamp)
        value = datetime.fromtimestamp(value / 1_000_000, tz=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def card_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public card JSON (``docs/rest.md``) from a database row or a CDC ``after`` image.

    Accepts both Python values (UUID, datetime, dict) and their Debezium JSON forms
    (strings, ISO timestamps, JSON text for jsonb), and yields the same document.
    """
    attributes = row.get("attributes")
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    card_id = str(row["id"])
    return {
        "id": card_id,
        "name": row["name"],
        "set_name": row["set_name"],
        "number": row["number"],
        "rarity": row["rarity"],
        "edition": row.get("edition"),
        "attributes": attributes or {},
        "owner_id": str(row["owner_id"]),
        "status": row["status"],
        "image_url": f"/api/v1/cards/{card_id}/image" if row.get("image_object_key") else None,
        "created_at": _rfc3339(row["created_at"]),
        "updated_at": _rfc3339(row["updated_at"]),
    }


def encode_entry(document: Mapping[str, Any], version: int) -> str:
    return json.dumps({"version": version, "card": document}, separators=(",", ":"))


def decode_entry(raw: str | bytes) -> tuple[dict[str, Any], int]:
    entry = json.loads(raw)
    return entry["card"], int(entry["version"])


def set_if_newer_args(
    document: Mapping[str, Any], version: int, ttl_seconds: int
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV for :data:`SET_IF_NEWER_LUA` (usable from sync and async clients)."""
    card_id = str(document["id"])
    return (
        [document_key(card_id), floor_key(card_id)],
        [version, encode_entry(document, version), ttl_seconds],
    )
