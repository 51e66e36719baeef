"""The hot paths' JSON shortcuts give the bytes the slow path would (issues 12 and 14).

A cached card is answered with the document bytes cut out of the stored entry
(``api.core.cache.split_entry``); writes answer through orjson
(``api.core.jsonout``). If either drifted from what the standard encoder and the
shared cache layout (``ece.contracts.card_cache``) give, clients would see other JSON.
"""

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, Field

from api.core.cache import split_entry
from api.core.jsonout import FastJSONResponse, dumps, to_jsonable
from ece.contracts.card_cache import card_document, encode_entry

NOW = datetime(2026, 12, 1, 18, 0, 0, 123456, tzinfo=UTC)


def _document(**changes: object) -> dict[str, object]:
    row = {
        "id": uuid.UUID(int=7), "name": "Pikachu «illustrator»", "set_name": "Base",
        "number": "58", "rarity": "rare", "edition": None,
        "attributes": {"grade": 9.5, "tags": ["a", "b"], "nested": {"card": "x"}},
        "owner_id": uuid.UUID(int=8), "status": "listed", "image_object_key": None,
        "created_at": NOW, "updated_at": NOW, **changes,
    }
    return card_document(row)


@pytest.mark.parametrize("version", [1, 42, 10**12])
def test_split_entry_returns_the_stored_document_and_its_version(version: int) -> None:
    document = _document()
    body, got = split_entry(encode_entry(document, version).encode())
    assert got == version
    assert json.loads(body) == document


def test_split_entry_is_not_fooled_by_card_keys_inside_the_document() -> None:
    document = _document(name='x,"card":{"evil":1}}')
    body, version = split_entry(encode_entry(document, 3).encode())
    assert (json.loads(body), version) == (document, 3)


def test_split_entry_parses_other_layouts() -> None:
    document = _document()
    other = json.dumps({"card": document, "version": 5}, indent=2).encode()
    body, version = split_entry(other)
    assert (json.loads(body), version) == (document, 5)


class Sample(BaseModel):
    id: uuid.UUID
    at: datetime
    price_cents: int
    kind: str = Field(alias="type")


def test_to_jsonable_matches_fastapis_encoder() -> None:
    from fastapi.encoders import jsonable_encoder

    sample = Sample(id=uuid.UUID(int=1), at=NOW, price_cents=10**15, type="sale")
    assert to_jsonable(sample) == jsonable_encoder(sample)
    assert to_jsonable({"a": [sample]}) == jsonable_encoder({"a": [sample]})


@pytest.mark.parametrize("content", [
    {"name": "Ünïcode ✓", "n": 1, "f": 0.5, "none": None, "list": [1, "2"]},
    {"big": 2**70},  # beyond orjson's 64-bit integers: the standard encoder takes over
])
def test_dumps_is_the_standard_json_of_the_content(content: object) -> None:
    rendered = dumps(content)
    assert json.loads(rendered) == content
    assert FastJSONResponse(content).body == rendered
