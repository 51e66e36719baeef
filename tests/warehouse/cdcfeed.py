"""Produce Debezium-shaped change events into the real broker, as the CDC would.

Each test gets its own topic prefix, so topics never collide between tests in one
session, and its own lake catalog database (see conftest).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ece.contracts.topics import cdc_topic
from ece.settings import Settings

RARITIES = ("common", "uncommon", "rare", "epic", "legendary")


def card_row(card_id: str, version: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": card_id, "name": f"Card {card_id[:8]}", "set_name": "Alpha", "number": "001",
        "rarity": RARITIES[version % len(RARITIES)], "edition": "1st",
        "attributes": json.dumps({"hp": 10 * version}), "owner_id": str(uuid.uuid4()),
        "status": "available", "image_object_key": None, "version": version,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": f"2026-01-01T00:00:{version % 60:02d}.123456Z",
    }
    row.update(over)
    return row


@dataclass
class Feed:
    """A producer bound to one test's topic prefix, numbering LSNs like Postgres would."""

    settings: Settings
    bootstrap: str
    lsn: int = 1_000
    ts_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    _producer: Producer | None = field(default=None, init=False)

    def topic(self, table: str) -> str:
        return cdc_topic(table, self.settings.topic_prefix)

    def create_topic(self, table: str, partitions: int = 2) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        future = admin.create_topics([NewTopic(self.topic(table), partitions, 1)])
        with contextlib.suppress(Exception):  # already there
            future[self.topic(table)].result(10)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap,
                                       "enable.idempotence": True, "linger.ms": 5})
        return self._producer

    def change(self, table: str, op: str, row: dict[str, Any], *, lsn: int | None = None,
               tombstone: bool = True, key_fields: tuple[str, ...] = ("id",)) -> int:
        """Publish one change (and the tombstone after a delete); returns its LSN.

        ``key_fields``: the table's primary key columns (Debezium's message key)."""
        if lsn is None:
            self.lsn += 8
            lsn = self.lsn
        self.ts_ms += 1
        before, after = (row, None) if op == "d" else (None, row)
        value = {"before": before, "after": after, "op": op, "ts_ms": self.ts_ms + 5,
                 "source": {"lsn": lsn, "txId": lsn // 8, "ts_ms": self.ts_ms, "table": table,
                            "schema": "public", "db": "ece", "connector": "postgresql"}}
        key = json.dumps({name: row[name] for name in key_fields}).encode()
        self.producer.produce(self.topic(table), key=key, value=json.dumps(value).encode())
        if op == "d" and tombstone:
            self.producer.produce(self.topic(table), key=key, value=None)
        return lsn

    def flush(self) -> None:
        assert self.producer.flush(15) == 0, "undelivered messages"
