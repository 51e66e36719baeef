"""``ece.private_files.write_private``: private from the first byte, atomic, durable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ece.private_files import write_private


def test_a_new_file_is_private_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key"
    assert write_private(path, "value") is True
    assert path.read_text() == "value"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["key"]


def test_without_replace_the_first_writer_wins(tmp_path: Path) -> None:
    path = tmp_path / "key"
    assert write_private(path, b"first")
    assert write_private(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_replace_swaps_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_private(path, "old")
    before = path.stat().st_ino
    assert write_private(path, "new", replace=True)
    assert path.read_text() == "new" and path.stat().st_ino != before  # a rename, not a rewrite
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_the_file_and_its_directory_are_fsynced(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_private(tmp_path / "key", "value", replace=True)
    assert synced == ["file", "dir"]  # the data first, then the name that points at it


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    write_private(tmp_path / "key", "old")

    def broken(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_private(tmp_path / "key", "new", replace=True)
    assert (tmp_path / "key").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
