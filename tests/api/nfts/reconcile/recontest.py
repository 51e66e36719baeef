"""Seeding helpers: owners with custody keypairs, cards, NFTs minted on the real chain."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from api.integrations.solana import mint_nft
from ece.contracts.topics import CHAIN_RECONCILIATION


@dataclass
class Owner:
    user_id: str
    keypair: Keypair

    @property
    def address(self) -> str:
        return str(self.keypair.pubkey())


@dataclass
class Seeded:
    nft_id: str
    card_id: str
    mint: str
    owner: Owner


def add_owner(db_url: str, *, custody: bool = True) -> Owner:
    """A user row whose custody keypair the test holds (so it can move tokens itself)."""
    owner = Owner(str(uuid.uuid4()), Keypair())
    name = f"r{uuid.uuid4().hex[:12]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, username, password_hash, custody_address) "
            "VALUES (%s, %s, %s, 'x', %s)",
            (owner.user_id, f"{name}@example.com", name, owner.address if custody else None))
    return owner


def add_nft_rows(db_url: str, owner: Owner, mint: str, status: str = "minted") -> Seeded:
    card_id, nft_id = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO cards (id, name, set_name, number, rarity, owner_id) "
            "VALUES (%s, 'Chain Card', 'Reconcile', '1', 'rare', %s)", (card_id, owner.user_id))
        conn.execute(
            "INSERT INTO card_history (card_id, from_user_id, to_user_id, reason) "
            "VALUES (%s, NULL, %s, 'issue')", (card_id, owner.user_id))
        conn.execute(
            "INSERT INTO nfts (id, card_id, status, mint_address, owner_address, metadata_uri) "
            "VALUES (%s, %s, %s, %s, %s, 'ar://test')",
            (nft_id, card_id, status, mint, owner.address))
    return Seeded(nft_id, card_id, mint, owner)


async def mint_for(client: AsyncClient, payer: Keypair, owners: list[Owner], n: int,
                   in_flight: int = 16) -> list[tuple[str, Owner]]:
    """Mint ``n`` real NFTs on the chain, round-robin over ``owners``."""
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> tuple[str, Owner]:
        owner = owners[i % len(owners)]
        mint = Keypair()
        async with gate:
            await mint_nft(client, payer, mint, owner.keypair.pubkey(), f"Card {i}", "ECE",
                           "ar://" + "x" * 43)
        return str(mint.pubkey()), owner

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def seed(db_url: str, client: AsyncClient, payer: Keypair, owners: list[Owner],
               n: int) -> list[Seeded]:
    return [add_nft_rows(db_url, owner, mint)
            for mint, owner in await mint_for(client, payer, owners, n)]


def sell_in_db(db_url: str, item: Seeded, buyer: Owner) -> str:
    """What a sale does to the database (owner + history row); the chain is not touched."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE cards SET owner_id = %s WHERE id = %s", (buyer.user_id, item.card_id))
        row = conn.execute(
            "INSERT INTO card_history (card_id, from_user_id, to_user_id, reason) "
            "VALUES (%s, %s, %s, 'sale') RETURNING id",
            (item.card_id, item.owner.user_id, buyer.user_id)).fetchone()
    assert row is not None
    return str(row[0])


def record_transfer(db_url: str, item: Seeded, history_id: str, to: Owner, signature: str
                    ) -> None:
    """What the chain-transfer worker records once the token has moved."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO nft_transactions (nft_id, kind, from_address, to_address, signature, "
            "card_history_id, status) VALUES (%s, 'transfer', %s, %s, %s, %s, 'confirmed')",
            (item.nft_id, item.owner.address, to.address, signature, history_id))
        conn.execute("UPDATE nfts SET owner_address = %s WHERE id = %s", (to.address, item.nft_id))


def db_rows(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT n.*, c.owner_id FROM nfts n JOIN cards c ON c.id = n.card_id ORDER BY n.id"
        ).fetchall()


def verdicts(bootstrap: str, mints: set[str], *, want: int, timeout: float = 30.0
             ) -> dict[str, list[dict[str, Any]]]:
    """Every ``ece.chain.reconciliation`` message for ``mints``, once ``want`` have arrived."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-recon-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })
    # Assign (no group join: Tansu makes a join wait half the session timeout).
    partitions = consumer.list_topics(CHAIN_RECONCILIATION, timeout=10).topics[
        CHAIN_RECONCILIATION].partitions
    consumer.assign([TopicPartition(CHAIN_RECONCILIATION, p, OFFSET_BEGINNING)
                     for p in partitions])
    found: dict[str, list[dict[str, Any]]] = {}
    got = 0
    deadline = time.monotonic() + timeout
    try:
        while got < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            raw = msg.value() if msg is not None and not msg.error() else None
            if msg is None or raw is None:
                continue
            key = (msg.key() or b"").decode()
            if key in mints:
                value = json.loads(raw)
                assert value["mint_address"] == key
                found.setdefault(key, []).append(value)
                got += 1
    finally:
        consumer.close()
    return found


def pubkey(value: str) -> Pubkey:
    return Pubkey.from_string(value)
