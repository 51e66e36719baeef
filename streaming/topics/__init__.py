"""The CDC event contract: one JSON Schema per topic ``ece.public.<table>``.

The schema files under ``schemas/`` are generated from the migrated database by
``python -m streaming.topics.generate`` (see that module), so the contract follows the
migration and adding a table is: migration, ``CAPTURED_TABLES``, regenerate.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ece.contracts.topics import CAPTURED_TABLES, cdc_topic

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def schema_path(table: str) -> Path:
    return SCHEMA_DIR / f"{cdc_topic(table)}.json"


@lru_cache
def load_schema(table: str) -> dict[str, Any]:
    """The JSON Schema of a message *value* on ``ece.public.<table>`` (tombstones excluded)."""
    if table not in CAPTURED_TABLES:
        raise KeyError(f"{table!r} is not a captured table (ece.contracts.topics)")
    path = schema_path(table)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `python -m streaming.topics.generate`")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def load_key_schema(table: str) -> dict[str, Any]:
    """The JSON Schema of a message *key*: the primary key columns as a JSON object."""
    value = load_schema(table)
    return {"$schema": value["$schema"], "$ref": "#/$defs/key", "$defs": value["$defs"]}


def validator(table: str, *, key: bool = False) -> Any:
    """A ``jsonschema`` validator for the value (or key) of one topic."""
    from jsonschema import Draft202012Validator

    schema = load_key_schema(table) if key else load_schema(table)
    return Draft202012Validator(schema)
