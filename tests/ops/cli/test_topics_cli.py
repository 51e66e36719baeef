"""`ece topics`: what a real-time consumer sees, printed as JSON lines."""

import json
import subprocess
import sys
import uuid
from typing import Any

from confluent_kafka import Producer


def test_tail_prints_keys_values_and_tombstones(platform: Any) -> None:
    platform.require("broker")
    topic = f"ece.test.tail.{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": platform.settings.kafka_bootstrap})
    producer.produce(topic, key=b'{"id": "a"}', value=b'{"op": "c"}')
    producer.produce(topic, key=b'{"id": "a"}', value=None)
    assert producer.flush(10) == 0

    listed = subprocess.run([sys.executable, "-m", "ops", "topics", "list"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout

    tailed = subprocess.run([sys.executable, "-m", "ops", "topics", "tail", topic, "--limit", "2"],
                            capture_output=True, text=True, timeout=90, check=False)
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [line["key"] for line in lines] == [{"id": "a"}, {"id": "a"}]
    assert lines[0]["value"] == {"op": "c"}
    assert lines[1]["value"] is None  # the tombstone
    assert [line["offset"] for line in lines] == [0, 1]
