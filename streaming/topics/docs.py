"""Render ``docs/topics.md`` from the topic list and the JSON Schemas.

    uv run python -m streaming.topics.docs [--check]

The page is generated, never edited by hand: the topic names come from
:mod:`ece.contracts.topics` (``CAPTURED_TABLES`` and every ``*_topic()`` derived-topic
function), the fields from the schema files in ``streaming/topics/schemas/``.
``tests/unit/test_topics_doc.py`` fails while the page is stale; ``--check`` exits 1
in the same case. Needs no database and no broker.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ece.contracts import topics as contract
from streaming.topics import SCHEMA_DIR, schema_path

REPO = Path(__file__).resolve().parents[2]
DOC_PATH = REPO / "docs" / "topics.md"
COMMAND = "uv run python -m streaming.topics.docs"


def derived_topics() -> list[tuple[str, str]]:
    """``(topic, description)`` for every derived-topic function, in definition order."""
    found: list[tuple[str, str]] = []
    for name, fn in vars(contract).items():
        if not (name.endswith("_topic") and callable(fn)) or name == "cdc_topic":
            continue
        params = list(inspect.signature(fn).parameters)
        if params != ["prefix"]:
            continue
        found.append((fn(), _first_line(inspect.getdoc(fn))))
    return found


def _first_line(doc: str | None) -> str:
    """The first paragraph on one line, Sphinx roles (``:mod:`x```) as plain code."""
    text = " ".join((doc or "").split("\n\n")[0].split())
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _json_type(spec: dict[str, Any]) -> tuple[str, bool]:
    """A column's JSON rendering as ``(type text, nullable)``."""
    kind = spec.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    nullable = "null" in kinds
    text = " or ".join(k for k in kinds if k != "null") or "null"
    if text == "array":
        text = f"array of {_json_type(spec.get('items') or {})[0]}"
    if "enum" in spec:
        text += " (" + ", ".join(f"`{v}`" for v in spec["enum"]) + ")"
    if "const" in spec:
        text = f"`{json.dumps(spec['const'])}`"
    return text, nullable


def _notes(spec: dict[str, Any]) -> str:
    parts = []
    if "format" in spec:
        parts.append(spec["format"])
    if "contentEncoding" in spec:
        parts.append(spec["contentEncoding"])
    if "description" in spec:
        parts.append(spec["description"])
    return "; ".join(parts)


def _fields_table(props: dict[str, Any], required: list[str], key: list[str]) -> Iterator[str]:
    yield "| field | JSON type | null | notes |"
    yield "| --- | --- | --- | --- |"
    for name, spec in props.items():
        text, nullable = _json_type(spec)
        notes = _notes(spec)
        if name in key:
            notes = f"key; {notes}" if notes else "key"
        if name not in required:
            notes = f"optional; {notes}" if notes else "optional"
        yield f"| `{name}` | {_cell(text)} | {'yes' if nullable else ''} | {_cell(notes)} |"


def _cdc_section(table: str) -> Iterator[str]:
    topic = contract.cdc_topic(table)
    path = schema_path(table)
    yield f"### `{topic}`"
    yield ""
    if not path.exists():
        yield f"No schema file yet (`{path.relative_to(REPO)}`): run "
        yield "`uv run python -m streaming.topics.generate` against a migrated database."
        yield ""
        return
    schema = json.loads(path.read_text())
    row = schema["$defs"]["row"]
    key = list(schema["$defs"]["key"].get("required", []))
    excluded = contract.EXCLUDED_COLUMNS.get(table, ())
    yield (
        f"Table `{contract.SCHEMA}.{table}`; key " + ", ".join(f"`{k}`" for k in key) + "; "
        f"schema [`{path.name}`](../{path.relative_to(REPO)})."
    )
    if excluded:
        yield "Never on the topic: " + ", ".join(f"`{c}`" for c in excluded) + "."
    yield ""
    yield "Row fields (`before` and `after`):"
    yield ""
    yield from _fields_table(row["properties"], row.get("required", []), key)
    yield ""


def _other_schemas() -> list[Path]:
    """Schema files that are not a CDC topic's (derived topics, when they have one)."""
    cdc = {schema_path(t).name for t in contract.CAPTURED_TABLES}
    return sorted(p for p in SCHEMA_DIR.glob("*.json") if p.name not in cdc)


def _schema_section(path: Path) -> Iterator[str]:
    schema = json.loads(path.read_text())
    yield f"### `{path.stem}`"
    yield ""
    title = schema.get("title") or schema.get("description")
    if title:
        yield _cell(title)
        yield ""
    yield f"Schema [`{path.name}`](../{path.relative_to(REPO)})."
    yield ""
    props = schema.get("properties") or {}
    if props:
        yield from _fields_table(props, schema.get("required", []), [])
        yield ""


