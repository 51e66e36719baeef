"""Reconciliation of N minted NFTs (default 10,000): seconds, against its own parts.

Mints N real Token-2022 NFTs on the local Solana node (through the same client as
the mint saga), writes matching users/cards/nfts rows, then times
:func:`api.nfts.reconcile.reconcile` end to end (database batches, batched
``getMultipleAccounts``, every verdict published to Kafka and flushed) at several
RPC concurrencies. Baselines measured in the same run: the database read alone,
the chain read alone, and reconciliation with publishing switched off.

Run with ``uv run python -m bench.bench_reconcile [N]``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import psycopg
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from api.integrations.solana import mint_nft, onchain_owners
from api.nfts.reconcile import (
    _FIRST_ID,
    ReconcileResult,
    ReconcileSummary,
    load_batch,
    reconcile,
)
from bench.harness import throwaway_platform
from ece.log import configure
from ece.settings import Settings

OWNERS = 100
MINT_IN_FLIGHT = 16
SOL = 1_000_000_000


class NullPublisher:
    """Publishing switched off: isolates the database + chain part."""

    def publish(self, result: ReconcileResult) -> None:
        pass

    async def flush(self) -> None:
        pass


async def mint_all(client: AsyncClient, owners: list[Keypair], n: int) -> list[tuple[str, int]]:
    payer = Keypair()
    await client.request_airdrop(payer.pubkey(), 10_000 * SOL)
    gate = asyncio.Semaphore(MINT_IN_FLIGHT)
    done = 0

    async def one(i: int) -> tuple[str, int]:
        nonlocal done
        mint = Keypair()
        async with gate:
            await mint_nft(client, payer, mint, owners[i % len(owners)].pubkey(), f"Card {i}",
                           "ECE", "ar://" + "x" * 43)
        done += 1
        if done % 1000 == 0:
            print(f"  minted {done}/{n}", flush=True)
        return str(mint.pubkey()), i % len(owners)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def write_rows(settings: Settings, owners: list[Keypair], minted: list[tuple[str, int]]) -> None:
    user_ids = [uuid.uuid4() for _ in owners]
    with psycopg.connect(settings.database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (id, email, username, password_hash, custody_address) "
            "VALUES (%s, %s, %s, 'x', %s)",
            [(uid, f"b{uid.hex[:12]}@example.com", f"b{uid.hex[:12]}", str(kp.pubkey()))
             for uid, kp in zip(user_ids, owners, strict=True)])
        cards = [(uuid.uuid4(), user_ids[o]) for _, o in minted]
        with cur.copy("COPY cards (id, name, set_name, number, rarity, owner_id) FROM STDIN") as cp:
            for card_id, owner in cards:
                cp.write_row((card_id, "Bench Card", "Bench", "1", "rare", owner))
        with cur.copy("COPY nfts (id, card_id, status, mint_address, owner_address) "
                      "FROM STDIN") as cp:
            for (card_id, _), (mint, o) in zip(cards, minted, strict=True):
                cp.write_row((uuid.uuid4(), card_id, "minted", mint, str(owners[o].pubkey())))
        conn.commit()


async def db_only(conn: AsyncConnection, batch: int) -> tuple[float, int]:
    started, after, rows = time.perf_counter(), _FIRST_ID, 0
    while expected := await load_batch(conn, after, batch, 120.0):
        rows += len(expected)
        after = expected[-1].nft_id
    return time.perf_counter() - started, rows


async def chain_only(client: AsyncClient, pairs: list[tuple[str, str]], concurrency: int
                     ) -> float:
    from solders.pubkey import Pubkey

    keys = [(Pubkey.from_string(m), Pubkey.from_string(o)) for m, o in pairs]
    gate = asyncio.Semaphore(concurrency)

    async def group(chunk: list[tuple[Pubkey, Pubkey]]) -> None:
        async with gate:
            await onchain_owners(client, chunk)

    started = time.perf_counter()
    await asyncio.gather(*(group(keys[i : i + 50]) for i in range(0, len(keys), 50)))
    return time.perf_counter() - started


async def measure(settings: Settings, n: int) -> None:
    owners = [Keypair() for _ in range(OWNERS)]
    async with AsyncClient(settings.solana_rpc_url, timeout=30) as client:
        started = time.perf_counter()
        minted = await mint_all(client, owners, n)
        mint_s = time.perf_counter() - started
        print(f"minted {n} NFTs on the local node in {mint_s:.1f} s ({n / mint_s:.0f}/s, "
              f"{MINT_IN_FLIGHT} in flight)")
        write_rows(settings, owners, minted)
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=2)
        try:
            async with engine.connect() as conn:
                db_s, rows = await db_only(conn, 1000)
                assert rows == n
                pairs = [(m, str(owners[o].pubkey())) for m, o in minted]
                chain_s = await chain_only(client, pairs, 4)
                print(f"baseline  database read alone      {db_s:7.2f} s  ({n / db_s:8.0f}/s)")
                print(f"baseline  chain read alone (x4)    {chain_s:7.2f} s  "
                      f"({n / chain_s:8.0f}/s)")
                s: ReconcileSummary = await reconcile(conn, client, publisher=NullPublisher(),
                                                      concurrency=4)
                assert s.ok == n, s
                print(f"reconcile, publishing off (x4)     {s.seconds:7.2f} s  "
                      f"({n / s.seconds:8.0f}/s)")
                for concurrency in (1, 4, 8):
                    s = await reconcile(conn, client, concurrency=concurrency)
                    assert (s.ok, s.published) == (n, n), s
                    print(f"reconcile + Kafka, {concurrency} RPC in flight  {s.seconds:7.2f} s  "
                          f"({n / s.seconds:8.0f}/s)  ok={s.ok} mismatch={s.mismatch} "
                          f"missing={s.missing}")
        finally:
            await engine.dispose()


def main() -> None:
    configure("WARNING")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with throwaway_platform("postgres", "migrate", "broker", "solana") as platform:
        asyncio.run(measure(platform.settings, n))


if __name__ == "__main__":
    main()
