"""Request body cap: 1 MiB, 5 MiB for card images; 413 ``payload_too_large``.

A pure ASGI middleware, so the cap holds before any route, dependency or JSON
parser sees a byte:

* a declared ``Content-Length`` over the cap is refused at once, nothing read;
* a body without one (chunked) is counted while it streams, and the read that
  passes the cap raises :class:`BodyTooLarge` instead of returning the chunk, so
  at most one chunk beyond the cap is ever held. The exception is an
  ``HTTPException`` (FastAPI re-raises those from body parsing, and the problem
  handler answers 413 ``payload_too_large``); one that escapes to here is answered
  the same way.

``PUT /cards/{id}/image`` has the larger cap and checks its declared length
itself (``api.cards.sniff.read_capped``), after authorisation: a stranger's
oversized upload is a 403, as ``api.cards.images`` promises. Its stream is still
counted here.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.problems import Problem, problem_response

MiB = 1024 * 1024
MAX_BODY_BYTES = 1 * MiB
MAX_IMAGE_BODY_BYTES = 5 * MiB  # api.cards.sniff.MAX_IMAGE_BYTES
IMAGE_PATH = re.compile(r"^(/api/v1)?/cards/[^/]+/image/?$")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(413, f"request bodies are at most {limit} bytes here")


def _problem(limit: int) -> Problem:
    return Problem(413, "payload_too_large", f"request bodies are at most {limit} bytes here")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        image = scope["method"] == "PUT" and IMAGE_PATH.match(scope["path"]) is not None
        limit = MAX_IMAGE_BODY_BYTES if image else MAX_BODY_BYTES
        declared = _declared_length(scope)
        if not image and declared is not None and declared > limit:
            await problem_response(_problem(limit), scope["path"])(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await problem_response(_problem(limit), scope["path"])(scope, receive, send)
