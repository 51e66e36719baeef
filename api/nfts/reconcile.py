"""Reconciliation: does the chain agree with PostgreSQL about every minted NFT?

For each NFT in ``minted`` the database says who must hold it: the custody address
of the card's current owner. The chain says who does (and the mint's supply). The
verdict per NFT, published to ``ece.chain.reconciliation`` keyed by mint address:

- ``ok``: the expected owner holds the token and the supply is exactly 1;
- ``mismatch``: someone else holds it, or the supply is not 1;
- ``missing``: the mint account does not exist on chain.

Reconciliation only reports; it never repairs (a repair would have to decide who
is right, which is an operator's call). Mismatches are counted in Prometheus.

One refinement keeps it honest without crying wolf: right after a sale the
database already names the buyer while the chain-transfer worker is still moving
the token. A disagreement whose card changed owner less than ``grace_seconds``
ago, with that ownership change not yet confirmed (or failed) in
``nft_transactions``, is ``in_flight``: counted in the summary, not published,
and re-checked later by the streaming pipeline. Once the grace has passed it is a
``mismatch`` like any other.

Used by ``ece chain reconcile`` (:func:`reconcile`, the whole table in batches)
and by the Flink pipeline ``chain_reconciliation`` (:func:`reconcile_mints`, one
mint at a time as changes stream in).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from prometheus_client import Counter
from solana.rpc.async_api import AsyncClient
from solders.pubkey import Pubkey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from api.integrations.solana import find_mint, onchain_owners
from ece import kafka
from ece.contracts.topics import chain_reconciliation_topic
from ece.settings import Settings, get_settings

log = structlog.get_logger("api.nfts.reconcile")

OK, MISMATCH, MISSING, IN_FLIGHT = "ok", "mismatch", "missing", "in_flight"
PUBLISHED_STATUSES = (OK, MISMATCH, MISSING)  # the topic's contract enum
DEFAULT_GRACE_SECONDS = 120.0
DEFAULT_BATCH = 1000
CHAIN_CHUNK = 50  # NFTs per getMultipleAccounts (mint + ATA = 100 accounts, the RPC cap)
MAX_LISTED = 1000  # disagreements kept in the summary for display
FLUSH_TIMEOUT_S = 30.0

RESULTS = Counter(
    "ece_chain_reconciliation_results_total", "NFT reconciliation verdicts", ["status"]
)
MISMATCHES = Counter(
    "ece_chain_reconciliation_mismatches_total",
    "NFTs whose chain state disagrees with the database (mismatch or missing)",
    ["status"],
)

# The expected state of minted NFTs. ``transfer_in_flight``: the card changed owner
# after the NFT was requested, recently, and that change is not yet settled on chain.
_EXPECTED_SQL = """
SELECT n.id AS nft_id, n.card_id, n.mint_address, u.custody_address AS expected_owner,
       EXISTS (
         SELECT 1 FROM card_history h
         WHERE h.card_id = n.card_id
           AND h.at >= n.created_at
           AND h.at > clock_timestamp() - make_interval(secs => :grace)
           AND NOT EXISTS (
             SELECT 1 FROM nft_transactions t
             WHERE t.card_history_id = h.id AND t.status IN ('confirmed', 'failed'))
       ) AS transfer_in_flight
FROM nfts n
JOIN cards c ON c.id = n.card_id
LEFT JOIN users u ON u.id = c.owner_id
WHERE n.status = 'minted' AND n.mint_address IS NOT NULL
"""
_BATCH_SQL = text(_EXPECTED_SQL + " AND n.id > CAST(:after AS uuid) ORDER BY n.id LIMIT :n")
_MINTS_SQL = text(_EXPECTED_SQL + " AND n.mint_address = ANY(:mints)")
_FIRST_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Expected:
    """What the database says about one minted NFT."""

    nft_id: str
    card_id: str
    mint_address: str
    expected_owner: str | None
    transfer_in_flight: bool


@dataclass(frozen=True)
class ReconcileResult:
    """One verdict; :meth:`event` is the ``ece.chain.reconciliation`` value."""

    nft_id: str
    card_id: str
    mint_address: str
    expected_owner: str | None
    onchain_owner: str | None
    onchain_supply: int
    status: str
    checked_at: str

    def event(self) -> dict[str, Any]:
        return asdict(self)

    def value(self) -> str:
        return json.dumps(self.event(), separators=(",", ":"))


@dataclass
class ReconcileSummary:
    checked: int = 0
    ok: int = 0
    mismatch: int = 0
    missing: int = 0
    in_flight: int = 0
    published: int = 0
    seconds: float = 0.0
    disagreements: list[ReconcileResult] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing disagrees (in-flight transfers are not disagreements yet)."""
        return self.mismatch == 0 and self.missing == 0

    def add(self, result: ReconcileResult) -> None:
        self.checked += 1
        setattr(self, result.status, getattr(self, result.status) + 1)
        if result.status in (MISMATCH, MISSING, IN_FLIGHT) and (
            len(self.disagreements) < MAX_LISTED
        ):
            self.disagreements.append(result)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def count(result: ReconcileResult) -> None:
    """Prometheus: every verdict by status; disagreements also in the mismatch counter."""
    RESULTS.labels(result.status).inc()
    if result.status in (MISMATCH, MISSING):
        MISMATCHES.labels(result.status).inc()


