"""One Debezium message -> one flat bronze row.

Choice (documented in warehouse/README.md): bronze flattens the ``after`` row (the
``before`` row for deletes) into one VARCHAR column per source column, added to the
table the first time a column is seen. Text keeps landing total: a new column, a
type change or a odd value never blocks ingestion, and silver SQL casts each column
to its real type in one reviewed place. jsonb arrives as JSON text and stays so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

# Metadata columns every bronze table carries, with their DuckDB types.
META_COLUMNS: dict[str, str] = {
    "op": "VARCHAR",
    "lsn": "BIGINT",
    "tx_id": "BIGINT",
    "ts_ms": "BIGINT",
    "_topic": "VARCHAR",
    "_partition": "INTEGER",
    "_offset": "BIGINT",
    "_epoch": "VARCHAR",
    "_ingested_at": "TIMESTAMP WITH TIME ZONE",
    "_day": "DATE",
}
# A source column whose name collides with a metadata column is stored with this prefix.
COLLISION_PREFIX = "row_"


class InvalidMessage(ValueError):
    """A message that is not a Debezium change event (reported, never landed as data)."""


@dataclass(frozen=True)
class ChangeRow:
    """The parsed change: source columns as text plus the event's metadata."""

    columns: dict[str, str | None]
    op: str
    lsn: int | None
    tx_id: int | None
    ts_ms: int | None
    day: date


def as_text(value: Any) -> str | None:
    """Render one JSON value as the text bronze stores (JSON for nested values)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def column_name(source_column: str) -> str:
    return COLLISION_PREFIX + source_column if source_column in META_COLUMNS else source_column


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse(key: bytes | None, value: bytes, exclude: frozenset[str] = frozenset()) -> ChangeRow:
    """Parse a Debezium JSON envelope (with or without the ``schema``/``payload`` wrapper).

    The message key is merged under the row so a delete whose ``before`` image holds
    only placeholders (default replica identity) still carries the primary key.
    ``exclude`` names columns that must never reach the lake (secrets), dropped
    here even if the CDC ever published them.
    """
    try:
        envelope = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}") from exc
    if isinstance(envelope, dict) and "payload" in envelope and "op" not in envelope:
        envelope = envelope["payload"]
    if not isinstance(envelope, dict) or envelope.get("op") not in ("r", "c", "u", "d"):
        raise InvalidMessage("no Debezium op")
    op = str(envelope["op"])
    row = envelope.get("before" if op == "d" else "after") or {}
    if not isinstance(row, dict):
        raise InvalidMessage("row image is not an object")
    key_fields: dict[str, Any] = {}
    if key:
        try:
            parsed_key = json.loads(key)
            if isinstance(parsed_key, dict):
                key_fields = parsed_key.get("payload", parsed_key) if "schema" in parsed_key \
                    else parsed_key
        except (UnicodeDecodeError, json.JSONDecodeError):
            key_fields = {}
    merged = {**row}
    for name, val in key_fields.items():
        if merged.get(name) is None:
            merged[name] = val
    source = envelope.get("source") or {}
    ts_ms = _int_or_none(source.get("ts_ms")) or _int_or_none(envelope.get("ts_ms"))
    when = datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms is not None else datetime.now(UTC)
    return ChangeRow(
        columns={column_name(k): as_text(v) for k, v in merged.items() if k not in exclude},
        op=op,
        lsn=_int_or_none(source.get("lsn")),
        tx_id=_int_or_none(source.get("txId")),
        ts_ms=ts_ms,
        day=when.date(),
    )
