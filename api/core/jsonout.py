"""JSON answers rendered with orjson (issue 12 P2, issue 14 P1: the hot paths).

Starlette's ``JSONResponse`` renders with the standard library's encoder; orjson
gives the same compact JSON several times faster. A value orjson refuses (an
integer beyond 64 bits, a non-string key) falls back to the standard encoder, so
the answer never depends on which encoder ran.
"""

import json
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel


def dumps(content: Any) -> bytes:
    """Compact UTF-8 JSON of ``content`` (JSON-ready values: see :func:`to_jsonable`)."""
    try:
        return orjson.dumps(content)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(content, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()


def to_jsonable(body: Any) -> Any:
    """``body`` as JSON-ready values: pydantic models through their own JSON mode (the
    fast path), anything else through FastAPI's encoder."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", by_alias=True)  # as jsonable_encoder
    return jsonable_encoder(body)


class FastJSONResponse(JSONResponse):
    """A ``JSONResponse`` whose body is rendered by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
