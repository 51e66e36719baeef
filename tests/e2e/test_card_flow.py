"""One card through every engine: REST → Postgres → Debezium → Kafka → Flink → Redis,
and Kafka → Dagster assets → DuckLake ``silver.cards``.

Everything is real and started by the session fixture; commands run the way a
user types them (``ece admin create``, ``ece warehouse refresh``/``sql``).
"""

import json
import subprocess
import sys
import time
import uuid

import httpx
import psycopg
import pytest
import redis
from confluent_kafka import Consumer

from ece.contracts import card_cache
from ece.contracts.topics import cdc_topic
from ops.stack.supervisor import Platform

pytestmark = pytest.mark.e2e


def ece(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `ece` command as a user would (same environment as the test)."""
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_card_flows_through_every_engine(platform: Platform) -> None:
    platform.require("api", "cdc", "flink")
    settings = platform.settings
    api = platform.part("api").url
    suffix = uuid.uuid4().hex[:8]
    created = ece("admin", "create", "--email", f"e2e-{suffix}@example.com",
                  "--username", f"e2e_{suffix}", "--password", "correct-horse-battery")
    assert created.returncode == 0, created.stderr

    with httpx.Client(base_url=api, timeout=10) as client:
        login = client.post("/auth/login", json={"login": f"e2e_{suffix}",
                                                  "password": "correct-horse-battery"})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        response = client.post("/cards", headers=headers, json={
            "name": "Flow Dragon", "set_name": "E2E", "number": suffix, "rarity": "legendary",
            "attributes": {"power": 9},
        })
        assert response.status_code == 201, response.text
        card = response.json()
    card_id = card["id"]

    # 1. Debezium put the committed insert on its topic, keyed by the primary key.
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"e2e-{suffix}", "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    consumer.subscribe([cdc_topic("cards")])
    try:
        def insert_event():  # type: ignore[no-untyped-def]
            # The topic holds every card the session made: read it in batches.
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() or msg.value() is None or msg.key() is None:
                    continue
                if json.loads(msg.key()) == {"id": card_id}:
                    return json.loads(msg.value())
            return None

        event = wait_for(insert_event, 60, "the insert on ece.public.cards")
    finally:
        consumer.close()
    assert event["op"] == "c"
    assert event["after"]["name"] == "Flow Dragon"
    assert {"lsn", "txId", "ts_ms", "table"} <= set(event["source"])

    # 2. A change made behind the API's back (an operator's SQL fix) reaches the
    #    cache only through CDC and the Flink job.
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE cards SET name = 'Flow Dragon (fixed)' WHERE id = %s", (card_id,))
    cache = redis.Redis.from_url(settings.redis_url)

    def cached_fix():  # type: ignore[no-untyped-def]
        raw = cache.get(card_cache.document_key(card_id))
        if raw is None:
            return None
        document, version = card_cache.decode_entry(raw)
        return (document, version) if document["name"] == "Flow Dragon (fixed)" else None

    document, version = wait_for(cached_fix, 90, "Flink to refresh the Redis card cache")
    assert version == 2
    served = httpx.get(f"{api}/cards/{card_id}", timeout=10)
    assert served.json()["name"] == "Flow Dragon (fixed)"
    assert served.headers["etag"] == card_cache.etag(card_id, 2)

    # 3. The lakehouse: land the stream, rebuild silver, query it like an analyst.
    refreshed = ece("warehouse", "refresh")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    answer = ece("warehouse", "sql",
                 f"SELECT name, rarity FROM ece.silver.cards WHERE id = '{card_id}'")
    assert answer.returncode == 0, answer.stderr
    assert "Flow Dragon (fixed)" in answer.stdout
    assert "legendary" in answer.stdout
