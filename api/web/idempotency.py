"""Idempotency keys for POSTs that move money or ownership (``Idempotency-Key`` header).

Why: a client that lost the answer to "buy this card" must be able to retry
without buying it twice. The rule (docs/rest.md, Idempotency-Key): the same key with the
same body returns the first answer again (same status and body) and does nothing
more; the same key with another body is 409 ``idempotency_key_reused``. Keys are
scoped per user (primary key ``(user_id, key)``) and expire after 24 hours.

How it holds under concurrency and failure:

* The dependency inserts the key row (``status_code`` NULL) in the request's own
  transaction *before* the work. A concurrent request with the same key blocks on
  the primary key until the first transaction ends: if it committed, the waiter
  reads the stored answer and replays it; if it rolled back, the waiter's insert
  goes through and it executes the request itself.
* The answer is stored by a before-commit hook of the request's unit of work
  (``api.core.uow``) in the same transaction as the work, right before its
  COMMIT. A request that fails (any ``Problem``, any crash) rolls back and leaves
  no key behind, so a retry runs again; a request that succeeded always has its
  answer stored.
* An expired row is taken over by the next request with that key, so correctness
  never depends on :func:`purge_expired` having run (it only keeps the table small).

Using it on a route: take :data:`IdempotentWrite` (the request's unit of work with
the key claimed) instead of ``UowDep`` and answer through ``uow.reply``; services
never see the key::

    from api.web.idempotency import IdempotentWrite

    @router.post("/auctions/{auction_id}/bids", status_code=201, response_model=BidOut)
    async def place_bid(auction_id: uuid.UUID, body: BidIn, uow: IdempotentWrite, ...):
        placed = await service.place_bid(uow, ...)
        return uow.reply(BidOut.model_validate(placed.bid), 201)  # the body that is stored

A replay never reaches the route: the dependency raises :class:`Replayed`, which
the handler registered in ``api.web.app`` (:func:`replay_handler`) turns into the
stored status and body with ``Idempotent-Replayed: true``.

Lock order: the key row comes first of all locks a request takes (see
``api/cards/ownership.py``).
"""

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import ForeignKey, Index, SmallInteger, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from api.auth.deps import CurrentUser
from api.core.db import Base, created_at
from api.core.problems import Problem, conflict, validation_error
from api.core.uow import UnitOfWork, UowDep

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 200
REPLAY_HEADER = "Idempotent-Replayed"


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime]


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of method, path and body; JSON bodies are canonicalised first so that
    whitespace or key order do not make a faithful retry look like another request.
    The path is part of it: one key reused on another listing is another request."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256(f"{method.upper()} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


class Replayed(Exception):
    """The request repeats one already answered: carries the stored answer."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__("idempotent replay")
        self.status_code = status_code
        self.body = body

    def response(self) -> Response:
        headers = {REPLAY_HEADER: "true"}
        if self.body is None:
            return Response(status_code=self.status_code, headers=headers)
        return JSONResponse(self.body, status_code=self.status_code, headers=headers)


async def replay_handler(_request: Request, exc: Exception) -> Response:
    """Exception handler (registered by the app factory): answer a replay."""
    assert isinstance(exc, Replayed)
    return exc.response()


async def store_answer(
    session: AsyncSession, user_id: uuid.UUID, key: str, status_code: int, body: Any
) -> None:
    """Write the answer on the claimed key row (in the work's transaction)."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        .values(status_code=status_code, response_body=body)
    )


async def claim(
    session: AsyncSession, user_id: uuid.UUID, key: str, request_hash: str
) -> None:
    """Insert the key row or find the earlier request that used it.

    Blocks while another transaction holds an uncommitted row for the same key.
    Raises :class:`Replayed` for the same request answered before, 409
    ``idempotency_key_reused`` for another body, 409 ``conflict`` when a committed
    row has no answer (cannot happen: the answer is stored before the single
    COMMIT; reported rather than executing twice).
    """
    for _attempt in range(3):
        inserted = await session.scalar(
            pg_insert(IdempotencyKey)
            .values(
                user_id=user_id,
                key=key,
                request_hash=request_hash,
                expires_at=func.now() + TTL,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(IdempotencyKey.key)
        )
        if inserted is not None:
            return
        row = (
            await session.execute(
                select(
                    IdempotencyKey.request_hash,
                    IdempotencyKey.status_code,
                    IdempotencyKey.response_body,
                    IdempotencyKey.expires_at <= func.now(),
                )
                .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                .with_for_update()
            )
        ).first()
        if row is None:  # purged between our insert and our read: try again
            continue
        stored_hash, status_code, body, expired = row
        if expired:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                .values(
                    request_hash=request_hash,
                    status_code=None,
                    response_body=None,
                    created_at=func.now(),
                    expires_at=func.now() + TTL,
                )
            )
            return
        if stored_hash != request_hash:
            raise conflict(
                "this Idempotency-Key was used for a different request", "idempotency_key_reused"
            )
        if status_code is None:
            raise conflict("a request with this Idempotency-Key has no stored answer yet")
        raise Replayed(status_code, body)
    raise Problem(503, "unavailable", "could not claim the Idempotency-Key; retry")


async def purge_expired(session: AsyncSession, batch: int = 1000) -> int:
    """Delete up to ``batch`` expired keys (caller commits). Rows a request is taking
    over right now are skipped, not waited for."""
    expired = (
        select(IdempotencyKey.user_id, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= func.now())
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    pairs = (await session.execute(expired)).all()
    for user_id, key in pairs:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
    return len(pairs)


def _check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise validation_error(
            f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "msg": "invalid key", "type": "value_error"}],
        )
    return key


async def idempotent_write(
    request: Request,
    uow: UowDep,
    user: CurrentUser,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> UnitOfWork:
    """FastAPI dependency: the request's unit of work with its key claimed (a plain
    unit of work without the header). The route answers with ``uow.reply(...)``;
    that answer is stored right before the COMMIT."""
    if idempotency_key is None:
        return uow
    key = _check_key(idempotency_key)
    fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
    await claim(uow.session, user.id, key, fingerprint)
    user_id = user.id

    async def save() -> None:
        if uow.answer is None:
            raise RuntimeError("an idempotent route must answer with uow.reply()")
        status_code, body = uow.answer
        await store_answer(uow.session, user_id, key, status_code, body)

    uow.before_commit(save)
    return uow


IdempotentWrite = Annotated[UnitOfWork, Depends(idempotent_write)]
