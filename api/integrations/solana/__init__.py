"""Solana client for ECE's NFTs (Token-2022 + on-mint metadata), for any RPC endpoint.

Used by the mint saga (``mint_nft``, ``find_mint``, ``deterministic_mint_keypair``),
by ownership changes (``transfer_nft``) and by reconciliation (``onchain_owner(s)``).
"""

from api.integrations.solana.errors import (
    ChainError,
    ChainUnavailable,
    RpcRejected,
    TransactionExpired,
    TransactionFailed,
)
from api.integrations.solana.layouts import TokenMetadata
from api.integrations.solana.nft import (
    MintState,
    deterministic_mint_keypair,
    find_mint,
    mint_nft,
    onchain_owner,
    onchain_owners,
    transfer_nft,
)
from api.integrations.solana.token2022 import TOKEN_2022_PROGRAM_ID, associated_token_address
from api.integrations.solana.transport import send_and_confirm

__all__ = [
    "TOKEN_2022_PROGRAM_ID",
    "ChainError",
    "ChainUnavailable",
    "MintState",
    "RpcRejected",
    "TokenMetadata",
    "TransactionExpired",
    "TransactionFailed",
    "associated_token_address",
    "deterministic_mint_keypair",
    "find_mint",
    "mint_nft",
    "onchain_owner",
    "onchain_owners",
    "send_and_confirm",
    "transfer_nft",
]
