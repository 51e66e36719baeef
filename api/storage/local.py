"""A local-folder :class:`ObjectStore` under ``<data_dir>/objects``.

Atomic writes (:func:`ece.private_files.write_private`): the bytes go to a
private temporary file in the target folder, are fsynced, then renamed over the
key and the folder is fsynced, so a crash leaves either the old object or the new
one and never a torn file. File
I/O runs in a worker thread so a 5 MiB write does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Histogram

from api.storage.base import ObjectNotFound, ObjectStore, validate_key
from ece.private_files import fsync_directory, write_private
from ece.settings import Settings, get_settings

T = TypeVar("T")

STORAGE_CALLS = Counter(
    "ece_storage_operations_total", "Object store operations", ["backend", "op", "result"]
)
STORAGE_LATENCY = Histogram(
    "ece_storage_operation_seconds",
    "Object store operation time",
    ["backend", "op"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
class LocalObjectStore(ObjectStore):
    """Objects as files: key ``cards/<id>/<uuid>`` is ``<root>/cards/<id>/<uuid>``."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    async def _run(self, op: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            result = await asyncio.to_thread(fn)
        except ObjectNotFound:
            STORAGE_CALLS.labels(self.backend, op, "not_found").inc()
            raise
        except Exception:
            STORAGE_CALLS.labels(self.backend, op, "error").inc()
            raise
        STORAGE_CALLS.labels(self.backend, op, "ok").inc()
        STORAGE_LATENCY.labels(self.backend, op).observe(time.perf_counter() - start)
        return result

    def _put(self, key: str, data: bytes) -> None:
        # Images are encrypted before they get here; still written like every other
        # private file: 0600 temp file, fsync, rename over the key, fsync the folder.
        write_private(self.path(key), data, replace=True)

    def _get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def _delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(path.parent)

    def _list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith("."):  # temporary files of writes in progress
                    continue
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def put(self, key: str, data: bytes) -> None:
        await self._run("put", lambda: self._put(key, data))

    async def get(self, key: str) -> bytes:
        return await self._run("get", lambda: self._get(key))

    async def delete(self, key: str) -> None:
        await self._run("delete", lambda: self._delete(key))

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        for key in await self._run("list", lambda: self._list(prefix)):
            yield key


@lru_cache
def _store_for(root: Path) -> LocalObjectStore:
    return LocalObjectStore(root)


def get_object_store(settings: Settings | None = None) -> ObjectStore:
    """The configured store (FastAPI dependency too): ``<data_dir>/objects`` for now."""
    settings = settings or get_settings()
    return _store_for(settings.data_dir / "objects")
