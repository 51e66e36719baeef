"""P2: purchases per second through `POST /listings/{id}/purchase` against pgbench
running the same SQL transaction on the same database with the same client count.

The pgbench script (``PGBENCH_SCRIPT``, written to a temporary file at run time)
sends the statements one purchase sends (``api.market.service.purchase``), in the
same order: lock the listing, lock the card, one statement that marks the listing
sold, inserts the sale, moves the card (the version trigger fires) and appends
history and a valuation (``SELL_SQL``), then lock the buyer's and seller's
accounts, one statement inserting the ledger transaction and its three entries
(the triggers move the balances and check the sum at COMMIT; the platform-fee leg
comes last, which locks that shared row), and append an unsealed audit event (a
plain INSERT, as the API does; the sealer worker chains events outside the
purchase transaction). No global lock: the audit chain is sealed afterwards.
What the API adds on top is the price of HTTP, authentication (token + user
row + session check), the ORM, and the Redis cache write after COMMIT: the ratio
measures that overhead.

Both runs use separate, pre-seeded listings (every purchase buys a fresh one), the
same buyers and sellers, and the same client count, one after the other in one run.
Rate limiting is switched off for the API (``ECE_RATE_LIMIT_ENABLED=0``): the
benchmark measures the purchase path, not the limiter. The API runs with
``ECE_API_WORKERS`` uvicorn workers (2 unless the environment says otherwise).

API CPU per purchase is the utime+stime of the uvicorn worker processes
(``/proc/<pid>/stat``) over the measured run divided by the purchases it answered.
``--profile DIR`` adds a third, unmeasured run with py-spy sampling one worker and
prints its top frames (flame graph and collapsed stacks are left in DIR).

    uv run python -m bench.bench_p2_purchase [--profile /tmp/p2-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

from bench.harness import (
    LoadResult,
    load_average,
    print_profile,
    py_spy,
    run_load,
    throwaway_platform,
    worker_pids,
)
from bench.proc import cpu_seconds
from ece import db_roles

CLIENTS = 16
SECONDS = 10.0
IDLE_SECONDS = 3.0
BUYERS = 16
SELLERS = 16
API_LISTINGS = 20_000
PG_LISTINGS = 40_000
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PASSWORD = "bench-password-1"

PGBENCH_SCRIPT = r"""
\set b random(1, :nbuyers)
SELECT listing_id AS lid FROM bench_pg_queue WHERE n = (SELECT nextval('bench_pg_seq')) \gset
SELECT user_id AS buyer FROM bench_buyers WHERE n = :b \gset
BEGIN;
SELECT card_id AS cid, seller_id AS seller, price_cents AS price, status AS lstatus
  FROM listings WHERE id = ':lid' FOR UPDATE \gset
SELECT owner_id, status, version FROM cards WHERE id = ':cid' FOR UPDATE;
SELECT gen_random_uuid() AS sale, gen_random_uuid() AS tx, :price * :bps / 10000 AS fee \gset
WITH listing AS (UPDATE listings SET status = 'sold' WHERE id = ':lid'),
sale AS (INSERT INTO sales (id, listing_id, card_id, buyer_id, seller_id, price_cents, fee_cents)
         VALUES (':sale', ':lid', ':cid', ':buyer', ':seller', :price, :fee) RETURNING created_at),
card AS (UPDATE cards SET owner_id = ':buyer', status = 'available' WHERE id = ':cid'
         RETURNING version, updated_at),
history AS (INSERT INTO card_history (id, card_id, from_user_id, to_user_id, reason, reference_id)
            VALUES (gen_random_uuid(), ':cid', ':seller', ':buyer', 'sale', ':sale')),
valuation AS (INSERT INTO card_valuations (id, card_id, value_cents, source)
              VALUES (gen_random_uuid(), ':cid', :price, 'sale'))
