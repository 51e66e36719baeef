"""Version-2 Arweave transactions: build, sign, verify, serialise.

Only the data-carrying subset ECE needs (no AR transfers: ``target`` is empty and
``quantity`` is ``"0"``). The signature covers the deep hash of the fields below, in
this order, exactly as arweave-js ``Transaction.getSignatureData`` builds it:

    ["2", owner, target, quantity, reward, last_tx, [[name, value], ...], data_size, data_root]

The id is ``base64url(sha256(signature))``, so any change to a signed field changes
the id and invalidates the signature — which is why the gateway can reject tampering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from api.integrations.arweave.deephash import deep_hash
from api.integrations.arweave.encoding import b64url_decode, b64url_encode
from api.integrations.arweave.merkle import MAX_CHUNK_SIZE, TransactionChunks, transaction_chunks
from api.integrations.arweave.wallet import Wallet, address_of, verify

Tags = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Tag:
    """A transaction tag (UTF-8 name and value; base64url on the wire)."""

    name: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {
            "name": b64url_encode(self.name.encode()),
            "value": b64url_encode(self.value.encode()),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, str]) -> Tag:
        return cls(b64url_decode(raw["name"]).decode(), b64url_decode(raw["value"]).decode())


def normalize_tags(tags: Tags | None) -> tuple[Tag, ...]:
    """Accept a dict or (name, value) pairs; keep order (it is signed). Empty is refused
    because gateways reject tags without a name or value."""
    pairs = list(tags.items()) if isinstance(tags, Mapping) else list(tags or ())
    result = tuple(Tag(str(name), str(value)) for name, value in pairs)
    for tag in result:
        if not tag.name or not tag.value:
            raise ValueError(f"tag names and values must be non-empty: {tag!r}")
    return result


@dataclass(frozen=True)
class Transaction:
    """A v2 data transaction; ``signature``/``id`` are empty until :meth:`signed`."""

    owner: str
    last_tx: str
    reward: str
    data_size: str
    data_root: str
    tags: tuple[Tag, ...] = ()
    target: str = ""
    quantity: str = "0"
    data: bytes = field(default=b"", repr=False)
    signature: str = ""
    id: str = ""
    format: int = 2
    chunks: TransactionChunks | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls, data: bytes, *, owner: str, last_tx: str, reward: int | str, tags: Tags | None = None
    ) -> Transaction:
        """An unsigned transaction committing to ``data`` through its merkle root."""
        chunks = transaction_chunks(data) if data else None
        return cls(
            owner=owner,
            last_tx=last_tx,
            reward=str(int(reward)),
            data_size=str(len(data)),
            data_root=b64url_encode(chunks.data_root) if chunks else "",
            tags=normalize_tags(tags),
            data=bytes(data),
            chunks=chunks,
        )

    def signature_data(self) -> bytes:
        """The 48-byte message that is signed (the deep hash of the signed fields)."""
        if self.format != 2:
            raise ValueError("only format-2 transactions are supported")
        return deep_hash(
            [
                str(self.format).encode(),
                b64url_decode(self.owner),
                b64url_decode(self.target),
                self.quantity.encode(),
                self.reward.encode(),
                b64url_decode(self.last_tx),
                [[t.name.encode(), t.value.encode()] for t in self.tags],
                self.data_size.encode(),
                b64url_decode(self.data_root),
            ]
        )

    def signed(self, wallet: Wallet) -> Transaction:
        """A copy signed by ``wallet`` (which must own it) with its id set."""
        if wallet.owner != self.owner:
            raise ValueError("the wallet does not own this transaction")
        signature = wallet.sign(self.signature_data())
        return replace(
            self,
            signature=b64url_encode(signature),
            id=b64url_encode(hashlib.sha256(signature).digest()),
        )

    def verify(self) -> bool:
        """True when the id matches the signature and the signature matches the fields."""
        if not self.signature:
            return False
        signature = b64url_decode(self.signature)
        if b64url_encode(hashlib.sha256(signature).digest()) != self.id:
            return False
        return verify(self.owner, self.signature_data(), signature)

    @property
    def owner_address(self) -> str:
        return address_of(self.owner)

    @property
    def inline(self) -> bool:
        """Small data travels inside ``POST /tx``; larger data goes chunk by chunk.

        Same rule as the arweave-js uploader: a single chunk fits in the body.
        """
        return len(self.data) <= MAX_CHUNK_SIZE

    def to_json(self, *, include_data: bool | None = None) -> dict[str, Any]:
        """The body of ``POST /tx`` (data inline only when :attr:`inline`)."""
        with_data = self.inline if include_data is None else include_data
        return {
            "format": self.format,
            "id": self.id,
            "last_tx": self.last_tx,
            "owner": self.owner,
            "tags": [t.to_json() for t in self.tags],
            "target": self.target,
            "quantity": self.quantity,
            "data": b64url_encode(self.data) if with_data else "",
            "data_size": self.data_size,
            "data_root": self.data_root,
            "reward": self.reward,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Transaction:
        """Parse a transaction as returned by ``GET /tx/{id}`` or made by arweave-js."""
        return cls(
            format=int(raw.get("format", 2)),
            id=raw.get("id", ""),
            last_tx=raw.get("last_tx", ""),
            owner=raw["owner"],
            tags=tuple(Tag.from_json(t) for t in raw.get("tags", [])),
            target=raw.get("target", ""),
            quantity=str(raw.get("quantity", "0")),
            data=b64url_decode(raw.get("data", "") or ""),
            data_size=str(raw.get("data_size", "0")),
            data_root=raw.get("data_root", ""),
            reward=str(raw.get("reward", "0")),
            signature=raw.get("signature", ""),
        )

    def chunk_bodies(self) -> list[dict[str, str]]:
        """The ``POST /chunk`` bodies for this transaction's data, in order."""
        if self.chunks is None:
            return []
        bodies = []
        for chunk, proof in zip(self.chunks.chunks, self.chunks.proofs, strict=True):
            bodies.append(
                {
                    "data_root": self.data_root,
                    "data_size": self.data_size,
                    "data_path": b64url_encode(proof.proof),
                    "offset": str(proof.offset),
                    "chunk": b64url_encode(self.data[chunk.min_byte_range : chunk.max_byte_range]),
                }
            )
        return bodies
