"""The card cache contract: the API (database rows) and Flink (CDC images) write one document."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from ece.contracts import card_cache

CARD_ID = uuid.UUID("6f1c9b8e-0000-4000-8000-000000000001")
OWNER_ID = uuid.UUID("6f1c9b8e-0000-4000-8000-000000000002")
CREATED = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
UPDATED = datetime(2026, 12, 1, 8, 30, 0, tzinfo=UTC)


def _db_row() -> dict[str, object]:
    return {"id": CARD_ID, "name": "Ember Drake", "set_name": "Genesis", "number": "001",
            "rarity": "legendary", "edition": None, "attributes": {"power": 9},
            "owner_id": OWNER_ID, "status": "active", "image_object_key": "img/1",
            "created_at": CREATED, "updated_at": UPDATED}


def _cdc_after() -> dict[str, object]:
    """The same row as Debezium writes it: strings, epoch micros and JSON text."""
    return {**_db_row(), "id": str(CARD_ID), "owner_id": str(OWNER_ID),
            "attributes": json.dumps({"power": 9}),
            "created_at": int(CREATED.timestamp() * 1_000_000),
            "updated_at": UPDATED.isoformat()}


def test_database_row_and_cdc_image_give_the_same_document() -> None:
    assert card_cache.card_document(_db_row()) == card_cache.card_document(_cdc_after())


def test_document_fields_are_the_public_card() -> None:
    doc = card_cache.card_document(_db_row())
    assert doc["id"] == str(CARD_ID)
    assert doc["created_at"] == "2026-11-30T12:00:00.123456Z"
    assert doc["updated_at"] == "2026-12-01T08:30:00Z"
    assert doc["image_url"] == f"/api/v1/cards/{CARD_ID}/image"
    assert doc["attributes"] == {"power": 9}
    without_image = card_cache.card_document({**_db_row(), "image_object_key": None})
    assert without_image["image_url"] is None


def test_entry_round_trips_with_its_version() -> None:
    doc = card_cache.card_document(_db_row())
    assert card_cache.decode_entry(card_cache.encode_entry(doc, 7)) == (doc, 7)


def test_compare_and_set_arguments_name_both_keys() -> None:
    doc = card_cache.card_document(_db_row())
    keys, args = card_cache.set_if_newer_args(doc, 3, 600)
    assert keys == [card_cache.document_key(str(CARD_ID)), card_cache.floor_key(str(CARD_ID))]
    assert args[0] == 3 and args[2] == 600
    assert card_cache.decode_entry(str(args[1])) == (doc, 3)
    assert card_cache.etag(str(CARD_ID), 3) == f'"{CARD_ID}.3"'