SELECT sale.created_at, card.version, card.updated_at FROM sale, card;
SELECT a.id, a.balance_cents, (SELECT p.id FROM ledger_accounts p
        WHERE p.user_id IS NULL AND p.kind = 'platform_fees') AS fee_account
  FROM ledger_accounts a WHERE a.user_id IN (':buyer', ':seller')
 ORDER BY a.id FOR UPDATE OF a;
WITH ledger_transaction AS (INSERT INTO ledger_transactions (id, kind, reference_id)
                            VALUES (':tx', 'sale', ':sale'))
INSERT INTO ledger_entries (id, transaction_id, account_id, amount_cents)
SELECT gen_random_uuid(), ':tx', a.id, v.amount
  FROM (VALUES (1, ':buyer'::uuid, 'user_available', -:price),
               (2, ':seller'::uuid, 'user_available', :price - :fee),
               (3, NULL::uuid, 'platform_fees', :fee)) AS v(n, user_id, kind, amount)
  JOIN ledger_accounts a ON a.user_id IS NOT DISTINCT FROM v.user_id AND a.kind = v.kind
 ORDER BY v.n
RETURNING id, transaction_id, account_id, amount_cents, created_at;
INSERT INTO audit_events (actor_id, action, entity, entity_id, ip, details, at)
VALUES (':buyer', 'listing.purchase', 'sale', ':sale', '127.0.0.1',
        jsonb_build_object('listing_id', ':lid', 'card_id', ':cid', 'price_cents', :price),
        now()) RETURNING id;
END;
"""


SEED_SQL = (
    """CREATE TEMP TABLE s AS
       SELECT g, gen_random_uuid() AS card_id, gen_random_uuid() AS listing_id,
              (%(sellers)s::uuid[])[1 + g %% cardinality(%(sellers)s::uuid[])] AS seller
         FROM generate_series(1, %(total)s) g""",
    """INSERT INTO cards (id, name, set_name, number, rarity, owner_id, status)
       SELECT card_id, 'Bench ' || g, 'Bench', g::text, 'rare', seller, 'listed' FROM s""",
    """INSERT INTO card_history (card_id, from_user_id, to_user_id, reason)
       SELECT card_id, NULL, seller, 'issue' FROM s""",
    """INSERT INTO listings (id, card_id, seller_id, price_cents)
       SELECT listing_id, card_id, seller, 1000 + (g * 7919) %% 9000 FROM s""",
    "CREATE TABLE bench_pg_queue (n bigint PRIMARY KEY, listing_id uuid NOT NULL)",
    """INSERT INTO bench_pg_queue SELECT g - %(api)s, listing_id FROM s WHERE g > %(api)s""",
    "CREATE SEQUENCE bench_pg_seq",
    "CREATE TABLE bench_buyers (n int PRIMARY KEY, user_id uuid NOT NULL)",
    """INSERT INTO bench_buyers
       SELECT row_number() OVER (), u FROM unnest(%(buyers)s::uuid[]) u""",
)


def _users(api: str) -> tuple[list[tuple[str, str]], list[str], str]:
    """Buyers (id, token), seller ids, and the admin token."""
    from ops.cli.admin import _create  # the `ece admin create` service call

    asyncio.run(_create("bench@example.com", "bench", PASSWORD))
    with httpx.Client(base_url=api, timeout=30) as client:

        def login(name: str) -> str:
            r = client.post("/auth/login", json={"login": name, "password": PASSWORD})
            r.raise_for_status()
            return str(r.json()["access_token"])

        def register(name: str) -> str:
            r = client.post(
                "/auth/register",
                json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
            )
            r.raise_for_status()
            return str(r.json()["id"])

        admin = login("bench")
        buyers = []
        for i in range(BUYERS):
            uid = register(f"buyer{i}")
            buyers.append((uid, login(f"buyer{i}")))
            r = client.post(
                "/admin/deposits",
                headers={"Authorization": f"Bearer {admin}"},
                json={"user_id": uid, "amount_cents": 10**11, "reference": f"bench-{uid}"},
            )
            r.raise_for_status()
        sellers = [register(f"seller{i}") for i in range(SELLERS)]
    return buyers, sellers, admin


def _seed(url: str, sellers: list[str], buyers: list[str]) -> list[str]:
    """Cards already issued and listed (issue history included), split into the API's
    listings (returned) and pgbench's queue; plain SQL because setup is not measured."""
    total = API_LISTINGS + PG_LISTINGS
    with psycopg.connect(url, autocommit=True) as conn:
        params = {"sellers": sellers, "buyers": buyers, "total": total, "api": API_LISTINGS}
        for statement in SEED_SQL:
            conn.execute(statement, params)
        rows = conn.execute("SELECT listing_id FROM s WHERE g <= %s ORDER BY g", (API_LISTINGS,))
        listings = [str(r[0]) for r in rows.fetchall()]
        conn.execute("VACUUM ANALYZE")
    return listings


