"""The mint saga: ``pending -> uploading -> minting -> minted | failed``, Postgres as truth.

Driven by the change stream (``ece.public.nfts``) and by a sweep of the database
for NFTs in a non-terminal state, so nothing is lost if an event is missed. Each
step records what it is about to do before doing it, so a worker killed at any
instant (``kill -9``) resumes without repeating an external effect:

* **upload**: the metadata JSON is signed into an Arweave transaction, its URI
  (gateway URL + transaction id) is written to ``nfts.metadata_uri``, *then* the
  transaction is posted. On resume, a recorded URI that the gateway knows is
  reused; one it never received (killed between the two) is replaced. Uploads
  carry the tags ``App-Name: ECE`` and ``ECE-NFT-Id`` so they can be found.
* **mint**: the recipient (the owner's custody address now) is written to the
  NFT's ``mint`` row in ``nft_transactions`` first; the mint keypair is derived
  from the NFT id and the mint seed, so a retry computes the same address and
  ``find_mint`` says whether the mint already exists (then it is only recorded).
  The transaction's signature is stored before the bytes are sent.

The worker runs these steps in batches (:mod:`api.nfts.runtime.mint_batch`): metadata
as ANS-104 data items posted in bundles, mints signed together and sent pipelined,
one database statement per step for the whole batch, with the same record-first
order per NFT; :meth:`MintSaga.advance` is the single-NFT path a batch falls back to.

Transient failures (RPC or gateway down, database restarting) are retried with
exponential backoff and jitter; permanent ones end in ``failed`` with the reason
in ``nfts.error`` and a dead letter on ``ece.dlq`` keyed ``ece.public.nfts``.
Run alone with ``python -m api.workers.mint_saga``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial
from typing import Any

import httpx
import structlog
from solders.pubkey import Pubkey

from api.cards.images import load_image
from api.core.problems import Problem
from api.integrations.arweave import ArweaveClient, GatewayUnavailable, InsufficientFunds, Wallet
from api.integrations.solana import (
    TransactionFailed,
    deterministic_mint_keypair,
    find_mint,
    mint_nft,
)
from api.nfts import platform_keys, service
from api.nfts.runtime.chain import FeePayerGuard, RecordingClient, recording
from api.nfts.runtime.db import advisory_lock, make_sessions
from api.nfts.runtime.dlq import DeadLetters
from api.nfts.runtime.feed import ChangeFeed
from api.nfts.runtime.metadata import SYMBOL, metadata_document, onchain_name
from api.nfts.runtime.mint_batch import BatchMinter
from api.nfts.runtime.process import crash_point
from api.nfts.runtime.retry import PayerShort, insufficient_funds, is_transient, with_retries
from api.storage import get_object_store
from ece.contracts.topics import cdc_topic
from ece.settings import Settings

log = structlog.get_logger("api.workers.mint_saga")

NAME = "mint_saga"
LOCK_NAMESPACE = 0x4E4654  # "NFT"
CONCURRENCY = 16
SWEEP_SECONDS = 2.0
RETRY_BUDGET_SECONDS = 120.0


class MintSaga:
    """The saga's steps for one NFT at a time (the scheduler runs several in parallel)."""

    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.engine, self.sessions = make_sessions(settings, 2 * CONCURRENCY + 2)
        self.solana = RecordingClient(settings.solana_rpc_url, timeout=15)
        self.arweave = ArweaveClient(settings.arweave_url)
        self.gateway = settings.arweave_url.rstrip("/")
        self.payer = platform_keys.fee_payer(settings)
        self.payer_guard = FeePayerGuard(self.payer, settings.solana_rpc_url)
        self.seed = platform_keys.mint_seed(settings)
        self.wallet: Wallet | None = None
        self.dead_letters = DeadLetters(settings)
        self.store = get_object_store(settings)
        self.graphql = httpx.AsyncClient(base_url=self.gateway, timeout=15)

    async def start(self) -> None:
        """Load keys (the Arweave wallet is RSA-4096: generated off the loop) and funding.

        An unfunded key on a real network stops the worker here with the address to
        fund; a node or gateway that is merely down is waited for by the steps.
        """
        self.wallet = await asyncio.to_thread(platform_keys.arweave_wallet, self.settings)
        await self.dead_letters.start()
        try:
            await self.payer_guard.ensure(self.solana)
        except platform_keys.PlatformKeyUnfunded:
            raise
        except Exception as exc:  # noqa: BLE001 - the chain may come up later
            log.warning("fee_payer_check_deferred", error=str(exc))
        try:
            await platform_keys.ensure_arweave_funded(self.arweave, self.wallet, 1)
        except platform_keys.PlatformKeyUnfunded:
            raise
        except Exception as exc:  # noqa: BLE001
            log.warning("arweave_funding_deferred", error=str(exc))

    async def close(self) -> None:
        await self.dead_letters.flush()
        await self.solana.close()
        await self.arweave.aclose()
        await self.graphql.aclose()
        await self.engine.dispose()

    # --- one NFT ------------------------------------------------------------------

    async def advance(self, nft_id: uuid.UUID) -> None:
        """Take one NFT as far as it goes; permanent errors end it in ``failed``."""
        async with advisory_lock(self.engine, LOCK_NAMESPACE, nft_id) as mine:
            if not mine:
                return
            try:
                await with_retries(
                    self.stop, f"nft {nft_id}", partial(self._advance_once, nft_id),
                    budget_seconds=RETRY_BUDGET_SECONDS,
                )
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_transient(exc) or self.stop.is_set():
                    log.warning("mint_deferred", nft_id=str(nft_id), error=str(exc)[:500])
                    return
                await self._fail(nft_id, exc)

    async def _fail(self, nft_id: uuid.UUID, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        async with self.sessions() as session:
            failed = await service.record_failed(session, nft_id, reason)
        if failed:
            log.error("mint_failed", nft_id=str(nft_id), error=reason[:500])
            payload = json.dumps({"nft_id": str(nft_id)})
            self.dead_letters.publish(cdc_topic("nfts", self.settings.topic_prefix), NAME,
                                      payload, reason)

    async def _advance_once(self, nft_id: uuid.UUID) -> None:
        async with self.sessions() as session:
            view = await service.saga_view(session, nft_id)
            if view is None or view.status not in service.ACTIVE_STATUSES:
                return
            if view.status in ("pending", "uploading"):
                await self._upload(session, view)
            intent = await service.prepare_mint(session, nft_id)  # -> minting
            if intent is not None:
                await self._mint(session, view, intent)

    async def _upload(self, session: Any, view: service.SagaView) -> str:
        """Post the metadata once; see the module docstring for the crash windows."""
        assert self.wallet is not None
        if view.metadata_uri:
            status = await self.arweave.status(view.metadata_uri.rsplit("/", 1)[-1])
            if status.state != "not_found":
                return view.metadata_uri
            log.warning("recorded_upload_missing", nft_id=str(view.nft_id), uri=view.metadata_uri)
        document = metadata_document(view.card, await self._image(view))
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        tx = await self.arweave.create_transaction(
            data, {"Content-Type": "application/json", **self._tags(view, "metadata")}, self.wallet
        )
        uri = f"{self.gateway}/{tx.id}"
        if not await service.record_metadata_uri(session, view.nft_id, uri):
            return uri  # no longer ours to upload (failed meanwhile): post nothing
        await self._post(tx)
        log.info("metadata_uploaded", nft_id=str(view.nft_id), uri=uri)
        crash_point("after_upload", view.nft_id)
        return uri

    def _tags(self, view: service.SagaView, kind: str) -> dict[str, str]:
        """Deterministic tags: every upload of an NFT can be found again on the gateway."""
        return {
            "App-Name": "ECE",
            "ECE-Kind": kind,
            "ECE-NFT-Id": str(view.nft_id),
            "ECE-Card-Id": str(view.card_id),
        }

    async def _post(self, tx: Any) -> None:
        assert self.wallet is not None
        try:
            await self.arweave.post(tx)
        except InsufficientFunds:
            await platform_keys.ensure_arweave_funded(self.arweave, self.wallet, int(tx.reward))
            await self.arweave.post(tx)  # the same signed transaction: still one upload

    async def _image(self, view: service.SagaView) -> str:
        """The card image published on Arweave (``""`` when the card has none).

        The image store keeps images encrypted; the NFT's image is public by nature,
        so minting publishes the decrypted bytes once. Its transaction cannot be
        recorded before posting (no column for it), so a crash between posting it and
        recording the metadata is covered by finding it again through its tags
        (``ECE-Kind: image`` + the object key) before uploading.
        """
        assert self.wallet is not None
        object_key = view.card.get("image_object_key")
        if not object_key:
            return ""
        tags = {**self._tags(view, "image"), "ECE-Image-Key": str(object_key)}
        found = await self._find_upload(tags)
        if found is not None:
            return f"{self.gateway}/{found}"
        try:
            data, content_type = await load_image(self.store, str(object_key))
        except Problem as exc:  # 404: the card names an object the store does not have
            raise service.PermanentMintError(f"card image {object_key}: {exc.detail}") from exc
        tx = await self.arweave.create_transaction(
            data, {"Content-Type": content_type, **tags}, self.wallet
        )
        await self._post(tx)
        log.info("image_uploaded", nft_id=str(view.nft_id), tx=tx.id, bytes=len(data))
        return f"{self.gateway}/{tx.id}"

    async def _find_upload(self, tags: dict[str, str]) -> str | None:
        """Our wallet's transaction carrying all ``tags`` (gateway GraphQL), if any."""
        assert self.wallet is not None
        query = (
            "query($owners: [String!], $tags: [TagFilter!]) { transactions(owners: $owners, "
            "tags: $tags, first: 1) { edges { node { id } } } }"
        )
        variables = {
            "owners": [self.wallet.address],
            "tags": [{"name": k, "values": [v]} for k, v in tags.items()],
        }
        response = await self.graphql.post("/graphql", json={"query": query,
                                                              "variables": variables})
        if response.status_code >= 500 or response.status_code == 429:
            raise GatewayUnavailable(f"graphql: HTTP {response.status_code}")
        response.raise_for_status()
        edges = response.json()["data"]["transactions"]["edges"]
        return str(edges[0]["node"]["id"]) if edges else None

    async def _mint(
        self, session: Any, view: service.SagaView, intent: service.MintIntent
    ) -> None:
        mint = deterministic_mint_keypair(self.seed, view.nft_id)
        owner = Pubkey.from_string(intent.to_address)
        state = await find_mint(self.solana, mint.pubkey(), owner)
        signature = intent.signature
        if state is None:
            await self.payer_guard.ensure(self.solana)
            try:
                with recording(partial(self._signed, intent.tx_id)):
                    sent = await mint_nft(
                        self.solana, self.payer, mint, owner,
                        onchain_name(str(view.card["name"])), SYMBOL, intent.metadata_uri,
                    )
            except TransactionFailed as exc:
                if insufficient_funds(exc):
                    self.payer_guard.invalidate()
                    raise PayerShort(str(exc)) from exc
                if not exc.account_in_use:  # in use = our earlier copy landed: record it
                    raise
            else:
                # Confirmed without error: the one atomic transaction created the mint,
                # minted 1 to the owner and removed the mint authority. Nothing to re-read.
                crash_point("after_mint_send", view.nft_id)
                await self._minted(session, view, intent, str(mint.pubkey()), str(sent),
                                   intent.to_address)
                return
            state = await find_mint(self.solana, mint.pubkey(), owner)
            if state is None:
                raise service.PermanentMintError(f"mint {mint.pubkey()} in use but not found")
        if signature is None:
            async with self.sessions() as fresh:
                signature = await service.transaction_signature(fresh, intent.tx_id)
        if not state.is_nft:
            raise service.PermanentMintError(
                f"mint {mint.pubkey()} is not an NFT (supply {state.supply}, decimals "
                f"{state.decimals}, mint authority {state.mint_authority})"
            )
        holder = str(state.holder) if state.holder is not None else intent.to_address
        await self._minted(session, view, intent, str(mint.pubkey()), signature, holder)

    async def _minted(
        self, session: Any, view: service.SagaView, intent: service.MintIntent,
        mint: str, signature: str | None, holder: str,
    ) -> None:
        await service.record_minted(session, view.nft_id, intent.tx_id, mint, signature, holder)
        log.info("nft_minted", nft_id=str(view.nft_id), mint=mint, owner=holder)

    async def _signed(self, tx_id: uuid.UUID, signature: str) -> None:
        async with self.sessions() as session:
            await service.record_signature(session, tx_id, signature)

    # --- wiring -------------------------------------------------------------------

    def wake_on(self, minter: BatchMinter, value: dict[str, Any]) -> None:
        """A change event wakes the batch loops when an NFT needs work (the loops read
        Postgres themselves: the event carries no decision)."""
        after = value.get("after")
        if isinstance(after, dict) and after.get("status") in service.ACTIVE_STATUSES:
            minter.wake()


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The worker: batch loops (:mod:`api.nfts.runtime.mint_batch`) woken by the change
    feed and sweeping the database every ``SWEEP_SECONDS``, until ``stop`` is set."""
    saga = MintSaga(settings, stop)
    minter = BatchMinter(saga, LOCK_NAMESPACE)
    try:
        await saga.start()
        log.info("worker_started", worker=NAME, fee_payer=str(saga.payer.pubkey()),
                 arweave_wallet=saga.wallet.address if saga.wallet else None)
        feed = ChangeFeed(settings, NAME, [cdc_topic("nfts", settings.topic_prefix)],
                          lambda _topic, value: saga.wake_on(minter, value),
                          saga.dead_letters)
        tasks = [asyncio.create_task(feed.run(stop), name=f"{NAME}-feed"),
                 asyncio.create_task(minter.run(stop, SWEEP_SECONDS), name=f"{NAME}-batches")]
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await saga.close()
        log.info("worker_stopped", worker=NAME)


def main() -> None:
    """``python -m api.workers.mint_saga``: run until SIGINT/SIGTERM."""
    from api.nfts.runtime.process import run_main

    run_main(run)


if __name__ == "__main__":
    main()
