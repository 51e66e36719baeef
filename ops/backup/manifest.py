"""The backup manifest: every file with its size and sha256; verify and list backups."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK = 1 << 20

Say = Callable[[str], None]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_file(source: Path, target: Path) -> None:
    """Copy contents and mode (a private secret stays private)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    shutil.copymode(source, target)


def walk(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, sorted (none if it does not exist)."""
    if not root.exists():
        return
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


@dataclass
class Progress:
    """Prints "<what>: n/total (MB)" at most every ``every`` files or at the end."""

    say: Say
    what: str
    total: int
    every: int = 200
    done: int = 0
    size: int = 0

    def step(self, size: int) -> None:
        self.done += 1
        self.size += size
        if self.done % self.every == 0 or self.done == self.total:
            self.say(f"{self.what}: {self.done}/{self.total} files, {self.size / 1e6:.1f} MB")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Written last, atomically: a folder with a manifest is a complete backup."""
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a complete backup (no {MANIFEST})")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown backup format {manifest.get('format')!r}")
    return manifest


def checksums(folder: Path, say: Say, what: str = "checksums") -> dict[str, dict[str, Any]]:
    """``{relative path: {size, sha256}}`` of every file under ``folder`` but the manifest."""
    files = [p for p in walk(folder) if p.name not in (MANIFEST, f".{MANIFEST}.tmp")]
    progress = Progress(say, what, len(files))
    entries = {}
    for path in files:
        size = path.stat().st_size
        entries[path.relative_to(folder).as_posix()] = {"size": size, "sha256": sha256_of(path)}
        progress.step(size)
    return entries


def verify(folder: Path, say: Say) -> list[str]:
    """Problems found (empty: every file is there with its size and checksum, nothing extra)."""
    manifest = read_manifest(folder)
    expected: dict[str, dict[str, Any]] = manifest["files"]
    problems = []
    progress = Progress(say, "verifying", len(expected))
    for name, entry in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"size differs: {name} ({path.stat().st_size} != {entry['size']})")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"checksum differs: {name}")
        progress.step(entry["size"])
    extra = {p.relative_to(folder).as_posix() for p in walk(folder)} - set(expected) - {MANIFEST}
    problems += [f"not in the manifest: {name}" for name in sorted(extra)]
    return problems


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    created_at: datetime | None
    size: int
    files: int
    complete: bool


def list_backups(root: Path) -> list[BackupInfo]:
    """Every backup folder directly under ``root``, oldest first (incomplete ones too)."""
    found: list[BackupInfo] = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError):
            size = sum(p.stat().st_size for p in walk(folder))
            found.append(BackupInfo(folder, None, size, 0, False))
            continue
        files = manifest["files"]
        found.append(BackupInfo(folder, datetime.fromisoformat(manifest["created_at"]),
                                sum(int(e["size"]) for e in files.values()), len(files), True))
    return sorted(found, key=lambda b: (b.created_at is None, b.created_at or datetime.min,
                                        b.path))