def _api_run(
    api: str, buyers: list[tuple[str, str]], pending: Iterator[str], workers: list[int],
    with_key: bool = False,
) -> tuple[LoadResult, float]:
    """The measured run and the workers' CPU milliseconds per purchase during it."""
    tokens = itertools.cycle([token for _, token in buyers])

    def purchase(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {next(tokens)}"}
        if with_key:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        return client.post(f"{api}/listings/{next(pending)}/purchase", headers=headers)

    run_load(purchase, CLIENTS, 1.5)  # warm-up: connections, pools, prepared plans
    before = cpu_seconds(workers)
    result = run_load(purchase, CLIENTS, SECONDS)
    cpu_ms = 1000 * (cpu_seconds(workers) - before) / max(1, result.requests)
    return result, cpu_ms


def _pgbench_run(url: str, fee_bps: int) -> tuple[float, list[float], int]:
    """(transactions/s, per-transaction latencies in ms, failed clients)."""
    with tempfile.TemporaryDirectory(prefix="ece-p2-") as tmp:
        script = Path(tmp) / "purchase.sql"
        script.write_text(PGBENCH_SCRIPT)
        base = [PGBENCH, "-n", "-f", str(script), "-D", f"nbuyers={BUYERS}", "-D", f"bps={fee_bps}"]
        base += ["-c", str(CLIENTS)]
        base += ["-j", "2"]
        warm = subprocess.run([*base, "-T", "2", url], capture_output=True, text=True)
        if warm.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{warm.stdout[-3000:]}\n{warm.stderr[-3000:]}")
        prefix = Path(tmp) / "log"
        out = subprocess.run(
            [*base, "-T", str(int(SECONDS)), "-l", "--log-prefix", str(prefix), url],
            check=False,
            capture_output=True,
            text=True,
        )
        tps = next(
            float(line.split("=")[1].split()[0])
            for line in out.stdout.splitlines()
            if line.startswith("tps")
        )
        latencies = []
        for log in Path(tmp).glob("log*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000)  # microseconds -> ms
        aborted = out.stdout.count("aborted") + out.stderr.count("aborted")
        if out.returncode != 0:
            print(out.stdout[-2000:], out.stderr[-2000:])
    return tps, latencies, aborted


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _check(url: str) -> tuple[int, int, int]:
    """(ledger sum, double sales, negative user balances) after both runs.

    A double sale is a card whose sales and ``sale`` history rows disagree, or whose
    owner is not the buyer of its latest sale.
    """
    with psycopg.connect(url) as conn:

        def one(sql: str) -> int:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

        ledger_sum = one("SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts")
        doubles = one(
            "SELECT count(*) FROM (SELECT s.card_id FROM sales s GROUP BY s.card_id "
            "HAVING count(*) <> (SELECT count(*) FROM card_history h "
            "WHERE h.card_id = s.card_id AND h.reason = 'sale')) d"
        ) + one(
            "SELECT count(*) FROM cards c JOIN LATERAL (SELECT buyer_id FROM sales "
            "WHERE card_id = c.id ORDER BY created_at DESC, id DESC LIMIT 1) last ON true "
            "WHERE c.owner_id <> last.buyer_id"
        )
        negative = one(
            "SELECT count(*) FROM ledger_accounts WHERE user_id IS NOT NULL AND balance_cents < 0"
        )
    return ledger_sum, doubles, negative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profile", type=Path, help="py-spy one worker into this folder")
    args = parser.parse_args()
    os.environ["ECE_RATE_LIMIT_ENABLED"] = "0"
    os.environ.setdefault("ECE_API_WORKERS", "2")
    with throwaway_platform("api") as platform:
        api = platform.part("api").url
        # The schema owner creates pgbench's queue tables and runs its script (the
        # app role may not create tables in public); the API runs as the app role.
        url = platform.settings.role_url(db_roles.OWNER)
        buyers, sellers, _admin = _users(api)
        listings = _seed(url, sellers, [uid for uid, _ in buyers])
        process = getattr(platform.part("api"), "process", None)
        server = process.proc.pid if process is not None and process.proc is not None else 0
        workers = worker_pids(server)
        pending = iter(listings)
        idle_before = cpu_seconds(workers)
        time.sleep(IDLE_SECONDS)  # what the workers burn with no request (background loops)
        idle_ms_per_s = 1000 * (cpu_seconds(workers) - idle_before) / IDLE_SECONDS
        load_api = load_average()
        ours, cpu_plain = _api_run(api, buyers, pending, workers)
        keyed, cpu_keyed = _api_run(api, buyers, pending, workers, with_key=True)
        load_pg = load_average()
        tps, pg_latencies, aborted = _pgbench_run(url, platform.settings.fee_bps)
        if args.profile is not None:
            with py_spy(workers[0], args.profile, "p2-purchase", SECONDS):
                _api_run(api, buyers, pending, workers)
        ledger_sum, doubles, negative = _check(url)
        worker_count = platform.settings.api_workers
    print(
        f"P2 purchase, {CLIENTS} concurrent clients, {SECONDS:.0f} s each, "
        f"{worker_count} uvicorn worker(s) (pids {workers}), {BUYERS} buyers, {SELLERS} sellers"
    )
    print(ours.line("POST /listings/{id}/purchase") + f"   [{load_api}]")
    print(keyed.line("  ... with Idempotency-Key"))
    print(
        f"{'pgbench, same transaction':<28} {tps:9.0f} tx/s   "
        f"p50 {statistics.median(pg_latencies):6.1f} ms  p99 {_p(pg_latencies, 0.99):6.1f} ms  "
        f"aborted clients {aborted}   [{load_pg}]"
    )
    print(f"API purchases/s {ours.rps:.0f}, pgbench purchases/s {tps:.0f}")
    print(f"ratio (API / pgbench): {ours.rps / tps:.3f}   (issue 12 item 4: >= 0.5)")
    print(f"purchase p99 latency through the API: {ours.pct(0.99):.1f} ms")
    print(
        f"API CPU per purchase: {cpu_plain:.2f} ms, {cpu_keyed:.2f} ms with a key "
        f"(utime+stime of the uvicorn workers over the measured run; issue 12 item 4: <= 6)"
    )
    print(
        f"  idle workers burn {idle_ms_per_s:.1f} ms CPU/s; net of that: "
        f"{cpu_plain - idle_ms_per_s / max(ours.rps, 1e-9):.2f} ms per purchase"
    )
    print(
        f"after both runs: ledger sum {ledger_sum}, double sales {doubles}, "
        f"negative balances {negative}"
    )
    if args.profile is not None:
        print_profile(args.profile / "p2-purchase.txt")


if __name__ == "__main__":
    main()
