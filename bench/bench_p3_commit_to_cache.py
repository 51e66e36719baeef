"""P3: commit in Postgres -> card document updated in Redis by the Flink job (via Debezium).

    uv run python -m bench.bench_p3_commit_to_cache [--updates 300 --rate 20]

Baseline in the same run: the API's own write-through (commit, then the versioned
set-if-newer in Redis from the same process), i.e. what the cache costs without the
stream. Each sample is the time from COMMIT returning until the new version is
readable in Redis.
"""

import argparse
import time
import uuid
from typing import cast

import psycopg
import psycopg.rows
import redis

from bench.harness import percentiles, throwaway_platform
from ece.contracts import card_cache


def _seed_card(conn: psycopg.Connection) -> str:
    owner = conn.execute(
        "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x') RETURNING id",
        (f"p3-{uuid.uuid4().hex[:8]}@example.com", f"p3_{uuid.uuid4().hex[:8]}"),
    ).fetchone()[0]  # type: ignore[index]
    return str(conn.execute(
        "INSERT INTO cards (name, set_name, number, rarity, owner_id) "
        "VALUES ('P3', 'Bench', '1', 'rare', %s) RETURNING id", (owner,)).fetchone()[0])  # type: ignore[index]


def _wait_version(cache: redis.Redis, card_id: str, version: int, timeout: float = 30) -> float:
    key = card_cache.document_key(card_id)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        raw = cast(bytes | None, cache.get(key))
        if raw is not None and card_cache.decode_entry(raw)[1] >= version:
            return time.perf_counter()
        time.sleep(0.0005)
    raise TimeoutError(f"version {version} of {card_id} never reached Redis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="commits per second")
    args = parser.parse_args()
    with throwaway_platform("migrate", "redis", "cdc", "flink") as platform:
        settings = platform.settings
        cache = redis.Redis.from_url(settings.redis_url)
        script = cache.register_script(card_cache.SET_IF_NEWER_LUA)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            card_id = _seed_card(conn)
            _wait_version(cache, card_id, 1, timeout=180)  # job running, topic flowing
            stream: list[float] = []
            direct: list[float] = []
            for i in range(args.updates):
                version = int(conn.execute(
                    "UPDATE cards SET name = %s WHERE id = %s RETURNING version",
                    (f"P3 {i}", card_id)).fetchone()[0])  # type: ignore[index]
                committed = time.perf_counter()
                stream.append((_wait_version(cache, card_id, version) - committed) * 1000)
                time.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - committed)))
            for i in range(args.updates):
                with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                    record = cur.execute("UPDATE cards SET name = %s WHERE id = %s RETURNING *",
                                         (f"P3 direct {i}", card_id)).fetchone()
                committed = time.perf_counter()
                assert record is not None
                keys, argv = card_cache.set_if_newer_args(card_cache.card_document(record),
                                                          record["version"], 3600)
                script(keys=keys, args=argv)
                direct.append((time.perf_counter() - committed) * 1000)
                time.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - committed)))
    print(f"P3 commit -> Redis card cache, {args.updates} updates at {args.rate:.0f}/s")
    print(f"  via Debezium -> Kafka -> Flink : {percentiles(stream)}")
    print(f"  API write-through (baseline)   : {percentiles(direct)}")
    print(f"  ratio of medians (stream / write-through): "
          f"{sorted(stream)[len(stream) // 2] / sorted(direct)[len(direct) // 2]:.0f}x")


if __name__ == "__main__":
    main()
