"""Refresh latency: ``ece warehouse refresh`` after a small delta, wall and CPU seconds.

Starts PostgreSQL and the broker on free ports, produces a base of change events
(cards, users, listings, sales, card history, ledger) as Debezium envelopes, runs
one refresh to build everything, then produces a small delta (``--delta`` events,
default 2,000) and times a second ``ece warehouse refresh`` as its own process
(what an analyst waits for), with the Dagster instance recorded as on a real
platform. CPU is the child's user + system time.

Run with ``uv run python -m bench.bench_refresh_latency [--base N] [--delta N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.harness import throwaway_platform
from ece.contracts.topics import cdc_topic
from ece.settings import REPO_ROOT, Settings, get_settings
from ops.stack.dagster import write_instance

TABLES = ("users", "cards", "listings", "sales", "card_history", "ledger_accounts",
          "ledger_transactions", "ledger_entries")


class Events:
    """Debezium-shaped change events for a handful of tables, LSNs increasing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                                  "enable.idempotence": True, "linger.ms": 20})
        self.lsn = 10_000
        self.users: list[str] = []
        self.cards: list[str] = []
        self.account = str(uuid.uuid4())
        self.count = 0

    def topics(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        futures = admin.create_topics([NewTopic(cdc_topic(t, self.settings.topic_prefix), 1, 1)
                                       for t in TABLES])
        for future in futures.values():
            future.result(15)

    def change(self, table: str, row: dict[str, Any]) -> None:
        self.lsn += 8
        now = int(time.time() * 1000)
        value = {"before": None, "after": row, "op": "c", "ts_ms": now,
                 "source": {"lsn": self.lsn, "txId": self.lsn // 8, "ts_ms": now,
                            "table": table, "schema": "public", "db": "ece"}}
        self.producer.produce(cdc_topic(table, self.settings.topic_prefix),
                              key=json.dumps({"id": row["id"]}).encode(),
                              value=json.dumps(value).encode())
        self.count += 1

    def produce(self, n: int) -> None:
        """About ``n`` events: new users and cards, then sales with their history and ledger."""
        at = datetime.now(UTC)
        stamp = at.isoformat()
        if not self.users:
            self.change("ledger_accounts", {"id": self.account, "user_id": None,
                                            "kind": "platform_fees", "balance_cents": 0,
                                            "created_at": stamp})
        target = self.count + n
        i = 0
        while self.count < target:
            i += 1
            if len(self.users) < 50 or i % 10 == 0:
                user = str(uuid.uuid4())
                self.users.append(user)
                self.change("users", {"id": user, "email": f"{user[:8]}@x.test",
                                      "username": user[:8], "role": "user",
                                      "custody_address": None, "created_at": stamp,
                                      "updated_at": stamp})
            if len(self.cards) < 100 or i % 3 == 0:
                card = str(uuid.uuid4())
                self.cards.append(card)
                self.change("cards", {
                    "id": card, "name": f"Card {card[:6]}", "set_name": "Alpha", "number": "1",
                    "rarity": "rare", "edition": "1st", "attributes": "{}",
                    "owner_id": self.users[0], "status": "available", "image_object_key": None,
                    "version": 1, "created_at": stamp, "updated_at": stamp})
            card = self.cards[i % len(self.cards)]
            buyer, seller = self.users[i % len(self.users)], self.users[(i + 7) % len(self.users)]
            when = (at - timedelta(seconds=i)).isoformat()
            listing, sale, tx = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
            price = 100 + i % 5000
            self.change("listings", {"id": listing, "card_id": card, "seller_id": seller,
                                     "price_cents": price, "status": "sold",
                                     "created_at": when, "updated_at": when})
            self.change("sales", {"id": sale, "listing_id": listing, "card_id": card,
                                  "buyer_id": buyer, "seller_id": seller, "price_cents": price,
                                  "fee_cents": price * 5 // 100, "created_at": when})
            self.change("card_history", {"id": str(uuid.uuid4()), "card_id": card,
                                         "from_user_id": seller, "to_user_id": buyer,
                                         "reason": "sale", "reference_id": sale, "at": when})
            self.change("ledger_transactions", {"id": tx, "kind": "sale", "reference_id": sale,
                                                "created_at": when})
            for cents in (price, -price):
                self.change("ledger_entries", {"id": str(uuid.uuid4()), "transaction_id": tx,
                                               "account_id": self.account,
                                               "amount_cents": cents, "created_at": when})
        assert self.producer.flush(30) == 0


def refresh(settings: Settings) -> tuple[float, float, int]:
    """One ``ece warehouse refresh`` process: (wall s, CPU s, exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    argv = [sys.executable, "-m", "ops", "warehouse", "refresh"]
    if os.environ.get("ECE_BENCH_PROFILE"):  # cProfile of the refresh process, for digging
        argv = [sys.executable, "-m", "cProfile", "-o", os.environ["ECE_BENCH_PROFILE"],
                "-m", "ops", "warehouse", "refresh"]
    proc = subprocess.run(argv,
                          cwd=REPO_ROOT, env={**os.environ, **settings.as_environment()},
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    elif os.environ.get("ECE_BENCH_VERBOSE"):
        print(proc.stderr[-6000:])
    return wall, cpu, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=20_000, help="events before the first refresh")
    parser.add_argument("--delta", type=int, default=2_000, help="events of the timed refresh")
    parser.add_argument("--repeat", type=int, default=2, help="timed small-delta refreshes")
    args = parser.parse_args()
    with throwaway_platform("postgres", "broker"):
        settings = get_settings()
        write_instance(settings)  # a recorded Dagster instance, as `make up` leaves it
        events = Events(settings)
        events.topics()
        events.produce(args.base)
        wall, cpu, rc = refresh(settings)
        print(f"first refresh ({events.count} events): {wall:.1f} s wall, {cpu:.1f} s CPU, "
              f"exit {rc}")
        for run in range(args.repeat):
            events.produce(args.delta)
            wall, cpu, rc = refresh(settings)
            print(f"refresh after a delta of {args.delta} events (run {run + 1}): "
                  f"{wall:.1f} s wall, {cpu:.1f} s CPU, exit {rc}")
        wall, cpu, rc = refresh(settings)
        print(f"refresh with nothing new: {wall:.1f} s wall, {cpu:.1f} s CPU, exit {rc}")


if __name__ == "__main__":
    main()
