"""The object store interface: whole-object put/get/delete plus listing by prefix.

Why so small: it is exactly what S3, GCS, MinIO and a local folder all do well,
so swapping the backend is a new class, not a new contract. Objects are
immutable by convention (callers write a new key per version and delete the old
one after their database commit); ``put`` is atomic (a reader sees the old bytes
or the new ones, never half), which is all that key rotation's in-place rewrap
needs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512


class ObjectNotFound(KeyError):
    """No object under that key."""


class InvalidObjectKey(ValueError):
    """A key that could escape the store or would not be portable to S3."""


def validate_key(key: str) -> str:
    """Keys are ``/``-separated segments of ``[A-Za-z0-9._-]`` (no ``..``, no leading dot)."""
    if len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.match(key):
        raise InvalidObjectKey(f"invalid object key {key[:80]!r}")
    return key


class ObjectStore(ABC):
    """Async so that a network-backed store never blocks the event loop."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing any previous object."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` when absent."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; absent is not an error (deletes are retried blindly)."""

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (for sweeps such as key rotation)."""
