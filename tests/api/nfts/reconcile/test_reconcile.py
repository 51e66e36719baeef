"""On-demand reconciliation against the real local Solana node, a private database and the
session broker: ok / mismatch / missing, in-flight transfers, metrics, topic, CLI."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY
from recontest import (
    add_nft_rows,
    add_owner,
    db_rows,
    pubkey,
    record_transfer,
    seed,
    sell_in_db,
    verdicts,
)
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from api.integrations.solana import onchain_owner, transfer_nft
from api.nfts.reconcile import ReconcileSummary, reconcile
from ece.db_roles import with_database
from ece.settings import Settings, get_settings
from ops.cli.chain import chain_app
from ops.stack.base import free_port

FIELDS = {"nft_id", "card_id", "mint_address", "expected_owner", "onchain_owner",
          "onchain_supply", "status", "checked_at"}


def mismatches(status: str) -> float:
    return REGISTRY.get_sample_value("ece_chain_reconciliation_mismatches_total",
                                     {"status": status}) or 0.0


async def run(engine: AsyncEngine, rpc: AsyncClient, **kwargs: Any) -> ReconcileSummary:
    async with engine.connect() as conn:
        return await reconcile(conn, rpc, **kwargs)


async def test_agreeing_nfts_are_ok_and_a_token_moved_behind_the_db_is_a_mismatch(
    db_url: str, engine: AsyncEngine, rpc: AsyncClient, payer: Keypair, chain_settings: Settings
) -> None:
    owners = [add_owner(db_url), add_owner(db_url)]
    items = await seed(db_url, rpc, payer, owners, 5)
    mints = {i.mint for i in items}

    summary = await run(engine, rpc, batch=2)  # three batches: keyset paging is exercised
    assert (summary.checked, summary.ok, summary.published) == (5, 5, 5)
    assert summary.clean and summary.disagreements == []
    seen = verdicts(chain_settings.kafka_bootstrap, mints, want=5)
    assert set(seen) == mints
    for item in items:
        [event] = seen[item.mint]
        assert set(event) == FIELDS
        assert event == {**event, "nft_id": item.nft_id, "card_id": item.card_id,
                         "expected_owner": item.owner.address,
                         "onchain_owner": item.owner.address, "onchain_supply": 1,
                         "status": "ok"}
        assert event["checked_at"].endswith("Z")

    # Someone moves one token on chain; the database is not told.
    moved = items[2]
    stranger = Keypair()
    await transfer_nft(rpc, payer, moved.owner.keypair, stranger.pubkey(), pubkey(moved.mint))
    database_before = db_rows(db_url)
    counted = mismatches("mismatch")

    summary = await run(engine, rpc)
    assert (summary.checked, summary.ok, summary.mismatch, summary.missing) == (5, 4, 1, 0)
    assert not summary.clean
    [bad] = summary.disagreements
    assert (bad.mint_address, bad.status) == (moved.mint, "mismatch")
    assert (bad.expected_owner, bad.onchain_owner) == (moved.owner.address, str(stranger.pubkey()))
    assert mismatches("mismatch") == counted + 1

    seen = verdicts(chain_settings.kafka_bootstrap, {moved.mint}, want=2)
    assert [e["status"] for e in seen[moved.mint]] == ["ok", "mismatch"]
    assert seen[moved.mint][1]["onchain_owner"] == str(stranger.pubkey())
    # Reported, never repaired: neither the database nor the chain changed.
    assert db_rows(db_url) == database_before
    assert await onchain_owner(rpc, pubkey(moved.mint)) == (stranger.pubkey(), 1)


async def test_missing_mints_and_owners_without_custody(
    db_url: str, engine: AsyncEngine, rpc: AsyncClient, payer: Keypair, chain_settings: Settings
) -> None:
    owner = add_owner(db_url)
    [real] = await seed(db_url, rpc, payer, [owner], 1)
    never_minted = add_nft_rows(db_url, owner, str(Keypair().pubkey()))
    garbage = add_nft_rows(db_url, owner, "not-a-base58-address!")
    no_custody = add_owner(db_url, custody=False)
    [orphan] = await seed(db_url, rpc, payer, [no_custody], 1)  # DB expects nobody
    add_nft_rows(db_url, owner, str(Keypair().pubkey()), status="minting")  # not judged yet
    counted = mismatches("missing")

    summary = await run(engine, rpc)
    by_mint = {r.mint_address: r for r in summary.disagreements}
    assert (summary.checked, summary.ok, summary.missing, summary.mismatch) == (4, 1, 2, 1)
    assert by_mint[never_minted.mint].status == "missing"
    assert by_mint[never_minted.mint].onchain_supply == 0
    assert by_mint[garbage.mint].status == "missing"
    assert by_mint[orphan.mint].status == "mismatch"
    assert by_mint[orphan.mint].expected_owner is None
    assert by_mint[orphan.mint].onchain_owner == no_custody.address
    assert real.mint not in by_mint
    assert mismatches("missing") == counted + 2
    seen = verdicts(chain_settings.kafka_bootstrap, {never_minted.mint, garbage.mint},
                    want=2)
    assert {m: [e["status"] for e in v] for m, v in seen.items()} == {
        never_minted.mint: ["missing"], garbage.mint: ["missing"]}


async def test_a_sale_waiting_for_its_transfer_is_in_flight_until_the_grace_ends(
    db_url: str, engine: AsyncEngine, rpc: AsyncClient, payer: Keypair, chain_settings: Settings
) -> None:
    seller, buyer = add_owner(db_url), add_owner(db_url)
    [item] = await seed(db_url, rpc, payer, [seller], 1)
    history_id = sell_in_db(db_url, item, buyer)

    summary = await run(engine, rpc)  # the worker has not moved the token yet
    assert (summary.checked, summary.in_flight, summary.published) == (1, 1, 0)
    assert summary.clean, "a transfer in progress is not a disagreement yet"
    summary = await run(engine, rpc, grace_seconds=0)  # ... unless it takes too long
    assert (summary.mismatch, summary.published) == (1, 1)

    signature = await transfer_nft(rpc, payer, seller.keypair, buyer.keypair.pubkey(),
                                   pubkey(item.mint))
    record_transfer(db_url, item, history_id, buyer, str(signature))
    summary = await run(engine, rpc)
    assert (summary.ok, summary.in_flight, summary.mismatch) == (1, 0, 0)
    seen = verdicts(chain_settings.kafka_bootstrap, {item.mint}, want=2)
    assert [e["status"] for e in seen[item.mint]] == ["mismatch", "ok"]
    assert seen[item.mint][1]["onchain_owner"] == buyer.address


def _cli(db_url: str, *args: str, **env: str) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECE_DATABASE_URL", db_url)
        for key, value in env.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(chain_app, ["reconcile", *args])
        finally:
            get_settings.cache_clear()


async def test_cli_prints_a_summary_and_exits_1_on_mismatch_2_when_it_cannot_run(
    db_url: str, rpc: AsyncClient, payer: Keypair
) -> None:
    owner = add_owner(db_url)
    items = await seed(db_url, rpc, payer, [owner], 3)

    result = await asyncio.to_thread(_cli, db_url)
    assert result.exit_code == 0, result.output
    assert "Chain reconciliation" in result.output
    rows = {line.split()[1]: line.split()[-2] for line in result.output.splitlines()
            if line.startswith("│") and len(line.split()) >= 4}
    assert (rows["ok"], rows["mismatch"], rows["missing"], rows["checked"]) == ("3", "0", "0",
                                                                               "3")

    await transfer_nft(rpc, payer, owner.keypair, Keypair().pubkey(), pubkey(items[0].mint))
    result = await asyncio.to_thread(_cli, db_url, "--show", "5")
    assert result.exit_code == 1, result.output
    assert "Disagreements" in result.output and items[0].mint in result.output

    down = f"http://127.0.0.1:{free_port()}"
    result = await asyncio.to_thread(_cli, db_url, ECE_SOLANA_RPC_URL=down)
    assert result.exit_code == 2, result.output
    assert "could not run" in result.output and "Traceback" not in result.output
    bad_db = with_database(db_url, f"nope_{uuid.uuid4().hex[:6]}")
    result = await asyncio.to_thread(_cli, bad_db)
    assert result.exit_code == 2, result.output
