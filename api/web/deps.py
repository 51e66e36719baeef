"""Dependency aliases every domain router shares.

One definition of "the caller's audit context", "the card cache" and the paging
query parameters keeps routers to translating HTTP. The request's unit of work is
``api.core.uow.UowDep`` (``api.web.idempotency.IdempotentWrite`` with a claimed
``Idempotency-Key``); the ETag rule is ``api.core.etag``.
"""

from typing import Annotated

from fastapi import Depends, Query

from api.audit.chain import AuditContext
from api.auth.deps import user_context
from api.core.cache import CardCache, get_card_cache
from api.core.pagination import MAX_LIMIT

UserCtx = Annotated[AuditContext, Depends(user_context)]
Cache = Annotated[CardCache, Depends(get_card_cache)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]