# --- database side ----------------------------------------------------------------------


def _expected(rows: Sequence[Any]) -> list[Expected]:
    return [
        Expected(str(r.nft_id), str(r.card_id), r.mint_address, r.expected_owner,
                 bool(r.transfer_in_flight))
        for r in rows
    ]


async def load_batch(
    conn: AsyncSession | AsyncConnection, after: str, n: int, grace_seconds: float
) -> list[Expected]:
    """The next ``n`` minted NFTs after id ``after`` (keyset order: stable while rows change)."""
    rows = await conn.execute(_BATCH_SQL, {"after": after, "n": n, "grace": grace_seconds})
    return _expected(rows.all())


async def load_mints(
    conn: AsyncSession | AsyncConnection, mints: Sequence[str], grace_seconds: float
) -> list[Expected]:
    rows = await conn.execute(_MINTS_SQL, {"mints": list(mints), "grace": grace_seconds})
    return _expected(rows.all())


# --- chain side -------------------------------------------------------------------------


def _pubkey(value: str | None) -> Pubkey | None:
    if value is None:
        return None
    try:
        return Pubkey.from_string(value)
    except ValueError:
        return None


def _verdict(exp: Expected, exists: bool, holder: Pubkey | None, supply: int) -> str:
    if not exists:
        return MISSING
    if supply == 1 and holder is not None and str(holder) == exp.expected_owner:
        return OK
    return IN_FLIGHT if exp.transfer_in_flight else MISMATCH


async def check(client: AsyncClient, expected: Sequence[Expected]) -> list[ReconcileResult]:
    """Read the chain for a group of NFTs (batched RPC) and judge each one."""
    pairs: list[tuple[Pubkey, Pubkey | None]] = []
    mints: dict[str, Pubkey] = {}
    for exp in expected:
        mint = _pubkey(exp.mint_address)
        if mint is not None:
            mints[exp.mint_address] = mint
            pairs.append((mint, _pubkey(exp.expected_owner)))
    states = await onchain_owners(client, pairs) if pairs else {}
    results = []
    checked_at = _now()
    for exp in expected:
        mint = mints.get(exp.mint_address)
        holder, supply = states.get(mint, (None, 0)) if mint is not None else (None, 0)
        exists = mint is not None
        if exists and holder is None and supply == 0:
            # (None, 0) means "no mint" or "a mint whose supply was burnt": tell them apart.
            exists = await find_mint(client, mint) is not None  # type: ignore[arg-type]
        results.append(ReconcileResult(
            nft_id=exp.nft_id,
            card_id=exp.card_id,
            mint_address=exp.mint_address,
            expected_owner=exp.expected_owner,
            onchain_owner=str(holder) if holder is not None else None,
            onchain_supply=supply,
            status=_verdict(exp, exists, holder, supply),
            checked_at=checked_at,
        ))
    return results


# --- publishing -------------------------------------------------------------------------


class ResultPublisher(Protocol):
    def publish(self, result: ReconcileResult) -> None: ...

    async def flush(self) -> None: ...