def _dlq_fields() -> list[str]:
    """The fields of a dead-letter record, read from the function that writes them."""
    try:
        from ece.contracts.dlq import dlq_value
    except ImportError:
        return []
    fn: Callable[..., str] = dlq_value
    args = {name: None for name in inspect.signature(fn).parameters}
    try:
        return list(json.loads(fn(**args)))
    except Exception:  # a signature that needs real values: leave the list out
        return []


def render() -> str:
    """The whole page, deterministic (no dates), so a stale copy is easy to spot."""
    tables = contract.CAPTURED_TABLES
    derived = derived_topics()
    schemas = {p.stem for p in _other_schemas()}
    out: list[str] = [
        "# Kafka topics",
        "",
        f"<!-- Generated by `{COMMAND}` from ece/contracts/topics.py and",
        "     streaming/topics/schemas/. Do not edit: tests/unit/test_topics_doc.py fails",
        "     when this page is stale. -->",
        "",
        "Every value is JSON (UTF-8), one event per message. Topic names derive from one",
        f"prefix (`ECE_TOPIC_PREFIX`, default `{contract.DEFAULT_PREFIX}`); the names below",
        "use the default.",
        "",
        "## Change data capture (Debezium)",
        "",
        f"One topic per captured table, `{contract.cdc_topic('<table>')}`, written by",
        "`streaming/cdc` from the PostgreSQL publication "
        f"`{contract.PUBLICATION}` (slot `{contract.SLOT}`).",
        "",
        "- **Key**: the row's primary key as a JSON object, e.g. `{\"id\": \"…\"}`, so one",
        "  row's changes stay in order within a partition.",
        "- **Value**: the Debezium envelope `{before, after, source, op, ts_ms}`. `op` is",
        "  `r` (snapshot read), `c`, `u` or `d`; `source` carries `lsn`, `txId`, `ts_ms`,",
        "  `table`, `schema`, `db`. `before` and `after` are the row (or null), with the",
        "  fields listed below; no other field may appear, so a leaked column fails",
        "  validation.",
        "- **Tombstone**: a delete is followed by a message with a null value.",
        "- **Delivery**: at least once, in commit order per key. Deduplicate on",
        "  (`source.lsn`, table, key).",
        "- **Types**: `numeric` is a decimal string, `jsonb` is JSON text, `bytea` is",
        "  base64, `timestamptz` an RFC 3339 string, UUIDs strings.",
        "",
        "| topic | table | key |",
        "| --- | --- | --- |",
    ]
    for table in tables:
        key = ""
        if schema_path(table).exists():
            key_spec = json.loads(schema_path(table).read_text())["$defs"]["key"]
            key = ", ".join(f"`{k}`" for k in key_spec.get("required", []))
        out.append(f"| `{contract.cdc_topic(table)}` | `{table}` | {key} |")
    out += [
        "",
        "Tables that hold secrets (sessions, custody keys, idempotency records, push",
        "subscriptions, wallet challenges) are not captured.",
        "",
        "## Derived topics",
        "",
        "Written by the stream jobs (`streaming/jobs`) and the workers (`api/workers`).",
        "",
        "| topic | what | schema |",
        "| --- | --- | --- |",
    ]
    for name, what in derived:
        schema = f"[`{name}.json`](#{name.replace('.', '')})" if name in schemas else "-"
        out.append(f"| `{name}` | {_cell(what) or '-'} | {schema} |")
    dlq_fields = _dlq_fields()
    if dlq_fields:
        out += [
            "",
            f"A dead-letter record on `{contract.dlq_topic()}` is keyed by its source topic and",
            "holds " + ", ".join(f"`{f}`" for f in dlq_fields) + " (`ece/contracts/dlq.py`):",
            "the raw payload is kept so it can be inspected and replayed once fixed.",
        ]
    out += ["", "## CDC topic schemas", ""]
    for table in tables:
        out += list(_cdc_section(table))
    others = _other_schemas()
    if others:
        out += ["## Derived topic schemas", ""]
        for path in others:
            out += list(_schema_section(path))
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND.removeprefix("uv run "),
                                     description=_first_line(__doc__))
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/topics.md is stale")
    args = parser.parse_args(argv)
    text = render()
    current = DOC_PATH.read_text() if DOC_PATH.exists() else None
    if current == text:
        print(f"{DOC_PATH.relative_to(REPO)} is up to date")
        return 0
    if args.check:
        print(f"{DOC_PATH.relative_to(REPO)} is stale: run `{COMMAND}`")
        return 1
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text)
    print(f"{DOC_PATH.relative_to(REPO)} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
