"""Live sources of the system health report: the API's Prometheus metrics, the CDC
replication slot, the Flink job's checkpoints and the dead-letter topic.

Each probe reads one source at the address the settings give (the same ones
``ece status`` checks) with a short timeout, and returns a section that names the
source and the time it was read. A source that does not answer is a section that
says so (``unavailable``), never an exception: the report still renders.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import httpx
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from ece.contracts.topics import SLOT, dlq_topic
from ece.kafka import admin
from ece.settings import Settings
from warehouse.reports.model import Section

TIMEOUT_S = 2.0
DLQ_READ_S = 10.0
QUANTILES = (0.5, 0.95, 0.99)


def _at(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else repr(exc)
    return f"{type(exc).__name__}: {text}"


def api_base(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


@dataclass
class ApiMetrics:
    """The API's request figures and its latency histogram (for the chart)."""

    totals: Section
    routes: Section
    buckets: list[tuple[str, int]] = field(default_factory=list)  # (le, requests in bucket)


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the first bucket holding the q-th request (Prometheus' histogram)."""
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    for bound, count in cumulative:
        if count >= q * total:
            return bound
    return None


def api_metrics(settings: Settings, now: datetime) -> ApiMetrics:
    """Requests, 5xx errors and latency from ``GET /metrics`` (counters since the API started)."""
    url = f"{api_base(settings)}/metrics"
    source = (f"Prometheus metrics at GET {url}, read {_at(now)}; counters since the API "
              "process started (one worker's view when ECE_API_WORKERS > 1)")
    totals = Section("api.http", "API requests, errors and latency", source)
    routes = Section("api.routes", "API requests by route", source, shown=15)
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)
        response.raise_for_status()
        families = list(text_string_to_metric_families(response.text))
    except (httpx.HTTPError, ValueError) as exc:
        why = f"the API did not answer: {_why(exc)}"
        return ApiMetrics(_with(totals, unavailable=why), _with(routes, unavailable=why))
    per_route: dict[str, list[float]] = {}  # route -> [requests, errors, seconds]
    buckets: dict[float, float] = {}
    for family in families:
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if sample.name == "ece_http_requests_total":
                per_route.setdefault(route, [0, 0, 0])[0] += sample.value
            elif sample.name == "ece_http_errors_total":
                per_route.setdefault(route, [0, 0, 0])[1] += sample.value
            elif sample.name == "ece_http_request_duration_seconds_sum":
                per_route.setdefault(route, [0, 0, 0])[2] += sample.value
            elif sample.name == "ece_http_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0) + sample.value
    requests = int(sum(v[0] for v in per_route.values()))
    errors = int(sum(v[1] for v in per_route.values()))
    seconds = sum(v[2] for v in per_route.values())
    cumulative = sorted(buckets.items())
    quantiles = [_quantile(cumulative, q) for q in QUANTILES]
    totals = _with(totals, columns=["requests", "errors_5xx", "error_rate", "latency_mean_s",
                                    "latency_p50_le_s", "latency_p95_le_s", "latency_p99_le_s"],
                   rows=[(requests, errors, round(errors / requests, 6) if requests else None,
                          round(seconds / requests, 6) if requests else None, *quantiles)])
    rows = sorted(((r, int(v[0]), int(v[1]), round(v[2] / v[0] * 1000, 3) if v[0] else None)
                   for r, v in per_route.items()), key=lambda r: (-r[1], r[0]))
    routes = _with(routes, columns=["route", "requests", "errors_5xx", "latency_mean_ms"],
                   rows=rows, empty="no request answered yet")
    shown, previous, finite = [], 0.0, 0.0
    for bound, count in cumulative:
        label = f"≤{bound:g}s" if bound != float("inf") else f">{finite:g}s"
        shown.append((label, int(count - previous)))
        previous, finite = count, bound if bound != float("inf") else finite
    return ApiMetrics(totals, routes, shown)


