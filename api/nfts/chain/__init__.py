"""Solana client for ECE's NFTs (Token-2022 + on-mint metadata), for any RPC endpoint.

Used by the mint saga (``mint_nft``, ``find_mint``, ``deterministic_mint_keypair``),
by ownership changes (``transfer_nft``) and by reconciliation (``onchain_owner(s)``).
"""

from api.nfts.chain.errors import (
    ChainError,
    ChainUnavailable,
    RpcRejected,
    TransactionExpired,
    TransactionFailed,
)
from api.nfts.chain.layouts import TokenMetadata
from api.nfts.chain.nft import (
    MintState,
    deterministic_mint_keypair,
    find_mint,
    mint_nft,
    onchain_owner,
    onchain_owners,
    transfer_nft,
)
from api.nfts.chain.token2022 import TOKEN_2022_PROGRAM_ID, associated_token_address
from api.nfts.chain.transport import send_and_confirm

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
