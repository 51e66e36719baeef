"""Arweave storage for NFT metadata: wallets, v2 transactions, and a gateway client.

Built on ``cryptography`` + ``httpx`` only (the PyPI Arweave clients are stale and
disagree with arweave-js); every algorithm here is checked against arweave-js in
``tests/arweave``.
"""

from api.integrations.arweave.client import ArweaveClient, TxStatus
from api.integrations.arweave.deephash import deep_hash
from api.integrations.arweave.errors import (
    ArweaveError,
    GatewayUnavailable,
    InsufficientFunds,
    NotFound,
    NotLocalGateway,
    TransactionRejected,
)
from api.integrations.arweave.merkle import chunk_data, data_root, transaction_chunks
from api.integrations.arweave.transaction import Tag, Transaction
from api.integrations.arweave.wallet import Wallet, address_of

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
