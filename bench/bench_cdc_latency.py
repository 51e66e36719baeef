"""CDC latency: commit in Postgres -> acknowledged by Kafka (and -> seen by a consumer).

    uv run python bench/bench_cdc_latency.py [--rate 50] [--seconds 10] [--burst 20000]

Starts postgres, migrations, the broker and CDC on free ports. The topic is created
with ``message.timestamp.type=LogAppendTime`` *before* CDC starts, so each message's
timestamp is the broker's append time: with one node and acks=all that is the ack.
Commit -> ack = broker timestamp - wall clock right after COMMIT returned (ms
resolution). Commit -> consumed adds the consumer's fetch. The burst phase inserts
many rows in one transaction and reports events/s until the last is consumed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import throwaway_platform  # noqa: E402
from ece.contracts.topics import cdc_topic  # noqa: E402


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(label: str, samples: list[float]) -> str:
    return (f"{label:<24} p50 {statistics.median(samples):7.1f} ms   p99 {pct(samples, 0.99):7.1f}"
            f" ms   max {max(samples):7.1f} ms   (n={len(samples)})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0, help="commits per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=20_000, help="rows in the burst phase")
    args = parser.parse_args()

    with throwaway_platform("postgres", "broker", "migrate") as platform:
        settings = platform.settings
        topic = cdc_topic("notifications", settings.topic_prefix)
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        admin.create_topics([NewTopic(topic, 1, -1, config={
            "message.timestamp.type": "LogAppendTime"})])[topic].result(10)
        started = time.monotonic()
        platform.require("cdc")
        print(f"cdc ready (JVM start + snapshot) in {time.monotonic() - started:.1f} s")

        commit_at: dict[str, float] = {}
        ack_ms: list[float] = []
        seen_ms: list[float] = []
        append_time = [True]
        seen: set[str] = set()
        stop = threading.Event()

        def consume() -> None:
            consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                                 "group.id": "bench-cdc", "enable.auto.commit": False,
                                 "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            while not stop.is_set():
                msg = consumer.poll(0.05)
                if msg is None or msg.error() is not None or msg.value() is None:
                    continue
                now = time.time()
                key = (msg.key() or b"").decode()
                row_id = key.split('"id":"', 1)[-1].split('"', 1)[0]
                seen.add(row_id)
                t0 = commit_at.get(row_id)
                if t0 is None:
                    continue
                ts_type, ts = msg.timestamp()
                if ts_type != TIMESTAMP_LOG_APPEND_TIME:
                    append_time[0] = False
                ack_ms.append(ts - t0 * 1000)
                seen_ms.append((now - t0) * 1000)
            consumer.close()

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            user = conn.execute(
                "INSERT INTO users (email, username, password_hash) "
                "VALUES ('bench@example.test', 'bench', 'x') RETURNING id").fetchone()
            assert user is not None
            time.sleep(2)  # consumer assigned and caught up
            interval = 1.0 / args.rate
            deadline = time.monotonic() + args.seconds
            i = 0
            while time.monotonic() < deadline:
                row = conn.execute(
                    "INSERT INTO notifications (user_id, seq, kind, source_event_id) "
                    "VALUES (%s, %s, 'card_received', %s) RETURNING id",
                    (user[0], i + 1, f"lat-{i}"),
                ).fetchone()
                assert row is not None
                commit_at[str(row[0])] = time.time()
                i += 1
                time.sleep(interval)
            wait_until = time.monotonic() + 30
            while len(seen_ms) < len(commit_at) and time.monotonic() < wait_until:
                time.sleep(0.05)
            print(f"\nsteady load: {args.rate:.0f} commits/s for {args.seconds:.0f} s")
            label = "commit -> Kafka ack" if append_time[0] else "commit -> produce (CreateTime)"
            print(line(label, ack_ms))
            print(line("commit -> consumed", seen_ms))

            before = len(seen)
            t0 = time.monotonic()
            conn.execute(
                "INSERT INTO notifications (user_id, seq, kind, source_event_id) "
                "SELECT %s, %s + g, 'card_received', 'burst-' || g "
                "FROM generate_series(1, %s) g", (user[0], i, args.burst))
            commit_s = time.monotonic() - t0
            wait_until = time.monotonic() + 120
            while len(seen) < before + args.burst and time.monotonic() < wait_until:
                time.sleep(0.02)
            elapsed = time.monotonic() - t0
            got = len(seen) - before
            print(f"\nburst: {args.burst} rows in one transaction (commit took {commit_s:.2f} s)")
            rate = got / elapsed
            print(f"  {got} consumed in {elapsed:.2f} s -> {rate:,.0f} events/s end to end")
        stop.set()
        reader.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
