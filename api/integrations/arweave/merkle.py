"""Chunking and the data root: the merkle tree Arweave commits a transaction's data to.

A v2 transaction signs ``data_root`` instead of the data itself, which is what lets
large payloads be uploaded later in 256 KiB chunks, each proven against the root by
its ``data_path``. The root must equal what gateways compute from the bytes, so this is
a line-by-line port of arweave-js ``lib/merkle.ts`` (itself a port of ``ar_merkle.erl``),
including its quirks:

* chunks are at most 256 KiB; when the remainder after a full chunk would be below
  32 KiB, the last two chunks are rebalanced (the second-to-last gets ``ceil(rest/2)``);
* a leaf id is ``H(H(data_hash) + H(note(max_byte_range)))``; a branch id is
  ``H(H(left.id) + H(right.id) + H(note(left.max_byte_range)))``;
* an odd node at the end of a layer is promoted unchanged;
* notes are 32-byte big-endian integers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
NOTE_SIZE = 32


def _sha256(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def note(value: int) -> bytes:
    """An offset as the 32-byte big-endian "note" the merkle tree hashes."""
    return value.to_bytes(NOTE_SIZE, "big")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One slice of the data: its SHA-256 and its byte range within the whole."""

    data_hash: bytes
    min_byte_range: int
    max_byte_range: int


@dataclass(frozen=True, slots=True)
class Proof:
    """What a gateway needs to accept one chunk: its end offset and merkle path."""

    offset: int
    proof: bytes


@dataclass(frozen=True, slots=True)
class _Node:
    id: bytes
    max_byte_range: int
    data_hash: bytes | None = None  # leaves only
    byte_range: int = 0  # branches only: the split point (left child's max)
    left: _Node | None = None
    right: _Node | None = None


@dataclass(frozen=True, slots=True)
class TransactionChunks:
    """The data root plus every chunk and its proof, ready for ``POST /chunk``."""

    data_root: bytes
    chunks: list[Chunk]
    proofs: list[Proof]


def chunk_data(data: bytes) -> list[Chunk]:
    """Split ``data`` the way arweave-js does (with the last-two-chunks rebalancing)."""
    chunks: list[Chunk] = []
    rest = memoryview(data)
    cursor = 0
    while len(rest) >= MAX_CHUNK_SIZE:
        size = MAX_CHUNK_SIZE
        next_size = len(rest) - MAX_CHUNK_SIZE
        if 0 < next_size < MIN_CHUNK_SIZE:
            size = -(-len(rest) // 2)  # ceil: keep the final chunk above the minimum
        piece = rest[:size]
        cursor += size
        chunks.append(Chunk(_sha256(piece), cursor - size, cursor))
        rest = rest[size:]
    chunks.append(Chunk(_sha256(rest), cursor, cursor + len(rest)))
    return chunks


def _leaves(chunks: list[Chunk]) -> list[_Node]:
    return [
        _Node(
            id=_sha256(_sha256(c.data_hash) + _sha256(note(c.max_byte_range))),
            max_byte_range=c.max_byte_range,
            data_hash=c.data_hash,
        )
        for c in chunks
    ]


def _branch(left: _Node, right: _Node | None) -> _Node:
    if right is None:
        return left
    return _Node(
        id=_sha256(_sha256(left.id) + _sha256(right.id) + _sha256(note(left.max_byte_range))),
        max_byte_range=right.max_byte_range,
        byte_range=left.max_byte_range,
        left=left,
        right=right,
    )


def _build_layers(nodes: list[_Node]) -> _Node:
    while len(nodes) > 1:
        nodes = [
            _branch(nodes[i], nodes[i + 1] if i + 1 < len(nodes) else None)
            for i in range(0, len(nodes), 2)
        ]
    return nodes[0]


def _proofs(node: _Node, path: bytes = b"") -> list[Proof]:
    if node.data_hash is not None:
        return [Proof(node.max_byte_range - 1, path + node.data_hash + note(node.max_byte_range))]
    assert node.left is not None and node.right is not None
    partial = path + node.left.id + node.right.id + note(node.byte_range)
    return _proofs(node.left, partial) + _proofs(node.right, partial)


def data_root(data: bytes) -> bytes:
    """The 32-byte merkle root of ``data`` (what ``data_root`` carries, decoded)."""
    return _build_layers(_leaves(chunk_data(data))).id


def transaction_chunks(data: bytes) -> TransactionChunks:
    """Root, chunks and proofs; a trailing zero-length chunk is dropped as arweave-js does."""
    chunks = chunk_data(data)
    root = _build_layers(_leaves(chunks))
    proofs = _proofs(root)
    if chunks[-1].max_byte_range == chunks[-1].min_byte_range:
        chunks, proofs = chunks[:-1], proofs[:-1]
    return TransactionChunks(root.id, chunks, proofs)
