"""Decoders for Token-2022 mint and token accounts (base layout + TLV extensions).

Why not ``solders.token.state.Mint.from_bytes``: it rejects accounts longer than
the base layout, and every Token-2022 NFT mint carries extensions. We decode the
first 82 (mint) / 165 (token account) bytes ourselves and walk the TLV area for
the TokenMetadata extension.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

from api.integrations.solana.token2022 import (
    ACCOUNT_BASE_LEN,
    ACCOUNT_TYPE_ACCOUNT,
    ACCOUNT_TYPE_MINT,
    ACCOUNT_TYPE_OFFSET,
    EXT_METADATA_POINTER,
    EXT_TOKEN_METADATA,
    MINT_BASE_LEN,
)


@dataclass(frozen=True)
class MintInfo:
    """The base mint fields (spl-token state::Mint)."""

    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None


@dataclass(frozen=True)
class TokenAccountInfo:
    """The base token-account fields we need (spl-token state::Account)."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    state: int  # 0 uninitialized, 1 initialized, 2 frozen


@dataclass(frozen=True)
class TokenMetadata:
    """The TokenMetadata extension (spl-token-metadata-interface state)."""

    update_authority: Pubkey | None
    mint: Pubkey
    name: str
    symbol: str
    uri: str
    additional: tuple[tuple[str, str], ...] = ()


def _coption_pubkey(data: bytes, offset: int) -> Pubkey | None:
    """COption<Pubkey> in account state: u32 tag then 32 bytes."""
    (tag,) = struct.unpack_from("<I", data, offset)
    return Pubkey.from_bytes(data[offset + 4 : offset + 36]) if tag == 1 else None


def _nonzero_pubkey(raw: bytes) -> Pubkey | None:
    return None if raw == bytes(32) else Pubkey.from_bytes(raw)


def decode_mint(data: bytes) -> MintInfo:
    if len(data) < MINT_BASE_LEN:
        raise ValueError(f"not a mint: {len(data)} bytes")
    if len(data) > MINT_BASE_LEN and (
        len(data) <= ACCOUNT_TYPE_OFFSET or data[ACCOUNT_TYPE_OFFSET] != ACCOUNT_TYPE_MINT
    ):
        raise ValueError("not a mint: extended account is not of type Mint")
    supply, decimals, initialized = struct.unpack_from("<QB?", data, 36)
    return MintInfo(
        mint_authority=_coption_pubkey(data, 0),
        supply=supply,
        decimals=decimals,
        is_initialized=initialized,
        freeze_authority=_coption_pubkey(data, 46),
    )


def is_token_account(data: bytes) -> bool:
    """True for a token account of either token program (base or extended layout)."""
    if len(data) == ACCOUNT_BASE_LEN:
        return True
    return len(data) > ACCOUNT_BASE_LEN and data[ACCOUNT_TYPE_OFFSET] == ACCOUNT_TYPE_ACCOUNT


def decode_token_account(data: bytes) -> TokenAccountInfo:
    if not is_token_account(data):
        raise ValueError(f"not a token account: {len(data)} bytes")
    (amount,) = struct.unpack_from("<Q", data, 64)
    return TokenAccountInfo(
        mint=Pubkey.from_bytes(data[0:32]),
        owner=Pubkey.from_bytes(data[32:64]),
        amount=amount,
        state=data[108],
    )


def extensions(data: bytes) -> dict[int, bytes]:
    """The TLV entries after the account-type byte: extension type -> value bytes."""
    out: dict[int, bytes] = {}
    pos = ACCOUNT_TYPE_OFFSET + 1
    while pos + 4 <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, pos)
        if ext_type == 0:  # Uninitialized: the rest is padding
            break
        out[ext_type] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return out


def _read_str(raw: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", raw, pos)
    start = pos + 4
    return raw[start : start + n].decode(), start + n


def decode_token_metadata(value: bytes) -> TokenMetadata:
    update_authority = _nonzero_pubkey(value[0:32])
    mint = Pubkey.from_bytes(value[32:64])
    name, pos = _read_str(value, 64)
    symbol, pos = _read_str(value, pos)
    uri, pos = _read_str(value, pos)
    (count,) = struct.unpack_from("<I", value, pos)
    pos += 4
    extra: list[tuple[str, str]] = []
    for _ in range(count):
        key, pos = _read_str(value, pos)
        val, pos = _read_str(value, pos)
        extra.append((key, val))
    return TokenMetadata(update_authority, mint, name, symbol, uri, tuple(extra))


def mint_metadata(data: bytes) -> TokenMetadata | None:
    """The TokenMetadata stored on the mint account, if any."""
    value = extensions(data).get(EXT_TOKEN_METADATA)
    return decode_token_metadata(value) if value is not None else None


def metadata_pointer(data: bytes) -> tuple[Pubkey | None, Pubkey | None] | None:
    """(authority, metadata address) of the MetadataPointer extension, if present."""
    value = extensions(data).get(EXT_METADATA_POINTER)
    if value is None:
        return None
    return _nonzero_pubkey(value[0:32]), _nonzero_pubkey(value[32:64])