class KafkaResultPublisher:
    """Producer to ``<prefix>.chain.reconciliation`` (key: mint address, acks from all replicas).

    ``flush`` raises if any message was not acknowledged: a silent gap in the
    reconciliation feed would look exactly like "everything is fine".
    """

    def __init__(self, bootstrap: str, topic: str | None = None) -> None:
        from confluent_kafka import Producer

        self.topic = topic or chain_reconciliation_topic()
        self.failed: list[str] = []
        # Not idempotent on purpose: a verdict is the latest state of one mint, so a
        # duplicate from a retried batch is harmless, while an idempotent producer's
        # InitProducerId costs ~1 s per run on the dev broker (see ece.kafka).
        self.producer = Producer(kafka.producer_config(bootstrap, idempotent=False))
        # Created if missing, the same shape the stream job creates.
        kafka.ensure_topics(bootstrap, [self.topic], timeout=10)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaResultPublisher:
        return cls(settings.kafka_bootstrap, chain_reconciliation_topic(settings.topic_prefix))

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def publish(self, result: ReconcileResult) -> None:
        while True:
            try:
                self.producer.produce(self.topic, key=result.mint_address, value=result.value(),
                                      on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)
        self.producer.poll(0)

    async def flush(self) -> None:
        remaining = await asyncio.to_thread(self.producer.flush, FLUSH_TIMEOUT_S)
        if remaining or self.failed:
            raise RuntimeError(
                f"{remaining} reconciliation results undelivered, {len(self.failed)} failed"
                + (f": {self.failed[0]}" if self.failed else "")
            )


# --- the two entry points ---------------------------------------------------------------


async def reconcile_mints(
    conn: AsyncSession | AsyncConnection,
    rpc_client: AsyncClient,
    mints: Sequence[str],
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> list[ReconcileResult]:
    """Verdicts for these mint addresses (unknown or not-minted ones are skipped).

    Counted in Prometheus; publishing is the caller's (the stream job's sink).
    """
    results = await check(rpc_client, await load_mints(conn, mints, grace_seconds))
    for result in results:
        count(result)
    return results


async def reconcile(
    session_or_conn: AsyncSession | AsyncConnection,
    rpc_client: AsyncClient,
    *,
    batch: int = DEFAULT_BATCH,
    publisher: ResultPublisher | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    concurrency: int = 4,
) -> ReconcileSummary:
    """Check every minted NFT against the chain; publish each settled verdict; never repair.

    NFTs are read in keyset batches of ``batch``; each batch is checked in groups of
    :data:`CHAIN_CHUNK` (one ``getMultipleAccounts`` each), ``concurrency`` groups in
    flight. The publisher defaults to Kafka from the settings and is flushed before
    returning, so a returned summary means every verdict reached the topic.
    """
    started = time.perf_counter()
    own = publisher is None
    pub: ResultPublisher | None = publisher  # the Kafka one is made at the first verdict
    summary = ReconcileSummary()
    gate = asyncio.Semaphore(concurrency)

    async def judge(group: list[Expected]) -> None:
        nonlocal pub
        async with gate:
            results = await check(rpc_client, group)
        for result in results:
            summary.add(result)
            count(result)
            if result.status in PUBLISHED_STATUSES:
                if pub is None:
                    pub = KafkaResultPublisher.from_settings(get_settings())
                pub.publish(result)
                summary.published += 1

    after = _FIRST_ID
    while True:
        expected = await load_batch(session_or_conn, after, batch, grace_seconds)
        if not expected:
            break
        after = expected[-1].nft_id
        groups = [expected[i : i + CHAIN_CHUNK] for i in range(0, len(expected), CHAIN_CHUNK)]
        await asyncio.gather(*(judge(g) for g in groups))
    if pub is not None:
        await pub.flush()
    summary.seconds = time.perf_counter() - started
    log.info("chain_reconciled", checked=summary.checked, ok=summary.ok,
             mismatch=summary.mismatch, missing=summary.missing, in_flight=summary.in_flight,
             seconds=round(summary.seconds, 3), own_publisher=own)
    return summary


async def reconcile_once(settings: Settings, *, batch: int = DEFAULT_BATCH,
                         grace_seconds: float = DEFAULT_GRACE_SECONDS,
                         concurrency: int = 4) -> ReconcileSummary:
    """One pass with its own short-lived engine and RPC client, for the callers outside
    the API process (``ece chain reconcile``, ``ece status``, ``ece check``, Dagster): the
    pass may run beside an app in the same process, so it never borrows the app's pool."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with AsyncClient(settings.solana_rpc_url, timeout=30) as client, \
                engine.connect() as conn:
            return await reconcile(conn, client, batch=batch, grace_seconds=grace_seconds,
                                   concurrency=concurrency)
    finally:
        await engine.dispose()
