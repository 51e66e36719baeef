"""The local chain's transaction history on disk, so getTransaction survives a restart.

A validator keeps its ledger; the local node used to keep landed transactions in
memory only, so after ``make down``/``make up`` (or any restart of the part)
every earlier signature answered ``null``. The audit chain's anchors are read
back by signature, so that made ``/admin/audit/verify`` report a tampered
anchor after an ordinary restart.

Format: one JSON line per successful transaction, appended at each save
(``transactions.jsonl`` beside ``state.json``; the accounts snapshot and this
file are saved together, so both lose at most the last save interval on a
crash). Failed transactions stay in memory only: their error objects have no
stable serialisation, and nothing reads them back after a restart. The file is
compacted to the newest ``MAX_TRANSACTIONS`` once it holds twice that many.
"""

from __future__ import annotations

import base64
import json
import os
from collections import deque
from pathlib import Path
from typing import Any

from solders.signature import Signature
from solders.transaction import VersionedTransaction

from ops.localchain.chain import MAX_TRANSACTIONS, Executed, LocalChain

HISTORY_FILE = "transactions.jsonl"


def _record(signature: Signature, done: Executed) -> dict[str, Any]:
    return {"sig": str(signature), "slot": done.slot,
            "tx": base64.b64encode(bytes(done.tx)).decode(), "fee": done.fee,
            "logs": done.logs, "cu": done.compute_units, "pre": done.pre_balances,
            "post": done.post_balances, "time": done.block_time}


def _executed(record: dict[str, Any]) -> tuple[Signature, Executed]:
    tx = VersionedTransaction.from_bytes(base64.b64decode(record["tx"]))
    return Signature.from_string(record["sig"]), Executed(
        record["slot"], tx, None, record["fee"], record["logs"], record["cu"],
        record["pre"], record["post"], record["time"])


class History:
    """Appends what landed since the last save; loads the newest on start."""

    def __init__(self, chain: LocalChain, folder: Path) -> None:
        self.chain = chain
        self.path = folder / HISTORY_FILE
        self.lines = 0

    def load(self) -> int:
        if not self.path.exists():
            return 0
        newest: deque[str] = deque(maxlen=MAX_TRANSACTIONS)
        with open(self.path) as fh:
            for line in fh:
                self.lines += 1
                newest.append(line)
        for line in newest:
            try:
                signature, done = _executed(json.loads(line))
            except (ValueError, KeyError):
                continue  # a line cut short by a crash mid-append
            self.chain.remember(signature, done)
        return len(newest)

    def save(self) -> int:
        """Append the successful transactions landed since the last call (fsynced)."""
        chain = self.chain
        pending, chain.unsaved_history = chain.unsaved_history, []
        records = [_record(sig, done) for sig in pending
                   if (done := chain.transactions.get(sig)) is not None and done.err is None]
        if records:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
                fh.flush()
                os.fsync(fh.fileno())
            self.lines += len(records)
        if self.lines > 2 * MAX_TRANSACTIONS:
            self._compact()
        return len(records)

    def _compact(self) -> None:
        """Rewrite the file with the transactions still held in memory (atomically)."""
        tmp = self.path.with_suffix(".tmp")
        kept = [(sig, done) for sig, done in self.chain.transactions.items() if done.err is None]
        with open(tmp, "w") as fh:
            fh.writelines(json.dumps(_record(s, d), separators=(",", ":")) + "\n"
                          for s, d in kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.lines = len(kept)
