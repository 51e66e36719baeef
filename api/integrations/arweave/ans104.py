"""ANS-104 bundles: many signed data items carried by one Arweave transaction.

Why: one v2 transaction per NFT costs a gateway round trip, an anchor, a price
lookup and a block slot each; a bundle carries hundreds of metadata documents in
one ``POST /tx`` while every item keeps its own id (and so its own URI). This is
what production bundlers (Irys, Turbo) accept, and arlocal 1.1.66 unbundles a
``Bundle-Format: binary`` / ``Bundle-Version: 2.0.0`` transaction posted with
its data inline (``routes/transaction.js``), so ``GET /<item id>`` serves the item.

Binary layout (little-endian), signature type 1 = Arweave RSA-PSS 4096 / SHA-256:

    item:   u16 sig type | signature (512) | owner (512) | target flag [+32] |
            anchor flag [+32] | u64 tag count | u64 tag bytes | tags (Avro) | data
    bundle: u256 item count | (u256 size, 32-byte id) per item | items

An item is signed over the deep hash of ``["dataitem", "1", "1", owner, target,
anchor, tags, data]``; its id is ``base64url(sha256(signature))``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from api.integrations.arweave.deephash import deep_hash
from api.integrations.arweave.encoding import b64url_decode, b64url_encode
from api.integrations.arweave.transaction import Tag, Tags, normalize_tags
from api.integrations.arweave.wallet import Wallet, verify

SIGNATURE_TYPE_ARWEAVE = 1
SIGNATURE_LENGTH = 512
OWNER_LENGTH = 512
BUNDLE_TAGS = (("Bundle-Format", "binary"), ("Bundle-Version", "2.0.0"))


def _zigzag(value: int) -> bytes:
    """An Avro ``long``: zigzag then base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_zigzag(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def encode_tags(tags: Sequence[Tag]) -> bytes:
    """Avro ``array<record{name: string, value: string}>`` as arbundles' ``serializeTags``."""
    if not tags:
        return b""
    out = bytearray(_zigzag(len(tags)))
    for tag in tags:
        for text in (tag.name, tag.value):
            raw = text.encode()
            out += _zigzag(len(raw)) + raw
    out += _zigzag(0)
    return bytes(out)


def decode_tags(raw: bytes) -> tuple[Tag, ...]:
    tags: list[Tag] = []
    pos = 0
    while pos < len(raw):
        count, pos = _read_zigzag(raw, pos)
        if count == 0:
            break
        if count < 0:  # a block with its byte size first
            count = -count
            _, pos = _read_zigzag(raw, pos)
        for _ in range(count):
            fields = []
            for _field in range(2):
                length, pos = _read_zigzag(raw, pos)
                fields.append(raw[pos : pos + length].decode())
                pos += length
            tags.append(Tag(fields[0], fields[1]))
    return tuple(tags)


@dataclass(frozen=True)
class DataItem:
    """One signed data item (binary form in :attr:`raw`)."""

    owner: bytes
    target: bytes
    anchor: bytes
    tags: tuple[Tag, ...]
    data: bytes
    signature: bytes = b""

    @property
    def id(self) -> str:
        return b64url_encode(self.raw_id)

    @property
    def raw_id(self) -> bytes:
        return hashlib.sha256(self.signature).digest()

    def signature_data(self) -> bytes:
        return deep_hash([
            b"dataitem", b"1", str(SIGNATURE_TYPE_ARWEAVE).encode(), self.owner,
            self.target, self.anchor, encode_tags(self.tags), self.data,
        ])

    @property
    def raw(self) -> bytes:
        tag_bytes = encode_tags(self.tags)
        parts = [struct.pack("<H", SIGNATURE_TYPE_ARWEAVE), self.signature, self.owner]
        for optional in (self.target, self.anchor):
            parts.append(b"\x01" + optional if optional else b"\x00")
        parts += [struct.pack("<QQ", len(self.tags), len(tag_bytes)), tag_bytes, self.data]
        return b"".join(parts)

    def verify(self) -> bool:
        """The signature is the owner's over these fields (the id follows from it)."""
        return len(self.signature) == SIGNATURE_LENGTH and verify(
            b64url_encode(self.owner), self.signature_data(), self.signature
        )

    @classmethod
    def parse(cls, raw: bytes) -> DataItem:
        (sig_type,) = struct.unpack_from("<H", raw, 0)
        if sig_type != SIGNATURE_TYPE_ARWEAVE:
            raise ValueError(f"unsupported data item signature type {sig_type}")
        pos = 2
        signature = raw[pos : pos + SIGNATURE_LENGTH]
        pos += SIGNATURE_LENGTH
        owner = raw[pos : pos + OWNER_LENGTH]
        pos += OWNER_LENGTH
        optional: list[bytes] = []
        for _ in range(2):
            present = raw[pos]
            pos += 1
            optional.append(raw[pos : pos + 32] if present else b"")
            pos += 32 if present else 0
        count, size = struct.unpack_from("<QQ", raw, pos)
        pos += 16
        tags = decode_tags(raw[pos : pos + size])
        if len(tags) != count:
            raise ValueError(f"data item declares {count} tags but holds {len(tags)}")
        return cls(owner, optional[0], optional[1], tags, raw[pos + size :], signature)


def sign_item(data: bytes, tags: Tags | None, wallet: Wallet, *, anchor: bytes = b"") -> DataItem:
    """A data item for ``data`` signed by ``wallet`` (a few ms of RSA: run off the loop)."""
    if anchor and len(anchor) != 32:
        raise ValueError("a data item anchor is exactly 32 bytes")
    item = DataItem(b64url_decode(wallet.owner), b"", anchor, normalize_tags(tags), bytes(data))
    signature = wallet.sign(item.signature_data())
    return DataItem(item.owner, item.target, item.anchor, item.tags, item.data, signature)


def bundle_bytes(items: Sequence[DataItem]) -> bytes:
    """The binary bundle of ``items`` (each keeps its id), ready to be a transaction's data."""
    raws = [item.raw for item in items]
    header = [len(items).to_bytes(32, "little")]
    for item, raw in zip(items, raws, strict=True):
        header += [len(raw).to_bytes(32, "little"), item.raw_id]
    return b"".join(header + raws)


def parse_bundle(raw: bytes) -> list[DataItem]:
    """The items of a binary bundle; raises ValueError when a header id is not the item's."""
    count = int.from_bytes(raw[:32], "little")
    offset = 32 + 64 * count
    items = []
    for index in range(count):
        entry = 32 + 64 * index
        size = int.from_bytes(raw[entry : entry + 32], "little")
        item = DataItem.parse(raw[offset : offset + size])
        if item.raw_id != raw[entry + 32 : entry + 64]:
            raise ValueError(f"bundle entry {index}: header id is not the item's id")
        items.append(item)
        offset += size
    return items


def pack(items: Sequence[DataItem], max_bytes: int) -> list[list[DataItem]]:
    """Split ``items`` into bundles of at most ``max_bytes`` (one item may exceed it alone)."""
    groups: list[list[DataItem]] = []
    size = 0
    for item in items:
        item_size = 64 + len(item.raw)
        if not groups or size + item_size > max_bytes:
            groups.append([])
            size = 32
        groups[-1].append(item)
        size += item_size
    return groups
