"""``ece keys ...``: rotate the key-encryption key (KEK) without downtime.

Everything secret at rest is an envelope (``api.core.crypto``): a per-record data
key under AES-256-GCM, wrapped by a KEK that is derived per purpose from a
versioned keyring. Rotation therefore never re-encrypts payloads; it rewraps
data keys:

1. refuse unless every key id that a record names is configured (a wrong or
   missing KEK is reported with key ids, never with key material);
2. write KEK version N+1 (atomic, fsynced, 0600, under ``<secrets_dir>/kek``):
   from this instant every process seals new records with it, and every process
   still opens the older versions (the keyring is re-read on use), so readers
   never fail during the rotation;
3. sweep: custody keys (compare-and-set per row), card image objects (atomic
   rewrite), the platform key files; each record afterwards carries the new key id;
4. wait a moment and sweep again, catching records sealed by requests that had
   picked the old version just before step 2.

Concurrent rotations are serialised by a PostgreSQL advisory lock. In prod (or
with an explicit keyring) step 2 is the secrets manager's: add version N+1 to
``ECE_KEYRING_FILE`` / ``ECE_KEK_VERSIONS`` and run ``ece keys rewrap`` (steps 3-4).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from api.core.crypto import (
    DecryptionError,
    Keyring,
    KeyringConfigError,
    add_kek_version,
    custody_cipher,
    image_cipher,
    kek_versions,
    keyring,
    local_kek_refusal,
)
from api.storage import ObjectStore, get_object_store
from ece.settings import Settings, get_settings

keys_app = typer.Typer(help="Manage the key-encryption keys (KEKs).", no_args_is_help=True)

ROTATION_LOCK_KEY = 7_310_017
IMAGE_PREFIX = "cards/"
PLATFORM_KEYS_DIR = "platform"
UNREADABLE = "<unreadable>"


class RotationRefused(RuntimeError):
    """Rotation cannot start safely (unknown key ids in use, another rotation running)."""


@dataclass
class KeyStatus:
    """Which KEK wraps what: counts of records per key id (ids only, never keys)."""

    versions: int
    active: dict[str, str]  # purpose -> active key id
    configured: dict[str, list[str]]  # purpose -> every key id the ring opens
    custody_keys: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)
    platform_keys: Counter[str] = field(default_factory=Counter)

    def not_active(self) -> dict[str, int]:
        """Records per kind still wrapped by something other than their active KEK."""
        return {
            "custody_keys": _stale(self.custody_keys, self.active["custody"]),
            "images": _stale(self.images, self.active["images"]),
            "platform_keys": _stale(self.platform_keys, self.active["platform-keys"]),
        }

    def unknown(self) -> list[str]:
        """Key ids named by records that no configured KEK has."""
        missing = set()
        for purpose, counts in (
            ("custody", self.custody_keys),
            ("images", self.images),
            ("platform-keys", self.platform_keys),
        ):
            missing |= {k for k in counts if k not in self.configured[purpose]}
        missing.discard(UNREADABLE)  # corrupt objects are reported by the sweep, not here
        return sorted(missing)


@dataclass
class RotationReport:
    version: int
    active: dict[str, str]
    custody_rewrapped: int = 0
    images_rewrapped: int = 0
    platform_rewrapped: int = 0
    failures: list[str] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _stale(counts: Counter[str], active: str) -> int:
    return sum(n for key_id, n in counts.items() if key_id != active)


def _platform_purpose() -> str:
    try:
        from api.nfts.platform_keys import PURPOSE
    except ImportError:  # pragma: no cover - before the mint saga lands
        return "platform-keys"
    return PURPOSE


def _rings(settings: Settings) -> dict[str, Keyring]:
    """One keyring per HKDF purpose, keyed by the names the status report uses."""
    custody = custody_cipher(settings)
    assert isinstance(custody, Keyring)
    return {
        "custody": custody,
        "images": image_cipher(settings),
        "platform-keys": keyring(settings, _platform_purpose()),
    }


async def _object_key_ids(store: ObjectStore) -> Counter[str]:
    from api.cards.images import decode_object

    counts: Counter[str] = Counter()
    async for key in store.list(IMAGE_PREFIX):
        try:
            counts[decode_object(await store.get(key)).key_id] += 1
        except (KeyError, ValueError):
            counts[UNREADABLE] += 1
    return counts


def _platform_key_ids(settings: Settings) -> Counter[str]:
    counts: Counter[str] = Counter()
    folder = settings.secrets_dir / PLATFORM_KEYS_DIR
    if folder.is_dir():
        for path in folder.glob("*.json"):
            counts[str(json.loads(path.read_text()).get("key_id"))] += 1
    return counts


async def key_status(
    settings: Settings, conn: AsyncConnection, store: ObjectStore | None = None
) -> KeyStatus:
    rings = _rings(settings)
    rows = await conn.execute(text("SELECT key_id, count(*) FROM custody_keys GROUP BY key_id"))
    return KeyStatus(
        versions=len(kek_versions(settings)),
        active={p: r.key_id for p, r in rings.items()},
        configured={p: list(r.key_ids) for p, r in rings.items()},
        custody_keys=Counter({str(k): int(n) for k, n in rows}),
        images=await _object_key_ids(store or get_object_store(settings)),
        platform_keys=_platform_key_ids(settings),
    )


# --- the sweeps -----------------------------------------------------------------------


async def _rewrap_custody(engine: AsyncEngine, ring: Keyring, batch: int, report: RotationReport
                          ) -> None:
    """Rewrap custody_keys rows not under the active KEK, batch by batch (keyset on user_id).

    Each UPDATE is a compare-and-set on the old blob, so a row changed meanwhile is
    left alone (and picked up by the next sweep) instead of being overwritten.
    """
    after = "00000000-0000-0000-0000-000000000000"
    select_batch = text(
        "SELECT user_id, secret_enc, key_id FROM custody_keys "
        "WHERE key_id <> :active AND user_id > CAST(:after AS uuid) ORDER BY user_id LIMIT :n"
    )
    update = text(
        "UPDATE custody_keys SET secret_enc = :blob, key_id = :key_id "
        "WHERE user_id = :user_id AND key_id = :old_key_id AND secret_enc = :old_blob"
    )
    while True:
        async with engine.connect() as conn:
            params_in = {"active": ring.key_id, "after": after, "n": batch}
            rows = (await conn.execute(select_batch, params_in)).all()
        if not rows:
            return
        params: list[dict[str, Any]] = []
        for user_id, blob, key_id in rows:
            try:
                new_blob, new_id = ring.rewrap_to_active(bytes(blob), str(user_id).encode(), key_id)
            except DecryptionError as exc:
                report.failures.append(f"custody_keys user {user_id}: {exc}")
                continue
            params.append({"blob": new_blob, "key_id": new_id, "user_id": user_id,
                           "old_key_id": key_id, "old_blob": bytes(blob)})
        if params:
            async with engine.begin() as conn:
                result = await conn.execute(update, params)
                report.custody_rewrapped += max(result.rowcount, 0)
        after = str(rows[-1][0])


async def _rewrap_images(store: ObjectStore, ring: Keyring, report: RotationReport) -> None:
    from api.cards.images import rewrap_image_object

    async for key in store.list(IMAGE_PREFIX):
        try:
            if await rewrap_image_object(store, ring, key):
                report.images_rewrapped += 1
        except (DecryptionError, KeyError, ValueError) as exc:
            report.failures.append(f"image {key}: {exc}")


def _rewrap_platform_keys(settings: Settings, report: RotationReport) -> None:
    try:
        from api.nfts import platform_keys
    except ImportError:  # pragma: no cover - before the mint saga lands
        return
    try:
        report.platform_rewrapped += platform_keys.rewrap(settings)
    except Exception as exc:  # its errors name files and key ids, never key bytes
        report.failures.append(f"platform keys: {type(exc).__name__}: {exc}")
    from api.notifications import vapid

    try:
        report.platform_rewrapped += int(vapid.rewrap(settings))
    except Exception as exc:  # errors name files and key ids, never key bytes
        report.failures.append(f"vapid key: {type(exc).__name__}: {exc}")


async def _sweep(settings: Settings, engine: AsyncEngine, store: ObjectStore, batch: int,
                 report: RotationReport) -> None:
    rings = _rings(settings)
    await _rewrap_custody(engine, rings["custody"], batch, report)
    await _rewrap_images(store, rings["images"], report)
    await asyncio.to_thread(_rewrap_platform_keys, settings, report)


async def rotate_keys(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    store: ObjectStore | None = None,
    settle_seconds: float = 2.0,
    batch: int = 500,
    new_secret: str | None = None,
    add_version: bool = True,
) -> RotationReport:
    """Add a KEK version and rewrap every data key under it (the ``ece keys rotate`` body).

    Safe while the API serves: see the module docstring for why readers never fail.
    ``settle_seconds`` is how long to wait before the final sweep; it should exceed
    the longest request that seals a record (a registration, an image upload).
    ``add_version=False`` only rewraps under the newest configured version (``ece keys
    rewrap``: in prod, after the secrets manager added it to the keyring).
    """
    settings = settings or get_settings()
    refusal = local_kek_refusal(settings)
    if add_version and refusal:
        raise RotationRefused(refusal)
    own_engine = engine is None
    engine = engine or create_async_engine(settings.sqlalchemy_url, pool_size=2)
    store = store or get_object_store(settings)
    started = time.perf_counter()
    try:
        async with engine.connect() as lock_conn:
            got = await lock_conn.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ROTATION_LOCK_KEY}
            )
            await lock_conn.commit()
            if not got:
                raise RotationRefused("another key rotation is running")
            try:
                status = await key_status(settings, lock_conn, store)
                await lock_conn.commit()
                if status.unknown():
                    raise RotationRefused(
                        "records are wrapped by KEKs that are not configured: "
                        f"{', '.join(status.unknown())} (configured: "
                        f"{', '.join(status.configured['custody'])}, ...). Configure the KEK "
                        "they were written with (ECE_CUSTODY_KEK / secrets) before rotating."
                    )
                version = (await asyncio.to_thread(add_kek_version, settings, new_secret)
                           if add_version else kek_versions(settings)[-1][0])
                report = RotationReport(version=version,
                                        active={p: r.key_id for p, r in _rings(settings).items()})
                await _sweep(settings, engine, store, batch, report)
                await asyncio.sleep(settle_seconds)
                await _sweep(settings, engine, store, batch, report)
                final = await key_status(settings, lock_conn, store)
                await lock_conn.commit()
                report.remaining = final.not_active()
            finally:
                await lock_conn.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": ROTATION_LOCK_KEY}
                )
                await lock_conn.commit()
    finally:
        if own_engine:
            await engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


# --- CLI ------------------------------------------------------------------------------


@keys_app.callback()
def _keys() -> None:
    """Manage the key-encryption keys (a callback keeps ``keys`` a group)."""


async def _status(settings: Settings) -> KeyStatus:
    engine = create_async_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await key_status(settings, conn)
    finally:
        await engine.dispose()


def _print_counts(title: str, counts: Counter[str], active: str) -> None:
    if not counts:
        typer.echo(f"  {title}: none")
        return
    for key_id, n in sorted(counts.items()):
        marker = " (active)" if key_id == active else ""
        typer.echo(f"  {title}: {n} under {key_id}{marker}")


@keys_app.command("status")
def status() -> None:
    """Show the KEK versions and how many records each key id wraps (exit 1: unknown ids)."""
    settings = get_settings()
    result = asyncio.run(_status(settings))
    typer.echo(f"KEK versions: {result.versions}")
    for purpose, key_id in result.active.items():
        typer.echo(f"  active {purpose}: {key_id}")
    _print_counts("custody keys", result.custody_keys, result.active["custody"])
    _print_counts("card images", result.images, result.active["images"])
    _print_counts("platform keys", result.platform_keys, result.active["platform-keys"])
    if result.unknown():
        typer.echo(f"error: records name unconfigured KEKs: {', '.join(result.unknown())}",
                   err=True)
        raise typer.Exit(1)


@keys_app.command("rotate")
def rotate(
    settle_seconds: float = typer.Option(
        2.0, "--settle-seconds", help="wait before the final sweep (longest sealing request)"
    ),
) -> None:
    """Generate a new KEK version and rewrap every data key under it, while serving.

    Exit codes: 0 all records rewrapped; 1 some could not be (listed, by key id);
    2 refused (unconfigured key ids in use, or another rotation running).
    """
    _run_rotation(settle_seconds, add_version=True)


@keys_app.command("rewrap")
def rewrap(
    settle_seconds: float = typer.Option(
        2.0, "--settle-seconds", help="wait before the final sweep (longest sealing request)"
    ),
) -> None:
    """Rewrap every data key under the newest configured KEK version (no new version).

    The prod rotation: add version N+1 to the keyring your secrets manager fills
    (``ECE_KEYRING_FILE`` / ``ECE_KEK_VERSIONS``), then run this. Exit codes as ``rotate``.
    """
    _run_rotation(settle_seconds, add_version=False)


def _run_rotation(settle_seconds: float, add_version: bool) -> None:
    try:
        report = asyncio.run(rotate_keys(get_settings(), settle_seconds=settle_seconds,
                                         add_version=add_version))
    except (RotationRefused, KeyringConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"KEK version {report.version} active ({report.seconds:.1f}s):")
    for purpose, key_id in report.active.items():
        typer.echo(f"  {purpose}: {key_id}")
    typer.echo(
        f"rewrapped: {report.custody_rewrapped} custody keys, {report.images_rewrapped} card "
        f"images, {report.platform_rewrapped} platform keys"
    )
    stale = {k: v for k, v in report.remaining.items() if v}
    for failure in report.failures:
        typer.echo(f"error: {failure}", err=True)
    if stale:
        typer.echo(f"still under an older KEK: {stale} (run again)", err=True)
    if report.failures or stale:
        raise typer.Exit(1)
