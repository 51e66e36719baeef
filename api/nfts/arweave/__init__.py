"""Arweave storage for NFT metadata: wallets, v2 transactions, and a gateway client.

Built on ``cryptography`` + ``httpx`` only (the PyPI Arweave clients are stale and
disagree with arweave-js); every algorithm here is checked against arweave-js in
``tests/arweave``.
"""

from api.nfts.arweave.client import ArweaveClient, TxStatus
from api.nfts.arweave.deephash import deep_hash
from api.nfts.arweave.errors import (
    ArweaveError,
    GatewayUnavailable,
    InsufficientFunds,
    NotFound,
    NotLocalGateway,
    TransactionRejected,
)
from api.nfts.arweave.merkle import chunk_data, data_root, transaction_chunks
from api.nfts.arweave.transaction import Tag, Transaction
from api.nfts.arweave.wallet import Wallet, address_of

__all__ = [
    "ArweaveClient",
    "ArweaveError",
    "GatewayUnavailable",
    "InsufficientFunds",
    "NotFound",
    "NotLocalGateway",
    "Tag",
    "Transaction",
    "TransactionRejected",
    "TxStatus",
    "Wallet",
    "address_of",
    "chunk_data",
    "data_root",
    "deep_hash",
    "transaction_chunks",
]
