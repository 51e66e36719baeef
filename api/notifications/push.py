"""Sending one notification to one browser push subscription (RFC 8030 + VAPID).

The message is small on purpose (``{id, seq, kind, title}``): the service worker
shows the title and the page fetches the rest through the API, so nothing more
than a title ever travels through a third-party push service.

Headers:

* ``TTL`` (``ECE_PUSH_TTL_SECONDS``): how long the push service keeps it for an
  offline browser;
* ``Urgency``: ``high`` for the kinds a user acts on within minutes (outbid, won,
  ending soon), ``normal`` otherwise (lets phones batch them and save battery);
* ``Topic`` for ``outbid``: a newer outbid for the same auction replaces an
  undelivered older one. RFC 8030 allows at most 32 characters of the URL-safe
  base64 alphabet, so it is ``outbid-`` + the auction id's 16 bytes in base64url
  (22 characters, 29 in all): ``outbid-`` + 32 hex digits would be 39;
* ``Content-Type: application/octet-stream`` (the body is aes128gcm ciphertext;
  some push services, web-push-testing among them, refuse a push without it).

Outcome of a send: ``sent``, ``gone`` (404/410: the subscription is dead, delete
it), or :class:`PushFailed` after retries (429, 5xx, connection errors; retried
with backoff through :mod:`ece.retry`) or at once (other 4xx: retrying cannot help).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush_async

from ece.retry import retry_async

HIGH_URGENCY = frozenset({"outbid", "auction_won", "auction_ending_soon"})
GONE = frozenset({404, 410})
TOPIC_MAX = 32

Outcome = Literal["sent", "gone"]


@dataclass(frozen=True)
class Subscription:
    """A ``push_subscriptions`` row as the push service needs it."""

    id: uuid.UUID
    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class PushFailed(RuntimeError):
    """The push service did not take the push (after retries where they make sense)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


def message(notification_id: uuid.UUID, seq: int, kind: str, payload: dict[str, Any]) -> bytes:
    """The push body before encryption: ``{id, seq, kind, title}``."""
    title = payload.get("title")
    return json.dumps({"id": str(notification_id), "seq": seq, "kind": kind,
                       "title": title if isinstance(title, str) else kind.replace("_", " ")},
                      separators=(",", ":")).encode()


def topic(kind: str, payload: dict[str, Any]) -> str | None:
    """``outbid-<auction id, base64url>`` for outbid (a newer one replaces it), else None."""
    if kind != "outbid":
        return None
    try:
        auction = uuid.UUID(str(payload.get("auction_id")))
    except ValueError:
        return None
    value = "outbid-" + base64.urlsafe_b64encode(auction.bytes).rstrip(b"=").decode()
    assert len(value) <= TOPIC_MAX
    return value


def headers(kind: str, payload: dict[str, Any], ttl_seconds: int) -> dict[str, str]:
    result = {
        "TTL": str(ttl_seconds),
        "Urgency": "high" if kind in HIGH_URGENCY else "normal",
        "Content-Type": "application/octet-stream",
    }
    name = topic(kind, payload)
    if name is not None:
        result["Topic"] = name
    return result


def retryable(exc: BaseException, _attempt: int = 0) -> bool:
    """Worth another try: rate limited, a server error, or the network failed."""
    if isinstance(exc, PushFailed):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return False


class PushSender:
    """Sends pushes over one HTTP connection pool, signing with the platform VAPID key."""

    def __init__(self, vapid: Vapid02, subject: str, *, ttl_seconds: int,
                 timeout_seconds: float = 10.0, attempts: int = 4, base_delay: float = 0.5,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.vapid = vapid
        self.subject = subject
        self.ttl = ttl_seconds
        self.timeout = timeout_seconds
        self.attempts = attempts
        self.base_delay = base_delay
        self._session = session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _once(self, subscription: Subscription, body: bytes,
                    extra: dict[str, str]) -> Outcome:
        try:
            await webpush_async(
                subscription.info(), data=body.decode(), vapid_private_key=self.vapid,
                vapid_claims={"sub": self.subject}, ttl=self.ttl, headers=dict(extra),
                timeout=self.timeout, aiohttp_session=self._http(),
            )
        except WebPushException as exc:
            status = exc.status_code
            if status in GONE:
                return "gone"
            raise PushFailed(f"push service answered {status}: {exc.message}"[:300],
                             status) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PushFailed(f"{type(exc).__name__}: {exc}"[:300], None) from None
        return "sent"

    async def send(self, subscription: Subscription, notification_id: uuid.UUID, seq: int,
                   kind: str, payload: dict[str, Any]) -> Outcome:
        """``sent`` or ``gone``; raises :class:`PushFailed` once retries are used up."""
        body = message(notification_id, seq, kind, payload)
        extra = headers(kind, payload, self.ttl)
        return await retry_async(
            lambda: self._once(subscription, body, extra),
            what=f"web push to subscription {subscription.id}",
            should_retry=retryable, attempts=self.attempts, base=self.base_delay, cap=10.0,
            sleep=asyncio.sleep,
        )
