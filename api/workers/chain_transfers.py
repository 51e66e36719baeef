"""Chain transfers: a minted card's token follows every change of owner, exactly once.

When a card with a minted NFT changes hands (``card_history`` rows with reason
``sale|trade|auction`` after the owner the token was minted to), the token moves
from the previous owner's custody address to the new owner's, signed by the
previous owner's custody key (decrypted only for the send) with the platform fee
payer paying fees and the new associated token account's rent.

Exactly once and in order, even across ``kill -9``:

* each history row gets one ``nft_transactions`` row (unique ``card_history_id``)
  inserted *before* anything is sent; its signature is stored before the bytes
  leave the process;
* one card is handled by one job at a time (advisory lock), rows in ``at`` order
  (A->B then B->C when a card changes hands twice in a second);
* before sending, the on-chain holder is read: already at the recipient -> only
  record it; at the sender -> send; anywhere else -> stop and report (DLQ), since
  moving a token the database does not expect would hide a disagreement.

Driven by ``ece.public.card_history`` and ``ece.public.nfts`` (a mint that lands
after sales catches up) plus a database sweep. ``python -m api.workers.chain_transfers``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import partial
from typing import Any

import structlog
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from api.integrations.solana import TransactionFailed, find_mint, transfer_nft
from api.nfts import platform_keys, service
from api.nfts.runtime.chain import FeePayerGuard, RecordingClient, recording
from api.nfts.runtime.db import advisory_lock, make_sessions
from api.nfts.runtime.dlq import DeadLetters
from api.nfts.runtime.feed import feed_and_sweep, parse_uuid
from api.nfts.runtime.process import crash_point
from api.nfts.runtime.retry import PayerShort, insufficient_funds, is_transient, with_retries
from api.nfts.runtime.scheduler import Submitter
from api.users.service import load_custody_secret
from ece.contracts.topics import cdc_topic
from ece.settings import Settings

log = structlog.get_logger("api.workers.chain_transfers")

NAME = "chain_transfers"
LOCK_NAMESPACE = 0x584652  # "XFR"
CONCURRENCY = 8
SWEEP_SECONDS = 2.0
RETRY_BUDGET_SECONDS = 120.0


class TransferBlocked(service.PermanentMintError):
    """The token is not where the database says it should be: never guess, report."""


class ChainTransfers:
    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.engine, self.sessions = make_sessions(settings, 2 * CONCURRENCY + 2)
        self.solana = RecordingClient(settings.solana_rpc_url, timeout=15)
        self.payer = platform_keys.fee_payer(settings)
        self.payer_guard = FeePayerGuard(self.payer, settings.solana_rpc_url)
        self.dead_letters = DeadLetters(settings)

    async def start(self) -> None:
        await self.dead_letters.start()
        try:
            await self.payer_guard.ensure(self.solana)
        except platform_keys.PlatformKeyUnfunded:
            raise
        except Exception as exc:  # noqa: BLE001 - the chain may come up later
            log.warning("fee_payer_check_deferred", error=str(exc))

    async def close(self) -> None:
        await self.dead_letters.flush()
        await self.solana.close()
        await self.engine.dispose()

    # --- one card -----------------------------------------------------------------

    async def sync_card(self, card_id: uuid.UUID) -> None:
        """Replay the pending ownership changes of ``card_id`` on chain, oldest first.
        It stops after the card's sole unclaimed change (``step.more``): one committed
        meanwhile wakes the card again, through its change event or the sweep."""
        async with advisory_lock(self.engine, LOCK_NAMESPACE, card_id) as mine:
            if not mine:
                return
            step: service.TransferStep | None = None

            async def drain() -> None:
                nonlocal step
                async with self.sessions() as session:
                    while (step := await service.next_transfer(session, card_id)) is not None:
                        await self._apply(session, step)
                        if not step.more:
                            break

            try:
                await with_retries(self.stop, f"card {card_id}", drain,
                                   budget_seconds=RETRY_BUDGET_SECONDS)
            except Exception as exc:  # noqa: BLE001 - classified below
                if is_transient(exc) or self.stop.is_set() or step is None:
                    log.warning("transfer_deferred", card_id=str(card_id), error=str(exc)[:500])
                    return
                await self._fail(step, exc)

    async def _apply(self, session: Any, step: service.TransferStep) -> None:
        mint, to = Pubkey.from_string(step.mint_address), Pubkey.from_string(step.to_address)
        sender = Pubkey.from_string(step.from_address)
        state = await find_mint(self.solana, mint, to, sender)  # one call either way
        if state is None:
            raise TransferBlocked(f"mint {mint} does not exist on chain")
        signature = step.signature
        if state.holder != to:
            if state.holder != sender:
                raise TransferBlocked(
                    f"token {mint} is held by {state.holder}, expected the seller {sender}"
                )
            signature = await self._send(session, step, mint, sender, to)
        await service.record_transfer(session, step, signature)
        log.info("nft_transfer_recorded", card_id=str(step.card_id),
                 history_id=str(step.history_id), mint=str(mint), to=str(to), signature=signature)

    async def _send(
        self, session: Any, step: service.TransferStep, mint: Pubkey, sender: Pubkey, to: Pubkey
    ) -> str | None:
        owner = Keypair.from_bytes(await load_custody_secret(session, step.from_user_id))
        await session.rollback()
        if owner.pubkey() != sender:
            raise TransferBlocked(f"custody key of {step.from_user_id} is not {sender}")
        await self.payer_guard.ensure(self.solana)
        try:
            with recording(partial(service.record_signature, session, step.tx_id)):
                signature: str | None = str(
                    await transfer_nft(self.solana, self.payer, owner, to, mint)
                )
        except TransactionFailed as exc:
            if insufficient_funds(exc):
                self.payer_guard.invalidate()
                raise PayerShort(str(exc)) from exc
            state = await find_mint(self.solana, mint, to)
            if state is None or state.holder != to:  # not an earlier copy that landed
                raise
            signature = None  # the recorded one
        crash_point("after_transfer_send", step.card_id)
        return signature

    async def _fail(self, step: service.TransferStep, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        async with self.sessions() as session:
            await service.record_transfer_failed(session, step)
        log.error("transfer_failed", card_id=str(step.card_id), history_id=str(step.history_id),
                  error=reason[:500])
        payload = json.dumps({"card_history_id": str(step.history_id),
                              "card_id": str(step.card_id), "nft_id": str(step.nft_id)})
        self.dead_letters.publish(cdc_topic("card_history", self.settings.topic_prefix), NAME,
                                  payload, reason)

    # --- wiring -------------------------------------------------------------------

    def on_event(self, wakes: Submitter, topic: str, value: dict[str, Any]) -> None:
        after = value.get("after")
        if not isinstance(after, dict):
            return
        changed_hands = topic.endswith(".card_history") and after.get("reason") in (
            service.TRANSFER_REASONS
        )
        previous = value.get("before")
        before: dict[str, Any] = previous if isinstance(previous, dict) else {}
        just_minted = (
            topic.endswith(".nfts")
            and after.get("status") == "minted"
            and before.get("status") != "minted"  # not every owner_address update again
        )
        if not (changed_hands or just_minted):
            return
        card_id = parse_uuid(after.get("card_id"))
        if card_id is not None:
            wakes.submit(card_id)

    async def out_of_sync(self, among: list[uuid.UUID] | None = None) -> list[uuid.UUID]:
        async with self.sessions() as session:
            return await service.cards_out_of_sync(session, among=among)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """The worker: change feed + sweep feeding a per-card scheduler, until ``stop``."""
    worker = ChainTransfers(settings, stop)
    try:
        await worker.start()
        log.info("worker_started", worker=NAME, fee_payer=str(worker.payer.pubkey()))
        await feed_and_sweep(
            settings, stop, name=NAME,
            topics=[cdc_topic(t, settings.topic_prefix) for t in ("card_history", "nfts")],
            on_event=worker.on_event, job=worker.sync_card, unfinished=worker.out_of_sync,
            dead_letters=worker.dead_letters,
            concurrency=CONCURRENCY, sweep_seconds=SWEEP_SECONDS,
        )
    finally:
        await worker.close()
        log.info("worker_stopped", worker=NAME)


def main() -> None:
    """``python -m api.workers.chain_transfers``: run until SIGINT/SIGTERM."""
    from api.nfts.runtime.process import run_main

    run_main(run)


if __name__ == "__main__":
    main()
