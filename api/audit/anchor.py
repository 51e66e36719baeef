"""Anchors: the sealed head published outside the database, as a Solana memo.

Every ``audit_anchor_interval_seconds`` (default a minute) the anchor worker
reads the head and, when it moved since the last anchor, lands the memo
``ece-audit:v1:<seq>:<event id>:<head hash>`` signed by the platform fee payer
(SPL Memo v2, which LiteSVM ships: the local node runs the real program), then
records ``(seq, head hash, signature, slot, at)`` in ``audit_anchors``. A crash
between the two leaves a memo without a row: harmless, the next minute anchors
again. ``verify`` checks the latest anchor against the chain and the seals.
"""

from __future__ import annotations

from dataclasses import dataclass

from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.models import AuditAnchor, AuditChainHead, AuditSeal
from api.integrations.solana.memo import read_memo, send_memo

PREFIX = "ece-audit:v1"


@dataclass(frozen=True)
class AnchoredHead:
    seq: int
    event_id: int | None
    hash: str


def anchor_text(head: AnchoredHead) -> str:
    return f"{PREFIX}:{head.seq}:{head.event_id or 0}:{head.hash}"


def parse_anchor_text(text: str) -> AnchoredHead | None:
    parts = text.split(":")
    if len(parts) != 5 or ":".join(parts[:2]) != PREFIX:
        return None
    try:
        seq, event_id = int(parts[2]), int(parts[3])
    except ValueError:
        return None
    return AnchoredHead(seq, event_id or None, parts[4])


async def current_head(session: AsyncSession) -> AnchoredHead:
    row = (await session.execute(select(AuditChainHead).where(AuditChainHead.id == 1))).scalar_one()
    event_id = await session.scalar(select(AuditSeal.event_id).where(AuditSeal.seq == row.seq))
    return AnchoredHead(row.seq, event_id, row.hash)


async def latest_anchor(session: AsyncSession) -> AuditAnchor | None:
    return await session.scalar(select(AuditAnchor).order_by(AuditAnchor.id.desc()).limit(1))


async def publish(client: AsyncClient, payer: Keypair, head: AnchoredHead) -> tuple[str, int]:
    """Land the memo naming ``head``; (signature, slot)."""
    return await send_memo(client, payer, anchor_text(head))


async def onchain_anchor(client: AsyncClient, signature: str, payer: str) -> AnchoredHead | None:
    """The head a landed memo names, if it is ours (signed by ``payer``) and well formed."""
    memo = await read_memo(client, signature)
    if memo is None or payer not in memo.signers:
        return None
    return parse_anchor_text(memo.text)
