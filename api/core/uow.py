"""The unit of work: one transaction per write, committed in exactly one place.

Every write of the API and of the workers goes through a :class:`UnitOfWork`
wrapped around one session:

* **one transaction**: services take the unit of work, do their reads and writes
  on ``uow.session`` and return; they never commit. The audit event is written in
  the same transaction (``api.audit.chain.record``, a plain INSERT: the sealer
  chains committed events later), row locks follow the global lock order documented in
  ``api/cards/ownership.py``;
* **before commit**: hooks that must write in the same transaction, last of all
  (``api.web.idempotency`` stores the rendered answer of an ``Idempotency-Key``
  request here, so an answer is stored if and only if the work is committed);
* **COMMIT**: :meth:`UnitOfWork.commit` is the only ``session.commit()`` of
  ``api/`` (the NFT workers' short steps reach it through :func:`commit`);
* **after commit**: hooks that follow the committed change outside the database,
  before the HTTP answer leaves: the card cache refresh
  (``CardCache.put_after_commit``), auction end hints, later notifications. A
  failing hook is logged, never raised: the change is committed and is the truth;
* **on rollback**: hooks that undo side effects done ahead of the transaction
  (an image object written before the row that points at it).

Who commits: for HTTP, the :data:`UowDep` dependency (``scope="function"``)
commits when the endpoint returned, after the response body was rendered and
before it is sent, so a client never sees an answer for work that was not
committed, nor reads the previous card version afterwards; an exception (any
``Problem``) rolls everything back. Workers open ``async with UnitOfWork(session)``
around each transaction. The few operations that must keep a write and still
refuse (a failed login is audited, then 401) call :meth:`UnitOfWork.commit`
themselves before raising.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Annotated, Any

import structlog
from fastapi import Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import get_session
from api.core.jsonout import FastJSONResponse, to_jsonable

log = structlog.get_logger(__name__)

Hook = Callable[[], Awaitable[Any]]


class UnitOfWork:
    """One transaction on ``session`` with its hooks (reusable: each commit starts afresh)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.answer: tuple[int, Any] | None = None
        self._before: list[Hook] = []
        self._after: list[Hook] = []
        self._undo: list[Hook] = []

    # --- hooks --------------------------------------------------------------------

    def before_commit(self, hook: Hook) -> None:
        """Run ``hook`` inside the transaction, right before COMMIT."""
        self._before.append(hook)

    def after_commit(self, hook: Hook) -> None:
        """Run ``hook`` once the transaction committed (errors are logged, not raised)."""
        self._after.append(hook)

    def on_rollback(self, hook: Hook) -> None:
        """Run ``hook`` if this transaction does not commit."""
        self._undo.append(hook)

    # --- the answer of an HTTP write ---------------------------------------------------

    def reply(self, body: Any, status_code: int = 200) -> Response:
        """The JSON answer of this write, rendered once: the response, and what a
        before-commit hook (idempotency) stores with the work."""
        content = None if body is None else to_jsonable(body)
        self.answer = (status_code, content)
        if content is None:
            return Response(status_code=status_code)
        return FastJSONResponse(content, status_code=status_code)

    # --- ending the transaction ------------------------------------------------------

    async def commit(self) -> None:
        """Before-commit hooks, COMMIT, after-commit hooks; a failure rolls back."""
        try:
            while self._before:
                await self._before.pop(0)()
            await self.session.commit()
        except BaseException:
            await self.rollback()
            raise
        after, self._after, self._undo = self._after, [], []
        for hook in after:
            try:
                await hook()
            except Exception as exc:  # the change is committed: report, carry on
                log.error("after_commit_hook_failed", hook=repr(hook), error=str(exc))

    async def rollback(self) -> None:
        """Undo the transaction and run the on-rollback hooks (never raises)."""
        undo, self._before, self._after, self._undo = self._undo, [], [], []
        try:
            await self.session.rollback()
        except Exception as exc:  # a dead connection: the transaction is gone anyway
            log.warning("rollback_failed", error=str(exc))
        for hook in undo:
            try:
                await hook()
            except Exception as exc:
                log.warning("on_rollback_hook_failed", hook=repr(hook), error=str(exc))

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()


async def commit(session: AsyncSession) -> None:
    """Commit a step that has no hooks (the NFT workers' short transactions)."""
    await UnitOfWork(session).commit()


async def unit_of_work(
    session: Annotated[AsyncSession, Depends(get_session)],
) -> AsyncIterator[UnitOfWork]:
    """FastAPI dependency: the request's write, committed when the endpoint returned."""
    async with UnitOfWork(session) as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
"""The request's unit of work (on the request's session, committed by the dependency)."""
