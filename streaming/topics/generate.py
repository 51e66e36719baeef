"""Generate ``schemas/ece.public.<table>.json`` from the live, migrated database.

    python -m streaming.topics.generate [--url postgresql://...] [--check]

Reads ``information_schema`` for every table in ``CAPTURED_TABLES`` and renders each
column the way Debezium's JSON converter does with *our* settings
(``decimal.handling.mode=string``, default ``time.precision.mode=adaptive``,
``binary.handling.mode=bytes``): that mapping is the one thing to keep in sync with
``streaming/cdc/config.py``. Columns in ``EXCLUDED_COLUMNS`` are left out and rows
forbid extra properties, so a leaked secret fails validation. ``--check`` exits 1
when the files on disk differ (for CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import psycopg

from ece.contracts.topics import CAPTURED_TABLES, EXCLUDED_COLUMNS, SCHEMA, cdc_topic
from ece.settings import get_settings
from streaming.topics import SCHEMA_DIR, schema_path

JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

# Postgres type (information_schema data_type / udt_name) -> JSON rendering by Debezium.
_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
TYPE_MAP: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "format": "uuid"},
    "text": _STRING, "character varying": _STRING, "character": _STRING, "citext": _STRING,
    "inet": _STRING, "cidr": _STRING, "macaddr": _STRING, "xml": _STRING,
    "smallint": _INTEGER, "integer": _INTEGER, "bigint": _INTEGER,
    "real": {"type": "number"}, "double precision": {"type": "number"},
    "numeric": {"type": "string", "description": "decimal as string"},
    "money": {"type": "string", "description": "decimal as string"},
    "boolean": {"type": "boolean"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
    "timestamp without time zone": {"type": "integer", "description": "epoch micro/milliseconds"},
    "date": {"type": "integer", "description": "days since 1970-01-01"},
    "time without time zone": {"type": "integer", "description": "micro/milliseconds of day"},
    "time with time zone": {"type": "string"},
    "interval": {"type": "integer", "description": "microseconds"},
    "json": {"type": "string", "description": "JSON document as text"},
    "jsonb": {"type": "string", "description": "JSON document as text"},
    "bytea": {"type": "string", "contentEncoding": "base64"},
    "USER-DEFINED": _STRING,  # enums
}
_ARRAY_ITEMS = {"_text": "text", "_varchar": "character varying", "_uuid": "uuid",
                "_int4": "integer", "_int8": "bigint", "_int2": "smallint",
                "_bool": "boolean", "_numeric": "numeric", "_jsonb": "jsonb"}


def column_schema(data_type: str, udt_name: str, nullable: bool) -> dict[str, Any]:
    if data_type == "ARRAY":
        items = TYPE_MAP.get(_ARRAY_ITEMS.get(udt_name, ""), {})
        base: dict[str, Any] = {"type": "array", "items": dict(items)}
    elif data_type in TYPE_MAP:
        base = dict(TYPE_MAP[data_type])
    else:
        raise ValueError(f"no Debezium JSON mapping for Postgres type {data_type} ({udt_name}); "
                         "add it to streaming/topics/generate.py TYPE_MAP")
    if nullable:
        base["type"] = [base["type"], "null"]
    return base


def table_schema(conn: psycopg.Connection, table: str) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT column_name, data_type, udt_name, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position", (SCHEMA, table)).fetchall()
    if not rows:
        raise LookupError(f"table {SCHEMA}.{table} not found: is the database migrated?")
    pk = [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (f"{SCHEMA}.{table}",)).fetchall()]
    excluded = set(EXCLUDED_COLUMNS.get(table, ()))
    columns = {name: column_schema(dtype, udt, nullable)
               for name, dtype, udt, nullable in rows if name not in excluded}
    topic = cdc_topic(table)
    row_ref = {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/row"}]}
    return {
        "$schema": JSON_SCHEMA,
        "$id": f"urn:ece:topic:{topic}:value",
        "title": f"{topic} value (Debezium envelope)",
        "description": f"Generated from {SCHEMA}.{table} by streaming/topics/generate.py; "
                       "do not edit. Tombstones (null values) follow deletes and are not "
                       "validated.",
        "type": "object",
        "required": ["before", "after", "source", "op", "ts_ms"],
        "properties": {
            "before": row_ref,
            "after": row_ref,
            "op": {"enum": ["r", "c", "u", "d"]},
            "ts_ms": {"type": "integer"},
            "source": {
                "type": "object",
                "required": ["lsn", "txId", "ts_ms", "table", "schema", "db"],
                "properties": {
                    "lsn": {"type": "integer"},
                    "txId": {"type": ["integer", "null"]},
                    "ts_ms": {"type": "integer"},
                    "table": {"const": table},
                    "schema": {"const": SCHEMA},
                    "db": {"type": "string"},
                    "snapshot": {"type": ["string", "null"]},
                    "connector": {"const": "postgresql"},
                },
            },
            "transaction": {"type": ["object", "null"]},
        },
        "$defs": {
            "row": {
                "type": "object",
                "additionalProperties": False,
                "required": list(columns),
                "properties": columns,
            },
            "key": {
                "type": "object",
                "additionalProperties": False,
                "required": pk,
                "properties": {c: columns[c] for c in pk},
            },
        },
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.topics.generate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="database URL (default: ECE settings)")
    parser.add_argument("--check", action="store_true", help="fail if files are out of date")
    args = parser.parse_args(argv)
    url = args.url or get_settings().database_url
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    stale = []
    with psycopg.connect(url) as conn:
        for table in CAPTURED_TABLES:
            text = render(table_schema(conn, table))
            path = schema_path(table)
            if path.exists() and path.read_text() == text:
                continue
            stale.append(path.name)
            if not args.check:
                path.write_text(text)
    verb = "out of date" if args.check else "written"
    print(f"{len(stale)} schema file(s) {verb}: {', '.join(stale) or '-'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