def cdc_slot(settings: Settings, now: datetime) -> Section:
    """The replication slot CDC streams from: active, WAL status and bytes not yet confirmed."""
    where = f"{settings.db_host}:{settings.db_port}/{settings.db_name}"
    base = Section("cdc.slot", "CDC replication slot", f"PostgreSQL pg_replication_slots on "
                   f"{where}, read {_at(now)} (lag = current WAL - confirmed flush LSN)")
    try:
        with psycopg.connect(settings.database_url, connect_timeout=int(TIMEOUT_S)) as conn:
            row = conn.execute(
                "SELECT slot_name, active, wal_status, confirmed_flush_lsn::text, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)).fetchone()
    except psycopg.Error as exc:
        return _with(base, unavailable=f"PostgreSQL did not answer: {_why(exc)}")
    if row is None:
        return _with(base, unavailable=f"slot {SLOT} does not exist (CDC has never started)")
    return _with(base, columns=["slot", "active", "wal_status", "confirmed_flush_lsn",
                                "lag_bytes"], rows=[tuple(row)])


def flink_url(settings: Settings) -> str:
    return (settings.flink_rest_url or f"http://127.0.0.1:{settings.flink_rest_port}").rstrip("/")


def _ms(value: Any) -> str | None:
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="seconds") \
        if isinstance(value, int | float) and value > 0 else None


def flink_checkpoints(settings: Settings, now: datetime) -> Section:
    """Every stream job's checkpoint counts and its latest completed checkpoint."""
    url = flink_url(settings)
    base = Section("flink.checkpoints", "Stream job checkpoints",
                   f"Flink REST API GET {url}/jobs/overview and /jobs/<id>/checkpoints, "
                   f"read {_at(now)}", key_columns=2)
    try:
        with httpx.Client(timeout=TIMEOUT_S) as client:
            jobs = client.get(f"{url}/jobs/overview").raise_for_status().json().get("jobs", [])
            rows = []
            for job in sorted(jobs, key=lambda j: -int(j.get("start-time", 0))):
                stats = client.get(f"{url}/jobs/{job['jid']}/checkpoints").json()
                counts = stats.get("counts", {})
                last = (stats.get("latest") or {}).get("completed") or {}
                rows.append((job.get("name"), job["jid"], job.get("state"),
                             counts.get("completed"), counts.get("failed"),
                             counts.get("in_progress"), last.get("id"),
                             _ms(last.get("latest_ack_timestamp")),
                             last.get("end_to_end_duration"),
                             last.get("checkpointed_size", last.get("state_size"))))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return _with(base, unavailable=f"Flink did not answer: {_why(exc)}")
    return _with(base, columns=["job", "job_id", "state", "completed", "failed", "in_progress",
                                "last_checkpoint_id", "last_completed_at", "last_duration_ms",
                                "last_size_bytes"], rows=rows, empty="no stream job is running")


def dlq_letters(settings: Settings, day: date, now: datetime) -> Section:
    """Dead letters whose ``at`` falls on ``day``, by job and reason, read from the DLQ topic."""
    topic = dlq_topic(settings.topic_prefix)
    source = (f"Kafka topic {topic} at {settings.kafka_bootstrap}, read from the beginning "
              f"{_at(now)} (letters whose `at` is on {day.isoformat()}; the local broker keeps "
              "topics in memory, so letters from before its last restart are gone)")
    base = Section("dlq", "Dead letters", source, key_columns=2)
    try:
        metadata = admin(settings, log_level=0).list_topics(timeout=TIMEOUT_S * 2)
    except Exception as exc:  # noqa: BLE001 - any client error: the broker is not reachable
        return _with(base, unavailable=f"the broker did not answer: {_why(exc)}")
    if topic not in metadata.topics:
        return _with(base, columns=["job", "reason", "letters"],
                     empty=f"{topic} does not exist: nothing was ever dead-lettered")
    partitions = list(metadata.topics[topic].partitions)
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"ece-report-{uuid.uuid4()}",
        "enable.auto.commit": False, "enable.partition.eof": True,
        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50, "log_level": 0})
    counts: dict[tuple[str, str], int] = {}
    done: set[int] = set()
    deadline = time.monotonic() + DLQ_READ_S
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while len(done) < len(partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    done.add(int(msg.partition() or 0))
                continue
            try:
                letter = json.loads(msg.value() or b"{}")
                at = datetime.fromisoformat(str(letter.get("at") or letter.get("failed_at")))
            except (ValueError, TypeError):
                continue
            if at.astimezone(UTC).date() == day:
                key = (str(letter.get("job") or letter.get("pipeline")), str(letter.get("reason")))
                counts[key] = counts.get(key, 0) + 1
    finally:
        consumer.close()
    if len(done) < len(partitions):
        base = _with(base, source=source + f"; stopped after {DLQ_READ_S:.0f} s, counts may be low")
    rows = sorted(((j, r, n) for (j, r), n in counts.items()), key=lambda r: (-r[2], r[0]))
    return _with(base, columns=["job", "reason", "letters"], rows=rows,
                 empty=f"no letter dead-lettered on {day.isoformat()}")



def _with(section: Section, **changes: Any) -> Section:
    return replace(section, **changes)
