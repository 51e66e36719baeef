"""The audit chain's two workers: the sealer (``audit``) and the anchorer (``anchors``).

``audit`` seals committed events with HMAC-SHA-256 in commit order
(:mod:`api.audit.sealer`: each batch is one transaction that inserts the seals
and moves the head, so SIGKILL anywhere loses nothing and seals nothing twice;
a second sealer process just waits on the head row). It needs only Postgres.

``anchors`` publishes the head on Solana as a memo signed by the platform fee
payer every ``audit_anchor_interval_seconds`` when it moved
(:mod:`api.audit.anchor`). It needs the chain, so the stack can run it with the
chain workers; a chain outage delays anchors, never sealing.
"""

from __future__ import annotations

import time

import structlog
from solana.rpc.async_api import AsyncClient

from api.audit import anchor, sealer
from api.audit.models import AuditAnchor
from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.nfts.platform_keys import ensure_fee_payer_funded, fee_payer
from api.nfts.runtime.process import crash_point
from api.workers.loop import Worker
from ece.settings import get_settings

log = structlog.get_logger("api.workers.audit_sealer")

SEAL_INTERVAL_S = 0.5


class AuditSealer(Worker):
    name = "audit"

    def __init__(self, interval_s: float = SEAL_INTERVAL_S,
                 batch: int = sealer.DEFAULT_BATCH) -> None:
        super().__init__(interval_s)
        self.batch = batch
        self.key = get_settings().audit_key

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            while True:
                async with UnitOfWork(session) as uow:
                    sealed = await sealer.seal_batch(uow.session, self.key, self.batch)
                    if sealed:
                        crash_point("audit_seal")  # TEST HOOK: seals inserted, not committed
                if sealed:
                    log.debug("audit_events_sealed", count=sealed)
                if sealed < self.batch:
                    return


class AuditAnchorer(Worker):
    name = "anchors"

    def __init__(self, interval_s: float | None = None) -> None:
        settings = get_settings()
        super().__init__(interval_s or settings.audit_anchor_interval_seconds)
        self.rpc_url = settings.solana_rpc_url
        self.payer = fee_payer(settings)
        self._funded_at = 0.0

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            head = await anchor.current_head(session)
            last = await anchor.latest_anchor(session)
            # Read before the rollback: it expires ORM rows, and reloading one lazily
            # outside an awaited call fails (MissingGreenlet).
            last_seq = last.seq if last is not None else None
            await session.rollback()
            if head.seq == 0 or last_seq == head.seq:
                return
            async with AsyncClient(self.rpc_url) as client:
                if time.monotonic() - self._funded_at > 300:
                    await ensure_fee_payer_funded(client, self.payer.pubkey(), self.rpc_url)
                    self._funded_at = time.monotonic()
                signature, slot = await anchor.publish(client, self.payer, head)
            async with UnitOfWork(session) as uow:
                uow.session.add(AuditAnchor(seq=head.seq, event_id=head.event_id,
                                            head_hash=head.hash, signature=signature, slot=slot))
            log.info("audit_head_anchored", seq=head.seq, signature=signature, slot=slot)
