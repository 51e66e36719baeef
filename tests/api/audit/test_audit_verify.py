"""Anchors on the local Solana node, and ``verify`` against tampering.

Tampering needs a side door the app does not have (disabling the append-only
triggers as the table owner), so each case runs in a transaction that is rolled
back: the shared chain stays intact for the other tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ece.settings import Settings
from tests.api.audit.audittest import Writer, drain, run_writer
from tests.support.apitest import Account, Db, unique

TRIGGERS = ("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
            "ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_append_only",
            "ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_no_delete")


@pytest.fixture(scope="module")
async def anchored(platform: Any, api_settings: Settings, db: Db) -> dict[str, Any]:
    """Events, sealed, and the head anchored on the chain by the anchor worker."""
    platform.require("solana")
    from api.workers.audit_sealer import AuditAnchorer

    tag = unique("anchor")
    await run_writer(Writer(tag, 0, 12, commit=True), 0)
    await drain(api_settings.audit_key)
    await AuditAnchorer(interval_s=60).cycle()
    row = db.rows("SELECT seq, event_id, head_hash, signature, slot FROM audit_anchors "
                  "ORDER BY id DESC LIMIT 1")[0]
    return dict(zip(("seq", "event_id", "hash", "signature", "slot"), row, strict=True))


async def test_the_anchor_lands_on_the_chain(anchored: dict[str, Any], api_settings: Settings,
                                              db: Db) -> None:
    from solana.rpc.async_api import AsyncClient
    from solders.signature import Signature

    from api.audit.anchor import onchain_anchor
    from api.integrations.solana.memo import MEMO_PROGRAM_ID
    from api.nfts.platform_keys import FEE_PAYER, public_of

    head = db.rows("SELECT seq, hash FROM audit_chain_head")[0]
    assert (anchored["seq"], anchored["hash"]) == (head[0], head[1])
    payer = public_of(api_settings, FEE_PAYER)
    async with AsyncClient(api_settings.solana_rpc_url) as client:
        raw = await client.get_transaction(Signature.from_string(anchored["signature"]),
                                           encoding="base64")
        assert raw.value is not None and raw.value.slot == anchored["slot"]
        message = raw.value.transaction.transaction.message  # type: ignore[union-attr]
        keys = list(message.account_keys)
        memo = [bytes(ix.data).decode() for ix in message.instructions
                if keys[ix.program_id_index] == MEMO_PROGRAM_ID]
        assert memo == [f"ece-audit:v1:{head[0]}:{anchored['event_id']}:{head[1]}"]
        assert str(keys[0]) == payer  # signed and paid by the platform key
        named = await onchain_anchor(client, anchored["signature"], str(payer))
    assert named is not None and named.seq == head[0] and named.hash == head[1]


async def test_verify_endpoint_reports_head_and_anchor(
    anchored: dict[str, Any], client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.get("/admin/audit/verify", headers=admin.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["first_bad_id"] is None, body
    assert body["head"]["seq"] >= anchored["seq"] and len(body["head"]["hash"]) == 64
    assert body["anchor"]["signature"] == anchored["signature"]
    assert body["anchor"]["hash"] == anchored["hash"]
    assert body["anchor"]["on_chain"] is True
    page = (await client.get("/admin/audit", params={"limit": 50}, headers=admin.auth)).json()
    sealed = [i for i in page["items"] if i["hash"]]
    assert sealed and all(len(i["prev_hash"]) == 64 for i in sealed)


Tamper = Callable[[AsyncConnection, dict[str, Any]], Awaitable[None]]


@pytest.fixture
async def tampered(api_settings: Settings) -> AsyncIterator[Callable[[Tamper], Any]]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from api.migrations.runner import sync_url
    from ece.db_roles import OWNER

    # Only the tables' owner can disable their triggers (the app's role cannot).
    owner = create_async_engine(sync_url(api_settings.role_url(OWNER)), pool_size=1)

    async def run(tamper: Tamper) -> Any:
        from solana.rpc.async_api import AsyncClient

        from api.audit.verify import verify_chain
        from api.nfts.platform_keys import FEE_PAYER, public_of

        async with owner.connect() as conn:
            trans = await conn.begin()
            try:
                for sql in TRIGGERS:
                    await conn.execute(text(sql))
                head = (await conn.execute(text("SELECT seq, hash FROM audit_chain_head"))).one()
                await tamper(conn, {"seq": head[0], "hash": head[1]})
                session = AsyncSession(bind=conn)
                async with AsyncClient(api_settings.solana_rpc_url) as chain:
                    return await verify_chain(session, api_settings.audit_key, client=chain,
                                              payer=public_of(api_settings, FEE_PAYER),
                                              isolate=False)
            finally:
                await trans.rollback()

    yield run
    await owner.dispose()


async def _event_at(conn: AsyncConnection, seq: int) -> int:
    return int((await conn.execute(
        text("SELECT event_id FROM audit_seals WHERE seq = :s"), {"s": seq})).scalar_one())


async def test_verify_detects_a_rewritten_middle(anchored: dict[str, Any], tampered: Any) -> None:
    target: list[int] = []

    async def rewrite(conn: AsyncConnection, head: dict[str, Any]) -> None:
        target.append(await _event_at(conn, head["seq"] // 2))
        await conn.execute(text("UPDATE audit_events SET details = '{\"forged\": true}' "
                                "WHERE id = :i"), {"i": target[0]})

    report = await tampered(rewrite)
    assert not report.ok and report.first_bad_id == target[0]


async def test_verify_detects_a_deleted_tail(anchored: dict[str, Any], tampered: Any) -> None:
    async def cut(conn: AsyncConnection, head: dict[str, Any]) -> None:
        keep = anchored["seq"] - 3  # drop the anchored head and a few before it
        row = (await conn.execute(text(
            "SELECT s.hash, e.xid, e.id FROM audit_seals s JOIN audit_events e "
            "ON e.id = s.event_id WHERE s.seq = :s"), {"s": keep})).one()
        gone = "SELECT event_id FROM audit_seals WHERE seq > :k"
        await conn.execute(text(f"CREATE TEMP TABLE gone ON COMMIT DROP AS {gone}"), {"k": keep})
        await conn.execute(text("DELETE FROM audit_seals WHERE seq > :k"), {"k": keep})
        await conn.execute(text("DELETE FROM audit_events WHERE id IN (SELECT event_id "
                                "FROM gone)"))
        await conn.execute(text(  # and make the head agree, as a careful attacker would
            "UPDATE audit_chain_head SET seq = :k, hash = :h, last_xid = :x, "
            "last_event_id = :i"), {"k": keep, "h": row[0], "x": row[1], "i": row[2]})

    report = await tampered(cut)
    assert not report.ok and "anchor" in (report.problem or ""), report.problem
    assert report.first_bad_id == anchored["event_id"]


async def test_verify_detects_a_rehash_without_the_key(
    anchored: dict[str, Any], tampered: Any
) -> None:
    """Rewrite an event and recompute every seal after it, with a key that is not ours."""
    from api.audit.chain import canonical_event, seal_mac

    target: list[int] = []

    async def rehash(conn: AsyncConnection, head: dict[str, Any]) -> None:
        start = head["seq"] // 2
        target.append(await _event_at(conn, start))
        await conn.execute(text("UPDATE audit_events SET details = '{\"forged\": true}' "
                                "WHERE id = :i"), {"i": target[0]})
        rows = (await conn.execute(text(
            "SELECT s.seq, s.prev_hash, e.id, e.actor_id, e.action, e.entity, e.entity_id, "
            "e.ip, e.details, e.at FROM audit_seals s JOIN audit_events e ON e.id = s.event_id "
            "WHERE s.seq >= :s ORDER BY s.seq"), {"s": start})).all()
        prev = rows[0][1]
        for seq, _, eid, actor, action, entity, entity_id, ip, details, at in rows:
            canonical = canonical_event(actor_id=actor, action=action, entity=entity,
                                        entity_id=entity_id, ip=ip, details=details, at=at)
            digest = seal_mac(b"not-the-platform-key", seq, prev, eid, canonical)
            await conn.execute(text("UPDATE audit_seals SET prev_hash = :p, hash = :h "
                                    "WHERE seq = :s"), {"p": prev, "h": digest, "s": seq})
            prev = digest
        await conn.execute(text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})

    report = await tampered(rehash)
    assert not report.ok and report.first_bad_id == target[0]


async def test_verify_detects_a_forged_anchor_row(anchored: dict[str, Any], tampered: Any) -> None:
    import os

    from solders.signature import Signature

    async def forge(conn: AsyncConnection, head: dict[str, Any]) -> None:
        # An anchor row whose signature the chain does not know: not ours, refused.
        await conn.execute(text(
            "INSERT INTO audit_anchors (seq, event_id, head_hash, signature, slot) "
            "SELECT seq, event_id, hash, :sig, 1 FROM audit_seals WHERE seq = :s"),
            {"sig": str(Signature.from_bytes(os.urandom(64))), "s": anchored["seq"]})

    report = await tampered(forge)
    assert not report.ok and report.anchor.on_chain is False
