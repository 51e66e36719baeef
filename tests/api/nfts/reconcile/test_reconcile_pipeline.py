"""The Flink ``chain_reconciliation`` pipeline: real Postgres -> Debezium -> Kafka -> Flink
-> the local Solana node -> ``ece.chain.reconciliation``.

Rows are written to the session database as the mint saga and the marketplace
would write them; the pipeline sees them only through CDC.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from recontest import add_nft_rows, add_owner, pubkey, record_transfer, seed, sell_in_db
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair

from api.integrations.solana import transfer_nft
from ece.contracts.topics import CHAIN_RECONCILIATION, DLQ, cdc_topic
from ops.stack.supervisor import Platform
from streaming.jobs.chain_reconciliation import (
    MalformedEvent,
    Trigger,
    parse_change,
    retry_delay_ms,
)

WAIT_S = 90.0


def envelope(table: str, op: str, after: dict[str, Any] | None,
             before: dict[str, Any] | None = None) -> str:
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1,
                       "source": {"table": table, "lsn": 1, "txId": 1, "ts_ms": 1}})


# --- parsing (no cluster) --------------------------------------------------------------


def test_parse_change_picks_what_to_recheck() -> None:
    card = str(uuid.uuid4())
    nft = {"id": str(uuid.uuid4()), "card_id": card, "status": "minted", "mint_address": "M1"}
    assert parse_change(envelope("nfts", "c", nft)) == Trigger(mint="M1")
    assert parse_change(envelope("nfts", "r", nft)) == Trigger(mint="M1")
    assert parse_change(envelope("nfts", "u", {**nft, "status": "minting"})) is None
    assert parse_change(envelope("nfts", "d", None, nft)) is None
    owned = {"id": card, "owner_id": "a", "status": "available"}
    sold = {**owned, "owner_id": "b"}
    assert parse_change(envelope("cards", "u", sold, owned)) == Trigger(card_id=card)
    assert parse_change(envelope("cards", "u", sold, None)) == Trigger(card_id=card)
    assert parse_change(envelope("cards", "u", {**owned, "status": "listed"}, owned)) is None
    assert parse_change(envelope("cards", "c", owned)) is None
    assert parse_change(None) is None and parse_change("") is None
    assert [retry_delay_ms(n) for n in (1, 2, 3)] == [2000, 4000, 8000]
    assert retry_delay_ms(50) == 300_000


@pytest.mark.parametrize("raw", [
    "not json",
    "[1]",
    json.dumps({"op": "x"}),
    envelope("nfts", "c", None),
    envelope("nfts", "u", {"status": "minted", "mint_address": None}),
    envelope("cards", "u", {"owner_id": "b"}, {"owner_id": "a"}),
    envelope("users", "c", {"id": "u"}),
    json.dumps({"op": "c", "after": [], "source": {"table": "nfts"}}),
])
def test_parse_change_rejects_malformed(raw: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_change(raw)


# --- the running job -------------------------------------------------------------------


class Verdicts:
    """Reads the reconciliation topic from the beginning and keeps every verdict by mint."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(CHAIN_RECONCILIATION, 0, OFFSET_BEGINNING)])
        self.by_mint: dict[str, list[dict[str, Any]]] = {}

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            value = msg.value() if msg is not None and not msg.error() else None
            if msg is None or value is None:
                continue
            self.by_mint.setdefault((msg.key() or b"").decode(), []).append(json.loads(value))

    def wait(self, mint: str, status: str, after: int = 0) -> dict[str, Any]:
        """The first verdict for ``mint`` beyond the first ``after`` ones with ``status``."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for event in self.by_mint.get(mint, [])[after:]:
                if event["status"] == status:
                    return event
            self._drain(0.5)
        raise AssertionError(f"no {status!r} verdict for {mint} within {WAIT_S}s: "
                             f"{self.by_mint.get(mint)}")

    def count(self, mint: str, quiet_s: float) -> int:
        self._drain(quiet_s)
        return len(self.by_mint.get(mint, []))

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture(scope="module")
def stream(platform: Platform) -> Iterator[Verdicts]:
    platform.require("postgres", "migrate", "broker", "solana", "cdc", "flink")
    feed = Verdicts(platform.settings.kafka_bootstrap)
    yield feed
    feed.close()


async def test_pipeline_follows_mints_sales_and_tokens_moved_behind_the_db(
    stream: Verdicts, platform: Platform, rpc: AsyncClient, payer: Keypair
) -> None:
    db_url = platform.settings.database_url
    seller, buyer = add_owner(db_url), add_owner(db_url)
    first, second = await seed(db_url, rpc, payer, [seller], 2)

    # A minted NFT reaches the topic as ok through CDC alone.
    event = stream.wait(first.mint, "ok")
    assert event["nft_id"] == first.nft_id and event["card_id"] == first.card_id
    assert event["expected_owner"] == event["onchain_owner"] == seller.address
    assert event["onchain_supply"] == 1
    stream.wait(second.mint, "ok")

    # A sale: the database names the buyer at once, the token is still with the seller.
    # In flight -> nothing published, re-checked; once the transfer lands -> ok. No row
    # changes when the token lands, so only the pipeline's own re-check can see it.
    history_id = sell_in_db(db_url, first, buyer)
    published = stream.count(first.mint, quiet_s=4.0)
    assert [e["status"] for e in stream.by_mint[first.mint]] == ["ok"] * published
    signature = await transfer_nft(rpc, payer, seller.keypair, buyer.keypair.pubkey(),
                                   pubkey(first.mint))
    event = stream.wait(first.mint, "ok", after=published)
    assert event["onchain_owner"] == event["expected_owner"] == buyer.address
    record_transfer(db_url, first, history_id, buyer, str(signature))

    # Moved behind the database's back: the next change of that NFT's row exposes it.
    stranger = Keypair()
    await transfer_nft(rpc, payer, seller.keypair, stranger.pubkey(), pubkey(second.mint))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE nfts SET metadata_uri = metadata_uri WHERE id = %s",
                     (second.nft_id,))
    event = stream.wait(second.mint, "mismatch")
    assert event["expected_owner"] == seller.address
    assert event["onchain_owner"] == str(stranger.pubkey())

    # A minted row whose mint the chain has never seen.
    ghost = add_nft_rows(db_url, seller, str(Keypair().pubkey()))
    event = stream.wait(ghost.mint, "missing")
    assert event["onchain_owner"] is None and event["onchain_supply"] == 0


def test_malformed_nft_changes_go_to_the_dlq_once(stream: Verdicts, platform: Platform) -> None:
    """A bad ``nfts`` message is reported with its topic; a bad ``cards`` message is left
    to the card-cache pipeline (one DLQ record per bad message, not one per reader)."""
    marker = uuid.uuid4().hex
    bad_nft = envelope("nfts", "u", {"id": marker, "status": "minted", "mint_address": None})
    bad_card = f"{{not json {marker}"
    producer = Producer({"bootstrap.servers": platform.settings.kafka_bootstrap})
    producer.produce(cdc_topic("nfts"), key=json.dumps({"id": marker}), value=bad_nft)
    producer.produce(cdc_topic("cards"), key=json.dumps({"id": marker}), value=bad_card)
    assert producer.flush(10) == 0

    consumer = Consumer({"bootstrap.servers": platform.settings.kafka_bootstrap,
                         "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(DLQ, p, OFFSET_BEGINNING)
                     for p in consumer.list_topics(DLQ, timeout=10).topics[DLQ].partitions])
    ours: list[tuple[bytes | None, dict[str, Any]]] = []
    deadline = time.monotonic() + WAIT_S
    settled: float | None = None  # once ours arrived, listen 2 s more for a card record
    try:
        while time.monotonic() < (settled or deadline):
            if settled is None and any(r["payload"] == bad_nft for _, r in ours):
                settled = time.monotonic() + 2.0
            msg = consumer.poll(0.2)
            value = msg.value() if msg is not None and not msg.error() else None
            if msg is None or value is None:
                continue
            record = json.loads(value)
            if marker in (record.get("payload") or "") and record["pipeline"] == (
                    "chain_reconciliation"):
                ours.append((msg.key(), record))
    finally:
        consumer.close()
    assert [(key, r["payload"]) for key, r in ours] == [(cdc_topic("nfts").encode(), bad_nft)]
    assert "mint_address" in ours[0][1]["error"]

