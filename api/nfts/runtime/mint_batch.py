"""The mint saga in batches: N NFTs per step, the same guarantees as one at a time.

Why: one NFT per step costs an Arweave transaction, a dozen database round trips and
a confirmation wait each, which held a drop to ~12 NFTs/s. A batch step claims up to
``BATCH`` NFTs in one statement (advisory locks, so the single-NFT path and other
workers skip them), and for all of them at once:

1. signs one ANS-104 data item per NFT (its own id, so its own URI), records every
   URI in ONE UPDATE, then posts the items as bundles (one Arweave transaction per
   ~130 items). A URI is recorded before its bundle is posted, exactly like the single
   upload: on resume a recorded URI the gateway knows is kept, one it never received
   (killed before posting: crash point ``mid_bundle``) is replaced.
2. moves them to ``minting`` and creates the ``mint`` rows (owner *now*) in one
   transaction; signs every mint (deterministic mint keypair), records every
   signature in ONE UPDATE, then sends them pipelined and confirms them together
   with ``getSignatureStatuses``. A re-run finds an existing mint by its address and
   only records it; a second create of the same address fails (``account in use``).
3. records every confirmed mint in one transaction.

Per-NFT permanent errors fail that NFT only (reason + dead letter); transient ones
leave it for the next round. A batch-level error that is not transient hands the
NFTs to the single-NFT path, which classifies each one as before.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from api.integrations.arweave.ans104 import BUNDLE_TAGS, DataItem, bundle_bytes, pack, sign_item
from api.integrations.arweave.merkle import MAX_CHUNK_SIZE
from api.integrations.solana import TransactionFailed, deterministic_mint_keypair, find_mint
from api.integrations.solana.errors import TransactionExpired
from api.integrations.solana.nft import mint_instructions, mint_lamports
from api.integrations.solana.transport import (
    confirm_many,
    fresh_blockhash,
    send_signed,
    sign_transaction,
)
from api.nfts import saga as db
from api.nfts.errors import PermanentMintError
from api.nfts.runtime.db import advisory_claim
from api.nfts.runtime.metadata import SYMBOL, metadata_document, onchain_name
from api.nfts.runtime.process import crash_point
from api.nfts.runtime.retry import insufficient_funds, is_permanent, is_transient
from api.nfts.runtime.scheduler import sleep_or_stop
from ece.retry import backoff_delay

if TYPE_CHECKING:
    from api.workers.mint_saga import MintSaga

log = structlog.get_logger("api.nfts.runtime")

BATCH = 100  # NFTs per step (one bundle of ~190 KB, inline in one POST /tx)
LOOPS = 3  # batches in flight per worker: one uploads while another mints
SEND_CONCURRENCY = 32  # sendTransaction calls in flight per batch
MAX_BUNDLE_BYTES = MAX_CHUNK_SIZE  # inline data: arlocal unbundles those on POST /tx
CANDIDATES = (
    "SELECT id FROM nfts WHERE status IN ('pending', 'uploading', 'minting') "
    "ORDER BY updated_at LIMIT :scan"
)


async def _bounded(limit: int, calls: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


class BatchMinter:
    """Batch steps over a :class:`MintSaga` (its clients, keys and single-NFT fallback)."""

    def __init__(self, saga: MintSaga, lock_namespace: int) -> None:
        self.saga = saga
        self.namespace = lock_namespace
        self._wakes = [asyncio.Event() for _ in range(LOOPS)]

    def wake(self) -> None:
        """Work may be waiting (a change event): every idle loop claims again."""
        for event in self._wakes:
            event.set()

    async def run(self, stop: asyncio.Event, sweep_seconds: float) -> None:
        await asyncio.gather(*(self._loop(stop, sweep_seconds, w) for w in self._wakes))

    async def _loop(self, stop: asyncio.Event, sweep_seconds: float, wake: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            wake.clear()  # before claiming: a wake-up during the claim is not lost
            try:
                async with advisory_claim(self.saga.engine, self.namespace, CANDIDATES, BATCH,
                                          scan=BATCH * (LOOPS + 2)) as ids:
                    deferred = await self.step(ids) if ids else 0
                if deferred < 0:  # locks released: the single-NFT path takes them one by one
                    await _bounded(16, [self.saga.advance(nft_id) for nft_id in ids])
                    deferred = 0
                failures = failures + 1 if deferred else 0
            except Exception as exc:  # noqa: BLE001 - the database restarting: back off
                failures += 1
                ids = []
                log.warning("mint_batch_failed", error=str(exc)[:500], failures=failures)
            if failures:
                await sleep_or_stop(stop, backoff_delay(failures, base=0.5, cap=15.0, jitter=0.5))
            elif not ids:
                await sleep_or_stop_or(stop, wake, sweep_seconds)

    async def step(self, ids: list[uuid.UUID]) -> int:
        """One batch; returns how many NFTs were left for a later round (transient)."""
        try:
            return await self._step(ids)
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_transient(exc) or self.saga.stop.is_set():
                log.warning("mint_batch_deferred", nfts=len(ids), error=str(exc)[:500])
                return len(ids)
            log.warning("mint_batch_fallback", nfts=len(ids), error=str(exc)[:500])
            return -len(ids)  # the caller's lock is released first, then one by one

    async def _step(self, ids: list[uuid.UUID]) -> int:
        async with self.saga.sessions() as session:
            views = [v for v in await db.saga_views(session, ids)
                     if v.status in db.ACTIVE_STATUSES]
        await self.upload(views)
        async with self.saga.sessions() as session:
            mints, errors = await db.prepare_mints(session, [v.nft_id for v in views])
        for nft_id, reason in errors.items():
            await self.saga._fail(nft_id, PermanentMintError(reason))
        return await self.mint(mints)

    # --- Arweave ------------------------------------------------------------------

    async def upload(self, views: list[db.SagaView]) -> None:
        saga = self.saga
        assert saga.wallet is not None
        wallet = saga.wallet
        waiting = [v for v in views if v.status in ("pending", "uploading")]
        recorded = [v for v in waiting if v.metadata_uri]
        on_gateway = await self._known_items(
            [str(v.metadata_uri).rsplit("/", 1)[-1] for v in recorded])
        known = {v.nft_id for v in recorded
                 if str(v.metadata_uri).rsplit("/", 1)[-1] in on_gateway}
        for view in recorded:
            if view.nft_id not in known:
                log.warning("recorded_upload_missing", nft_id=str(view.nft_id),
                            uri=view.metadata_uri)
        need = [v for v in waiting if v.nft_id not in known]
        if not need:
            return
        images = await _bounded(8, [saga._image(v) for v in need])
        payloads = [(json.dumps(metadata_document(v.card, image), sort_keys=True,
                                separators=(",", ":")).encode(),
                     {"Content-Type": "application/json", **saga._tags(v, "metadata")})
                    for v, image in zip(need, images, strict=True)]
        items: list[DataItem] = await asyncio.to_thread(
            lambda: [sign_item(data, tags, wallet) for data, tags in payloads])
        uris = {v.nft_id: f"{saga.gateway}/{item.id}" for v, item in zip(need, items, strict=True)}
        async with saga.sessions() as session:
            moved = await db.record_metadata_uris(session, uris)
        owned = [(v.nft_id, item) for v, item in zip(need, items, strict=True)
                 if v.nft_id in moved]  # the others left (failed meanwhile): post nothing
        of_item = {item.id: nft_id for nft_id, item in owned}
        for group in pack([item for _, item in owned], MAX_BUNDLE_BYTES):
            for item in group:
                crash_point("mid_bundle", of_item[item.id])
            tx = await saga.arweave.create_transaction(
                bundle_bytes(group),
                [*BUNDLE_TAGS, ("App-Name", "ECE"), ("ECE-Kind", "metadata-bundle")], wallet)
            await saga._post(tx)
            log.info("metadata_bundle_uploaded", tx=tx.id, items=len(group), bytes=tx.data_size)
        for nft_id, _ in owned:
            crash_point("after_upload", nft_id)

    async def _known_items(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` (data items or transactions of our wallet) the gateway holds.

        GraphQL, one query per 100 ids: a data item is not a layer-1 transaction, so
        ``GET /tx/{id}/status`` answers 404 for it (arlocal and Arweave nodes alike).
        """
        from api.integrations.arweave import GatewayUnavailable

        saga = self.saga
        assert saga.wallet is not None
        query = ("query($ids: [ID!], $owners: [String!]) { transactions(ids: $ids, "
                 "owners: $owners, first: 100) { edges { node { id } } } }")
        found: set[str] = set()
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            response = await saga.graphql.post("/graphql", json={
                "query": query, "variables": {"ids": chunk, "owners": [saga.wallet.address]}})
            if response.status_code >= 500 or response.status_code == 429:
                raise GatewayUnavailable(f"graphql: HTTP {response.status_code}")
            response.raise_for_status()
            edges = response.json()["data"]["transactions"]["edges"]
            found |= {str(edge["node"]["id"]) for edge in edges}
        return found

    # --- Solana -------------------------------------------------------------------

    async def mint(self, mints: list[db.BatchMint]) -> int:
        saga = self.saga
        done: list[tuple[uuid.UUID, uuid.UUID, str, str | None, str]] = []
        failed: dict[uuid.UUID, BaseException] = {}
        deferred = 0
        keys = {m.nft_id: deterministic_mint_keypair(saga.seed, m.nft_id) for m in mints}
        resumed = [m for m in mints if m.intent.signature is not None]
        found = await _bounded(16, [self._existing(m, keys[m.nft_id]) for m in resumed])
        exists = {m.nft_id: row for m, row in zip(resumed, found, strict=True) if row is not None}
        done.extend(exists.values())
        fresh = [m for m in mints if m.nft_id not in exists]
        if fresh:
            await saga.payer_guard.ensure(saga.solana)
            latest = await fresh_blockhash(saga.solana)
            txs = []
            for m in fresh:
                name, mint_key = onchain_name(m.name), keys[m.nft_id].pubkey()
                lamports = await mint_lamports(saga.solana, name, SYMBOL, m.intent.metadata_uri)
                instructions = mint_instructions(
                    saga.payer.pubkey(), mint_key, _owner(m), name, SYMBOL,
                    m.intent.metadata_uri, lamports)
                txs.append(sign_transaction(saga.payer, instructions, [keys[m.nft_id]],
                                            latest.blockhash))
            async with saga.sessions() as session:  # every signature stored before sending
                await db.record_signatures(session, {
                    m.intent.tx_id: str(tx.signatures[0]) for m, tx in zip(fresh, txs, strict=True)
                })
            sent = await _bounded(SEND_CONCURRENCY, [send_signed(saga.solana, tx) for tx in txs])
            to_confirm = []
            for m, tx, error in zip(fresh, txs, sent, strict=True):
                if error is None:
                    to_confirm.append((m, tx.signatures[0]))
                elif isinstance(error, TransactionFailed) and error.account_in_use:
                    row = await self._existing(m, keys[m.nft_id])  # our earlier copy landed
                    if row is None:
                        failed[m.nft_id] = PermanentMintError(
                            f"mint {keys[m.nft_id].pubkey()} in use but not found")
                    else:
                        done.append(row)
                elif isinstance(error, TransactionFailed) and insufficient_funds(error):
                    saga.payer_guard.invalidate()
                    deferred += 1
                elif is_permanent(error):
                    failed[m.nft_id] = error
                else:
                    deferred += 1
            statuses = await confirm_many(saga.solana, [s for _, s in to_confirm])
            for m, signature in to_confirm:
                outcome = statuses[signature]
                if outcome is None:
                    crash_point("after_mint_send", m.nft_id)
                    done.append((m.nft_id, m.intent.tx_id, str(keys[m.nft_id].pubkey()),
                                 str(signature), m.intent.to_address))
                elif isinstance(outcome, TransactionExpired) or (
                    isinstance(outcome, TransactionFailed) and insufficient_funds(outcome)
                ):
                    deferred += 1
                elif isinstance(outcome, TransactionFailed) and outcome.account_in_use:
                    row = await self._existing(m, keys[m.nft_id])
                    if row is None:
                        failed[m.nft_id] = outcome
                    else:
                        done.append(row)
                else:
                    failed[m.nft_id] = outcome
        async with saga.sessions() as session:
            await db.record_minted_many(session, done)
        log.info("mint_batch_done", minted=len(done), failed=len(failed), deferred=deferred)
        for nft_id, exc in failed.items():
            await saga._fail(nft_id, exc)
        return deferred

    async def _existing(
        self, m: db.BatchMint, key: Any
    ) -> tuple[uuid.UUID, uuid.UUID, str, str | None, str] | None:
        """The recorded row for a mint already on chain (None: it does not exist)."""
        state = await find_mint(self.saga.solana, key.pubkey(), _owner(m))
        if state is None:
            return None
        if not state.is_nft:
            raise PermanentMintError(
                f"mint {key.pubkey()} is not an NFT (supply {state.supply}, decimals "
                f"{state.decimals}, mint authority {state.mint_authority})")
        holder = str(state.holder) if state.holder is not None else m.intent.to_address
        return (m.nft_id, m.intent.tx_id, str(key.pubkey()), m.intent.signature, holder)


def _owner(m: db.BatchMint) -> Any:
    from solders.pubkey import Pubkey

    return Pubkey.from_string(m.intent.to_address)


async def sleep_or_stop_or(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` or ``wake`` is set."""
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()

