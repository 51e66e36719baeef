"""The chain state behind the RPC server: LiteSVM plus what a node adds around it.

LiteSVM executes transactions but has no slots, no blockhash window, no status
cache and no secondary indexes. A node needs all four, so this class adds them:

- slots advance with wall time (one per ``slot_seconds``) and a new blockhash is
  produced for each new slot observed; every blockhash stays valid for
  ``MAX_PROCESSING_AGE`` slots, as on a validator. LiteSVM's own check (only its
  latest blockhash is valid) is switched off because a client that fetched a
  blockhash just before it changed would otherwise fail at random;
- signature statuses (for getSignatureStatuses) and recent transactions (for
  getTransaction) are remembered, bounded, and saved across restarts (a
  validator keeps its ledger: an audit anchor must stay readable after
  ``make down``/``make up``);
- token accounts are indexed by owner and by mint, so getTokenAccountsByOwner and
  getTokenLargestAccounts need no scan;
- every address a transaction touched is tracked so ``persist`` can save exactly
  the non-program accounts.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import TransactionConfirmationStatus, TransactionStatus

MAX_PROCESSING_AGE = 150  # slots a blockhash stays valid (solana's MAX_PROCESSING_AGE)
TOKEN_PROGRAMS = (
    Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
    Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"),
)
# Owners whose accounts are builtin (programs, sysvars): recreated by LiteSVM, never saved.
BUILTIN_OWNERS = {
    Pubkey.from_string(s)
    for s in (
        "NativeLoader1111111111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
        "Sysvar1111111111111111111111111111111111111",
    )
}
MAX_STATUSES = 200_000
MAX_TRANSACTIONS = 20_000  # getTransaction history, kept across restarts too


@dataclass
class Executed:
    """A transaction that landed, with exactly what getTransaction answers later
    (plain values, so ``ops.localchain.history`` can keep it across restarts)."""

    slot: int
    tx: VersionedTransaction
    err: Any  # a solders TransactionErrorType, None when it succeeded
    fee: int
    logs: list[str]
    compute_units: int
    pre_balances: list[int]
    post_balances: list[int]
    block_time: int


def _is_token_account(owner: Pubkey, data: bytes) -> bool:
    if owner not in TOKEN_PROGRAMS:
        return False
    return len(data) == 165 or (len(data) > 165 and data[165] == 2)


class LocalChain:
    """LiteSVM with slots, a blockhash window, a status cache and token indexes."""

    def __init__(self, slot_seconds: float = 0.4, start_slot: int = 1) -> None:
        self.svm = LiteSVM().with_blockhash_check(False)
        self.slot_seconds = slot_seconds
        self._t0 = time.monotonic()
        self._slot0 = start_slot
        self.slot = start_slot
        self.svm.warp_to_slot(start_slot)
        self.blockhash = self.svm.latest_blockhash()
        self.genesis_hash = self.blockhash
        self._recent: OrderedDict[Hash, int] = OrderedDict({self.blockhash: self.slot})
        self.statuses: OrderedDict[Signature, TransactionStatus] = OrderedDict()
        self.transactions: OrderedDict[Signature, Executed] = OrderedDict()
        self.unsaved_history: list[Signature] = []  # landed since the last save
        self.tracked: set[Pubkey] = set()
        self.dirty: set[Pubkey] = set()
        self._token_owner: dict[Pubkey, tuple[Pubkey, Pubkey]] = {}  # account -> (owner, mint)
        self.by_owner: dict[Pubkey, set[Pubkey]] = {}
        self.by_mint: dict[Pubkey, set[Pubkey]] = {}
        self.transaction_count = 0

    # --- slots and blockhashes -------------------------------------------

    def tick(self) -> int:
        """Advance the slot to wall time; a new slot brings a new blockhash."""
        target = self._slot0 + int((time.monotonic() - self._t0) / self.slot_seconds)
        if target > self.slot:
            self.slot = target
            self.svm.warp_to_slot(target)
            self.svm.expire_blockhash()
            self.blockhash = self.svm.latest_blockhash()
            self._recent[self.blockhash] = target
            while self._recent:
                oldest_hash, oldest_slot = next(iter(self._recent.items()))
                if target - oldest_slot <= MAX_PROCESSING_AGE:
                    break
                del self._recent[oldest_hash]
        return self.slot

    def last_valid_block_height(self) -> int:
        return self._recent[self.blockhash] + MAX_PROCESSING_AGE

    def blockhash_valid(self, blockhash: Hash) -> bool:
        issued = self._recent.get(blockhash)
        return issued is not None and self.slot - issued <= MAX_PROCESSING_AGE

    # --- execution --------------------------------------------------------

    def execute(self, tx: VersionedTransaction) -> TransactionMetadata | FailedTransactionMetadata:
        """Run a transaction; remember its status and the accounts it touched."""
        keys = list(tx.message.account_keys)
        pre = [self.svm.get_balance(k) or 0 for k in keys]
        result = self.svm.send_transaction(tx)
        err = result.err() if isinstance(result, FailedTransactionMetadata) else None
        if err is not None and pre == [self.svm.get_balance(k) or 0 for k in keys]:
            # Rejected before execution (bad signature, duplicate, no funds for the
            # fee): nothing landed, so no status, as on a validator.
            return result
        self._landed(tx.signatures[0], err, keys)
        meta = result.meta() if isinstance(result, FailedTransactionMetadata) else result
        self.remember(tx.signatures[0], Executed(
            self.slot, tx, err, meta.fee(), list(meta.logs()), meta.compute_units_consumed(),
            pre, [self.svm.get_balance(k) or 0 for k in keys], int(time.time()),
        ))
        self.unsaved_history.append(tx.signatures[0])
        return result

    def remember(self, signature: Signature, executed: Executed) -> None:
        """Keep a landed transaction for getTransaction (the newest ``MAX_TRANSACTIONS``)."""
        self.transactions[signature] = executed
        while len(self.transactions) > MAX_TRANSACTIONS:
            self.transactions.popitem(last=False)

    def airdrop(self, to: Pubkey, lamports: int) -> TransactionMetadata | FailedTransactionMetadata:
        result = self.svm.airdrop(to, lamports)
        if isinstance(result, TransactionMetadata):
            self._landed(result.signature(), None, [self.svm.airdrop_pubkey(), to])
        return result

    def _landed(self, signature: Signature, err: object, keys: list[Pubkey]) -> None:
        self.transaction_count += 1
        self.statuses[signature] = TransactionStatus(
            self.slot, None, err, err, TransactionConfirmationStatus.Finalized  # type: ignore[arg-type]
        )
        while len(self.statuses) > MAX_STATUSES:
            self.statuses.popitem(last=False)
        for key in keys:
            self.tracked.add(key)
            self.dirty.add(key)
            self.reindex(key)

    # --- accounts and indexes ---------------------------------------------

    def get_account(self, key: Pubkey) -> Account | None:
        account = self.svm.get_account(key)
        if account is None or (account.lamports == 0 and not account.data):
            return None  # a closed account reads as absent, as on a validator
        return account

    def reindex(self, key: Pubkey) -> None:
        """Keep the owner/mint indexes right for one account after it changed."""
        old = self._token_owner.pop(key, None)
        if old is not None:
            self.by_owner.get(old[0], set()).discard(key)
            self.by_mint.get(old[1], set()).discard(key)
        account = self.get_account(key)
        if account is None or not _is_token_account(account.owner, account.data):
            return
        data = account.data
        mint, owner = Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64])
        self._token_owner[key] = (owner, mint)
        self.by_owner.setdefault(owner, set()).add(key)
        self.by_mint.setdefault(mint, set()).add(key)

    def token_amount(self, key: Pubkey) -> int:
        account = self.get_account(key)
        return 0 if account is None else int(struct.unpack_from("<Q", account.data, 64)[0])

    def savable(self, key: Pubkey) -> Account | None:
        """The account to persist, or None when it is gone or builtin."""
        account = self.get_account(key)
        if account is None or account.executable or account.owner in BUILTIN_OWNERS:
            return None
        return account

    def restore(self, key: Pubkey, account: Account) -> None:
        """Put a saved account back (at start) and index it."""
        self.svm.set_account(key, account)
        self.tracked.add(key)
        self.reindex(key)

    def restart_slot_at(self, slot: int) -> None:
        """Continue the slot count of a previous run so slots never go backwards."""
        self._slot0 = self.slot = slot + 1
        self._t0 = time.monotonic()
        self.svm.warp_to_slot(self.slot)
        self.svm.expire_blockhash()
        self.blockhash = self.svm.latest_blockhash()
        self._recent = OrderedDict({self.blockhash: self.slot})
