"""Saving and loading the local chain's accounts and signature statuses.

Why a snapshot of touched accounts and not LiteSVM's whole state: LiteSVM
cannot serialise itself, and its program/sysvar accounts are recreated by its
constructor. What a restart must keep is every account transactions wrote
(mints, token accounts, wallets) plus the status cache, so a saga that sent a
transaction before the restart can still confirm it afterwards.

The file is replaced atomically (write to a temp file, fsync, rename), so a
crash mid-save leaves the previous snapshot intact.
"""

from __future__ import annotations

import base64
import json
import os
from itertools import islice
from pathlib import Path

from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction_status import TransactionStatus

from ops.localchain.chain import LocalChain
from ops.localchain.history import History

STATE_FILE = "state.json"
FORMAT_VERSION = 1
# Statuses kept across a restart: enough for in-flight sagas, small enough to rewrite often.
PERSISTED_STATUSES = 20_000


class Snapshotter:
    """Keeps an encoded copy of every saved account so a save re-encodes only dirty ones."""

    def __init__(self, chain: LocalChain, folder: Path) -> None:
        self.chain = chain
        self.folder = folder
        self.path = folder / STATE_FILE
        self.history = History(chain, folder)  # getTransaction answers, across restarts
        self._encoded: dict[str, str] = {}

    def load(self) -> int:
        """Restore the previous run's accounts; returns how many were loaded."""
        if not self.path.exists():
            return 0
        state = json.loads(self.path.read_text())
        if state.get("version") != FORMAT_VERSION:
            raise RuntimeError(f"{self.path}: unknown state format {state.get('version')}")
        for address, encoded in state["accounts"].items():
            self.chain.restore(
                Pubkey.from_string(address), Account.from_bytes(base64.b64decode(encoded))
            )
            self._encoded[address] = encoded
        for signature, status in state.get("statuses", {}).items():
            self.chain.statuses[Signature.from_string(signature)] = TransactionStatus.from_json(
                status
            )
        self.chain.transaction_count = int(state.get("transaction_count", 0))
        self.chain.restart_slot_at(int(state.get("slot", 0)))
        self.history.load()
        return len(self._encoded)

    def save(self) -> int:
        """Write the snapshot if anything changed; returns the number of accounts saved."""
        chain = self.chain
        self.history.save()
        dirty, chain.dirty = chain.dirty, set()
        for key in dirty:
            account = chain.savable(key)
            if account is None:
                self._encoded.pop(str(key), None)
            else:
                self._encoded[str(key)] = base64.b64encode(bytes(account)).decode()
        state = {
            "version": FORMAT_VERSION,
            "slot": chain.slot,
            "transaction_count": chain.transaction_count,
            "accounts": self._encoded,
            "statuses": dict(reversed([
                (str(sig), st.to_json())
                for sig, st in islice(reversed(chain.statuses.items()), PERSISTED_STATUSES)
            ])),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return len(self._encoded)
