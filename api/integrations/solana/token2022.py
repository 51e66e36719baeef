"""Token-2022 and Associated Token Account instructions, encoded by hand.

Why by hand: solana-py 0.41 ships no SPL helpers and Metaplex is unavailable
offline, so the NFT standard we use is Token-2022 with the MetadataPointer and
TokenMetadata extensions (name, symbol and uri live on the mint account itself).
Each encoder cites the on-chain layout it follows so a reviewer can check it
against spl-token-2022 without running anything.
"""

from __future__ import annotations

import hashlib
import struct

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")

# Sizes from spl-token-2022 state.rs / extension/mod.rs.
MINT_BASE_LEN = 82
ACCOUNT_BASE_LEN = 165
ACCOUNT_TYPE_OFFSET = 165  # byte after the 165-byte "base" region holds the AccountType
ACCOUNT_TYPE_MINT = 1
ACCOUNT_TYPE_ACCOUNT = 2
TLV_HEADER_LEN = 4  # u16 extension type + u16 length
EXT_METADATA_POINTER = 18
EXT_TOKEN_METADATA = 19
METADATA_POINTER_LEN = 64  # OptionalNonZeroPubkey authority + OptionalNonZeroPubkey address

# Token instruction tags (spl-token-2022 instruction.rs TokenInstruction order).
_SET_AUTHORITY = 6
_TRANSFER_CHECKED = 12
_MINT_TO_CHECKED = 14
_INITIALIZE_MINT2 = 20
_METADATA_POINTER_EXTENSION = 39
_METADATA_POINTER_INITIALIZE = 0
AUTHORITY_MINT_TOKENS = 0

# spl-token-metadata-interface: 8-byte discriminators are sha256("<namespace>:<name>")[:8].
TOKEN_METADATA_INITIALIZE = hashlib.sha256(
    b"spl_token_metadata_interface:initialize_account"
).digest()[:8]


def mint_space_with_pointer() -> int:
    """Bytes the mint account must have when ``InitializeMint2`` runs.

    Token-2022 checks the account length equals exactly the extensions initialised
    before InitializeMint, so the TokenMetadata bytes may NOT be allocated up front:
    the metadata instruction reallocates the account itself (but only if its
    lamports already cover the larger size, see ``token_metadata_len``).
    """
    return ACCOUNT_BASE_LEN + 1 + TLV_HEADER_LEN + METADATA_POINTER_LEN


def token_metadata_len(name: str, symbol: str, uri: str) -> int:
    """TLV bytes the TokenMetadata extension adds (borsh: 2 keys, 3 strings, empty vec)."""
    body = 32 + 32 + sum(4 + len(s.encode()) for s in (name, symbol, uri)) + 4
    return TLV_HEADER_LEN + body


def _borsh_str(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("<I", len(raw)) + raw


def _coption_pubkey(key: Pubkey | None) -> bytes:
    """COption<Pubkey> as token instructions pack it: 1-byte tag, then the key if present."""
    return b"\x00" if key is None else b"\x01" + bytes(key)


def _optional_nonzero(key: Pubkey | None) -> bytes:
    """OptionalNonZeroPubkey: all-zero bytes mean None (used by Pod extension data)."""
    return bytes(32) if key is None else bytes(key)


def initialize_metadata_pointer(
    mint: Pubkey, authority: Pubkey | None, metadata_address: Pubkey
) -> Instruction:
    """MetadataPointerInstruction::Initialize; must precede InitializeMint."""
    data = (
        bytes([_METADATA_POINTER_EXTENSION, _METADATA_POINTER_INITIALIZE])
        + _optional_nonzero(authority)
        + _optional_nonzero(metadata_address)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_mint2(
    mint: Pubkey, decimals: int, mint_authority: Pubkey, freeze_authority: Pubkey | None = None
) -> Instruction:
    """InitializeMint2 (no rent sysvar account needed, unlike InitializeMint)."""
    data = (
        bytes([_INITIALIZE_MINT2, decimals])
        + bytes(mint_authority)
        + _coption_pubkey(freeze_authority)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, False, True)])


def initialize_token_metadata(
    mint: Pubkey,
    update_authority: Pubkey,
    mint_authority: Pubkey,
    name: str,
    symbol: str,
    uri: str,
) -> Instruction:
    """spl-token-metadata-interface Initialize, the metadata stored in the mint itself."""
    data = TOKEN_METADATA_INITIALIZE + _borsh_str(name) + _borsh_str(symbol) + _borsh_str(uri)
    accounts = [
        AccountMeta(mint, False, True),  # metadata account (= the mint)
        AccountMeta(update_authority, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(mint_authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def mint_to_checked(
    mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, decimals: int
) -> Instruction:
    data = struct.pack("<BQB", _MINT_TO_CHECKED, amount, decimals)
    accounts = [
        AccountMeta(mint, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(authority, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def set_authority(
    account: Pubkey, current: Pubkey, authority_type: int, new: Pubkey | None
) -> Instruction:
    data = bytes([_SET_AUTHORITY, authority_type]) + _coption_pubkey(new)
    accounts = [AccountMeta(account, False, True), AccountMeta(current, True, False)]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def transfer_checked(
    source: Pubkey, mint: Pubkey, destination: Pubkey, owner: Pubkey, amount: int, decimals: int
) -> Instruction:
    data = struct.pack("<BQB", _TRANSFER_CHECKED, amount, decimals)
    accounts = [
        AccountMeta(source, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(destination, False, True),
        AccountMeta(owner, True, False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def associated_token_address(
    owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_2022_PROGRAM_ID
) -> Pubkey:
    """The ATA: PDA of [owner, token program, mint] under the ATA program."""
    address, _bump = Pubkey.find_program_address(
        [bytes(owner), bytes(token_program), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID
    )
    return address


def create_associated_token_account_idempotent(
    payer: Pubkey, owner: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_2022_PROGRAM_ID
) -> Instruction:
    """ATA CreateIdempotent (tag 1): succeeds when the account already exists."""
    ata = associated_token_address(owner, mint, token_program)
    accounts = [
        AccountMeta(payer, True, True),
        AccountMeta(ata, False, True),
        AccountMeta(owner, False, False),
        AccountMeta(mint, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        AccountMeta(token_program, False, False),
    ]
    return Instruction(ASSOCIATED_TOKEN_PROGRAM_ID, b"\x01", accounts)
