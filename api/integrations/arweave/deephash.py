"""Arweave's deep hash: SHA-384 over a tree of byte strings.

A v2 transaction is signed over the deep hash of its fields rather than over their
concatenation, so field boundaries cannot be shifted (``"ab"+"c"`` vs ``"a"+"bc"``)
without changing the hash. The algorithm must match arweave-js bit for bit, or every
signature we make is rejected.

    blob:  H( H("blob" + str(len)) + H(data) )
    list:  acc = H("list" + str(len)); for item: acc = H(acc + deep_hash(item))
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeAlias

DeepHashChunk: TypeAlias = bytes | Sequence["DeepHashChunk"]


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def deep_hash(chunk: DeepHashChunk) -> bytes:
    """The 48-byte deep hash of a blob or of a (nested) list of blobs."""
    if isinstance(chunk, bytes | bytearray | memoryview):
        blob = bytes(chunk)
        tag = _sha384(b"blob" + str(len(blob)).encode())
        return _sha384(tag + _sha384(blob))
    if isinstance(chunk, str):
        # A str is a Sequence too and would recurse forever; Arweave hashes bytes only.
        raise TypeError("deep_hash takes bytes or lists of bytes, not str")
    items = list(chunk)
    acc = _sha384(b"list" + str(len(items)).encode())
    for item in items:
        acc = _sha384(acc + deep_hash(item))
    return acc
