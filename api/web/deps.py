"""HTTP pieces every domain router shares: dependency aliases and conditional GETs.

One definition of "the caller's audit context", "the card cache", the paging
query parameters and the ETag/If-None-Match rule keeps routers to translating
HTTP, and keeps every resource answering 304 the same way.
"""

import hashlib
from typing import Annotated, Any

from fastapi import Depends, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.audit.chain import AuditContext
from api.auth.deps import user_context
from api.core.cache import CardCache, get_card_cache
from api.core.pagination import MAX_LIMIT

UserCtx = Annotated[AuditContext, Depends(user_context)]
Cache = Annotated[CardCache, Depends(get_card_cache)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` or any listed tag, ``W/`` prefixes ignored."""
    if not if_none_match:
        return False
    candidates = [part.strip().removeprefix("W/") for part in if_none_match.split(",")]
    return "*" in candidates or tag in candidates


def conditional_json(body: Any, tag: str, if_none_match: str | None,
                     status_code: int = 200) -> Response:
    """The JSON body with its ETag, or 304 when the client already holds that tag."""
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if status_code == 200 and etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(jsonable_encoder(body), status_code=status_code, headers=headers)


def etag_response(payload: Any, if_none_match: str | None) -> Response:
    """Like :func:`conditional_json` with a tag hashed from the rendered body.

    For resources whose representation changes without a row write (an offer turns
    ``expired`` with the clock), a row version would miss the change; the bytes don't.
    """
    content = jsonable_encoder(payload)
    tag = '"' + hashlib.sha256(JSONResponse(content).body).hexdigest()[:32] + '"'
    return conditional_json(content, tag, if_none_match)
