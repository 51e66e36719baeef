"""Produce -> Redis latency of the Flink card-cache pipeline (not a test: prints figures).

Starts broker, Redis and the Flink job on free ports (same code as ``ece up``),
produces Debezium-envelope card changes as the CDC runner would, and times each
one from ``produce()`` until Redis reports the document key written (keyspace
notifications, so polling adds no delay). Then a burst to see throughput.

    uv run python bench/bench_flink_cache_latency.py [--events 1000] [--rate 200] [--burst 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from confluent_kafka import Producer

from ece.contracts.card_cache import document_key
from ece.contracts.topics import cdc_topic
from ece.settings import Settings
from ops.stack.base import free_port
from ops.stack.supervisor import Platform

TOPIC = cdc_topic("cards")


def envelope(card_id: str, version: int) -> str:
    after = {
        "id": card_id, "name": "Charizard", "set_name": "Base Set", "number": "4/102",
        "rarity": "holo", "edition": "1st", "attributes": '{"grade": 10}',
        "owner_id": "6f1c3c55-0d6e-4c52-9d1e-6f4f1a0c0001", "status": "active",
        "image_object_key": None, "created_at": "2024-03-01T10:00:00Z",
        "updated_at": "2024-03-02T10:00:00Z", "version": version,
    }
    return json.dumps({"before": None, "after": after, "op": "u", "ts_ms": 0,
                       "source": {"lsn": version, "txId": version, "ts_ms": 0, "table": "cards"}})


class Arrivals:
    """Records when Redis saw each document key set (keyspace notifications)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.client.config_set("notify-keyspace-events", "K$")
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe("__keyspace@0__:ece:card:*")
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg and msg["type"] == "pmessage" and msg["data"] == b"set":
                key = msg["channel"].decode().split(":", 1)[1]
                self.seen.setdefault(key, time.perf_counter())

    def wait_for(self, keys: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(k in self.seen for k in keys):
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.pubsub.close()
        self.client.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(plat: Platform, events: int, rate: float, burst: int) -> None:
    settings = plat.settings
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0,
                         "enable.idempotence": True})
    arrivals = Arrivals(settings.redis_url)
    # warm-up: the first records pay for partition discovery and operator warm-up
    warm = [str(uuid.uuid4()) for _ in range(20)]
    for card in warm:
        producer.produce(TOPIC, key=json.dumps({"id": card}), value=envelope(card, 1))
    producer.flush()
    arrivals.wait_for([document_key(c) for c in warm], 60)

    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(events):
        card = str(uuid.uuid4())
        target = start + i * interval
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.001, target - now))
        sent[document_key(card)] = time.perf_counter()
        producer.produce(TOPIC, key=json.dumps({"id": card}), value=envelope(card, 1))
        producer.poll(0)
    producer.flush()
    arrivals.wait_for(list(sent), 60)
    lat = [(arrivals.seen[k] - t) * 1000 for k, t in sent.items() if k in arrivals.seen]
    print(f"paced: {len(lat)}/{events} events at {rate:.0f}/s  produce->Redis "
          f"p50 {statistics.median(lat):.1f} ms  p90 {pct(lat, 0.90):.1f} ms  "
          f"p99 {pct(lat, 0.99):.1f} ms  max {max(lat):.1f} ms")

    cards = [str(uuid.uuid4()) for _ in range(burst)]
    t0 = time.perf_counter()
    for card in cards:
        while True:
            try:
                producer.produce(TOPIC, key=json.dumps({"id": card}), value=envelope(card, 1))
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush()
    produced = time.perf_counter() - t0
    keys = [document_key(c) for c in cards]
    arrivals.wait_for(keys, 180)
    done = [arrivals.seen[k] for k in keys if k in arrivals.seen]
    took = max(done) - t0
    print(f"burst: {len(done)}/{burst} events produced in {produced:.2f} s, all in Redis after "
          f"{took:.2f} s -> {len(done) / took:,.0f} events/s end to end")
    arrivals.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="paced events per second")
    parser.add_argument("--burst", type=int, default=20000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="ece-bench-"))
    os.environ.update({
        "ECE_DATA_DIR": str(data_dir),
        "ECE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ECE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "ECE_FLINK_REST_PORT": str(free_port()),
    })
    plat = Platform(Settings(), progress=lambda m: print(f"[stack] {m}", flush=True))
    try:
        t0 = time.monotonic()
        plat.require("broker", "redis", "flink")
        print(f"stack + job ready in {time.monotonic() - t0:.1f} s")
        run(plat, args.events, args.rate, args.burst)
    finally:
        plat.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
