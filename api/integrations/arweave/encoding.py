"""Base64url without padding: the only encoding Arweave uses on the wire.

Every binary field of a transaction (owner, signature, data_root, tags, chunks) is
base64url with the ``=`` padding stripped; gateways reject padded or standard base64.
"""

from __future__ import annotations

import base64


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; re-adds the padding Python insists on."""
    raw = text.encode("ascii")
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def int_to_b64url(value: int) -> str:
    """Big-endian minimal-length encoding, as JWK (RFC 7518) requires for RSA numbers."""
    length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def b64url_to_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")
