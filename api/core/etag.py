"""The one ETag rule of the API, and conditional GETs (``If-None-Match`` -> 304).

Rule: a strong tag ``"<resource id>.<revision>"``, where the revision is

* the counter the row carries when it has one that every write bumps: a card's
  ``version`` (so the tag is ``ece.contracts.card_cache.etag``, the one the Flink
  cache job agrees on) or a card image's object key (each upload has its own), else
* a digest of the rendered JSON body: for rows without a version, and for
  representations that change with no row write at all (a trade offer turns
  ``expired`` with the clock; a row version would miss that, the bytes don't).

Every single-resource GET answers through :func:`conditional_json` (or
:func:`conditional` for other bodies): ``ETag`` and ``Cache-Control: no-cache`` on
200 and 304 alike, and 304 when ``If-None-Match`` lists the tag, ``*``, or the tag
with a ``W/`` prefix (RFC 9110 weak comparison).
"""

import hashlib
from typing import Any

from fastapi import Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse


def tag(resource_id: object, revision: object) -> str:
    """The strong tag of one revision of one resource."""
    return f'"{resource_id}.{revision}"'


def body_revision(rendered: bytes) -> str:
    """The revision of a representation without a row version: its bytes' digest."""
    return hashlib.sha256(rendered).hexdigest()[:32]


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` or any listed tag, ``W/`` prefixes ignored."""
    if not if_none_match:
        return False
    candidates = [part.strip().removeprefix("W/") for part in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


def _headers(etag: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": "no-cache", **(extra or {})}


def not_modified(etag: str, headers: dict[str, str] | None = None) -> Response:
    """The 304: the same validator headers as the 200, no body."""
    return Response(status_code=304, headers=_headers(etag, headers))


def tagged(response: Response, etag: str, headers: dict[str, str] | None = None) -> Response:
    """``response`` carrying its tag (for answers built before the check is possible)."""
    response.headers.update(_headers(etag, headers))
    return response


def conditional(
    response: Response, etag: str, if_none_match: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``response`` with its tag, or 304 when the client holds it (only a 200 becomes
    a 304). Check :func:`matches` first when the body is costly to produce."""
    if response.status_code == 200 and matches(if_none_match, etag):
        return not_modified(etag, headers)
    return tagged(response, etag, headers)


def conditional_json(
    body: Any,
    if_none_match: str | None,
    *,
    resource_id: object,
    revision: object | None = None,
    status_code: int = 200,
) -> Response:
    """A JSON resource under the rule: ``revision`` when the row has one, else the
    digest of the rendered body."""
    response = JSONResponse(jsonable_encoder(body), status_code=status_code)
    if revision is None:
        revision = body_revision(bytes(response.body))
    return conditional(response, tag(resource_id, revision), if_none_match)
