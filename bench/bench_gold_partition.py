"""P4b: one day's partition of two gold marts over N synthetic sales, against plain DuckDB.

Writes N synthetic sales (``--sales``, default 2,000,000; the issue's figure is
10 M) spread over ``--days`` UTC days, in time order, to a Parquet file, loads
them as ``ece.silver.sales`` of a DuckLake whose catalog is a throwaway
PostgreSQL (what production runs), then times building one day's partition of
``gold.daily_market_summary`` and ``gold.card_price_daily`` with the pipeline's
own code (:func:`warehouse.partitions.build_days`: advisory lock, DELETE, INSERT
and COMMIT in one lake transaction). Baseline, same run: the hand-written DuckDB
SQL of the same two aggregates over the same Parquet file, into in-memory tables.
Best of ``--repeat`` runs each; the goal is a ratio of at most 2.

Run with ``uv run python -m bench.bench_gold_partition [--sales N] [--days D]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import duckdb

from bench.harness import throwaway_platform
from ece.settings import get_settings
from warehouse.lake import connect
from warehouse.partitions import build_days, render
from warehouse.sql import model

FIRST_DAY = date(2026, 3, 1)
MARTS = ("daily_market_summary", "card_price_daily")

BASELINE_SUMMARY = """
CREATE OR REPLACE TABLE memory.summary AS
SELECT CAST(timezone('UTC', created_at) AS DATE) AS date, count(*) AS sales,
       sum(price_cents) AS volume_cents, round(avg(price_cents)) AS avg_price_cents,
       round(median(price_cents)) AS median_price_cents,
       count(DISTINCT buyer_id) AS unique_buyers, count(DISTINCT seller_id) AS unique_sellers,
       sum(fee_cents) AS fees_cents
FROM read_parquet('{path}')
WHERE created_at >= TIMESTAMPTZ '{lo}' AND created_at < TIMESTAMPTZ '{hi}'
GROUP BY 1
"""
BASELINE_OHLC = """
CREATE OR REPLACE TABLE memory.ohlc AS
SELECT card_id, CAST(timezone('UTC', created_at) AS DATE) AS date,
       arg_min(price_cents, (created_at, id)) AS open_cents, max(price_cents) AS high_cents,
       min(price_cents) AS low_cents, arg_max(price_cents, (created_at, id)) AS close_cents,
       count(*) AS sales, sum(price_cents) AS volume_cents
FROM read_parquet('{path}')
WHERE created_at >= TIMESTAMPTZ '{lo}' AND created_at < TIMESTAMPTZ '{hi}'
GROUP BY ALL
"""


def write_sales(path: Path, sales: int, days: int) -> None:
    """``sales`` rows with silver.sales' columns, ``created_at`` ascending over ``days``."""
    seconds = days * 86_400
    duckdb.sql(f"""
        COPY (
            SELECT uuid() AS id, uuid() AS listing_id,
                   CAST(printf('00000000-0000-4000-8000-%012d', hash(i) % 200000) AS UUID)
                       AS card_id,
                   CAST(printf('00000000-0000-4000-9000-%012d', hash(i + 1) % 50000) AS UUID)
                       AS buyer_id,
                   CAST(printf('00000000-0000-4000-9000-%012d', hash(i + 2) % 50000) AS UUID)
                       AS seller_id,
                   CAST(100 + hash(i + 3) % 100000 AS BIGINT) AS price_cents,
                   CAST((100 + hash(i + 3) % 100000) * 250 // 10000 AS BIGINT) AS fee_cents,
                   TIMESTAMPTZ '{FIRST_DAY.isoformat()} 00:00:00+00'
                       + to_microseconds(CAST(i * {seconds} * 1000000 // {sales} AS BIGINT))
                       AS created_at
            FROM range({sales}) AS t(i)
            ORDER BY created_at
        ) TO '{path}' (FORMAT parquet)
    """)


def best(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10, help="days the sales spread over")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    day = FIRST_DAY + timedelta(days=args.days // 2)
    lo, hi = f"{day} 00:00:00+00", f"{day + timedelta(days=1)} 00:00:00+00"
    with tempfile.TemporaryDirectory(prefix="ece-p4b-") as tmp, \
            throwaway_platform("postgres"):
        path = Path(tmp) / "sales.parquet"
        started = time.perf_counter()
        write_sales(path, args.sales, args.days)
        print(f"{args.sales:,} sales over {args.days} days -> {path.stat().st_size / 1e6:.0f} MB "
              f"Parquet in {time.perf_counter() - started:.1f} s")
        settings = get_settings()
        con = connect(settings)
        started = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE ece.silver.sales AS "
                    f"SELECT * FROM read_parquet('{path}')")
        con.execute("CREATE OR REPLACE TABLE ece.silver.listings (created_at TIMESTAMPTZ)")
        con.execute("CREATE OR REPLACE TABLE ece.silver.auctions "
                    "(status VARCHAR, result VARCHAR, ends_at TIMESTAMPTZ)")
        con.execute("CREATE OR REPLACE TABLE ece.silver.trade_offers "
                    "(status VARCHAR, updated_at TIMESTAMPTZ)")
        print(f"loaded into ece.silver.sales (DuckLake) in {time.perf_counter() - started:.1f} s")
        marts = [model("gold", name) for name in MARTS]

        def pipeline() -> None:
            for m in marts:
                build_days(con, m, day, day, settings.lake_catalog)

        def baseline() -> None:
            raw = duckdb.connect()
            for sql in (BASELINE_SUMMARY, BASELINE_OHLC):
                raw.execute(sql.format(path=path, lo=lo, hi=hi))
            raw.close()

        ours, ours_median = best(pipeline, args.repeat)
        base, base_median = best(baseline, args.repeat)
        rows = {m.name: con.execute(f"SELECT count(*) FROM {m.table} WHERE date = ?",
                                    [day]).fetchone() for m in marts}
        query_only, _ = best(lambda: [con.execute(f"SELECT count(*) FROM ({render(m, day, day)})")
                                      .fetchall() for m in marts], args.repeat)
        con.close()
        print(f"partition {day}: rows {rows}")
        print(f"pipeline (lock + DELETE + INSERT + COMMIT, 2 marts): best {ours:.3f} s, "
              f"median {ours_median:.3f} s; its queries alone on the lake: {query_only:.3f} s")
        print(f"baseline (hand-written DuckDB SQL on the Parquet): best {base:.3f} s, "
              f"median {base_median:.3f} s")
        print(f"ratio pipeline / baseline: {ours / base:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
