"""One way to write a file that holds a secret: private, atomic, durable.

Every secret the platform keeps on disk (generated development secrets, KEK
versions, platform key envelopes, the warehouse shell's init file) is written by
:func:`write_private`, so none of them can be seen half-written, readable by
others for an instant, or lost by a crash right after the write returned.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, data: str | bytes, *, replace: bool = False) -> bool:
    """Write ``data`` to ``path``, readable by its owner only; True when it was written.

    The bytes go to a temporary file beside ``path`` (created ``O_EXCL`` with mode
    0600, so never readable by others), which is fsynced and then put in place:
    ``replace=False`` hard-links it, which never replaces an existing file (False
    is returned then, and the existing file is left alone: the first of two
    concurrent writers wins); ``replace=True`` renames it over ``path`` atomically
    (a reader sees the old file or the new one, never a mix). The directory is
    fsynced afterwards so the new name survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return True


def fsync_directory(folder: Path) -> None:
    """Make the directory entries of ``folder`` (a new or renamed file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
