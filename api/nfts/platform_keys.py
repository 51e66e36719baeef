"""The platform's own keys: the Solana fee payer, the Arweave wallet, the mint seed.

Why files and not a table: these are a handful of process-wide secrets, needed by
workers before any business row exists, and they must never reach the CDC
publication or the warehouse. Each is generated once (on first use, by whichever
process gets there first) and stored under ``<secrets_dir>/platform/<name>.json``
as an AES-256-GCM envelope (the custody keyring with its own HKDF purpose, so the
same ``ece keys rotate`` KEK versions apply), with the ``key_id`` that wrapped it.
The public half is stored beside it in clear so operators can fund the address
without decrypting anything. Secret bytes are never logged or put in an exception.

Funding: on a local node (loopback RPC / arlocal) the fee payer and the Arweave
wallet are topped up automatically; on a real network an unfunded key is a
configuration error reported loudly (:class:`PlatformKeyUnfunded`) with the
address to fund, never silently retried forever.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from api.core import crypto
from api.integrations.arweave import ArweaveClient, Wallet
from api.integrations.solana.errors import RpcRejected
from api.integrations.solana.transport import call
from ece.private_files import write_private
from ece.settings import Settings

log = structlog.get_logger("api.nfts.platform_keys")

PURPOSE = "platform-keys"  # HKDF info: independent of the custody and image KEKs
FILE_VERSION = 1
FEE_PAYER = "fee_payer"
ARWEAVE_WALLET = "arweave_wallet"

LAMPORTS_PER_SOL = 1_000_000_000
FEE_PAYER_MINIMUM = 2 * LAMPORTS_PER_SOL  # below this a local payer is topped up
FEE_PAYER_TOP_UP = 1_000 * LAMPORTS_PER_SOL  # one local airdrop pays for ~100k mints
ARWEAVE_TOP_UP = 10**15  # winston: thousands of metadata uploads at arlocal's price

_lock = threading.Lock()
_cache: dict[tuple[Path, str], bytes] = {}


class PlatformKeyError(RuntimeError):
    """A platform key cannot be loaded (wrong KEK, tampered file)."""


class PlatformKeyUnfunded(RuntimeError):
    """A platform key on a real network has too little balance: an operator must fund it."""


def _cipher(settings: Settings) -> crypto.Keyring:
    """The KEK keyring under this module's purpose: seals with the active KEK version,
    opens with any configured one (``ece keys rotate`` then calls :func:`rewrap`)."""
    return crypto.keyring(settings, PURPOSE)


def key_path(settings: Settings, name: str) -> Path:
    return settings.secrets_dir / "platform" / f"{name}.json"


def _aad(name: str) -> bytes:
    """Binds each envelope to its name: a fee payer file copied over the wallet fails."""
    return f"ece:platform-key:{name}".encode()


def _open(settings: Settings, name: str, record: dict[str, Any]) -> bytes:
    cipher = _cipher(settings)
    blob = base64.b64decode(record["sealed"])
    try:
        return cipher.open(blob, _aad(name), key_id=record.get("key_id"))
    except crypto.DecryptionError as exc:
        raise PlatformKeyError(
            f"platform key {name!r} ({key_path(settings, name)}) does not open with the "
            f"configured KEKs (it names key id {record.get('key_id')}): {exc}"
        ) from None


def _write_new(settings: Settings, name: str, secret: bytes, public: str) -> bool:
    """Create the file atomically; False when another process created it first."""
    path = key_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    cipher = _cipher(settings)
    record = {
        "version": FILE_VERSION,
        "name": name,
        "public": public,
        "key_id": cipher.key_id,
        "sealed": base64.b64encode(cipher.seal(secret, _aad(name))).decode(),
    }
    # A link never replaces: the first writer wins, across processes.
    return write_private(path, json.dumps(record), replace=False)


def load_or_create(
    settings: Settings, name: str, generate: Callable[[], tuple[bytes, str]]
) -> bytes:
    """The secret bytes of platform key ``name``; ``generate() -> (secret, public)`` once."""
    path = key_path(settings, name)
    with _lock:
        cached = _cache.get((path, name))
        if cached is not None:
            return cached
        if not path.exists():
            secret, public = generate()
            if _write_new(settings, name, secret, public):
                # The public half only: on a real network this is the address to fund.
                log.warning("platform_key_created", key=name, public=public, path=str(path))
        record = json.loads(path.read_text())
        secret = _open(settings, name, record)
        _cache[(path, name)] = secret
        return secret


def public_of(settings: Settings, name: str) -> str | None:
    """The stored public half (address) without decrypting, or None if not created yet."""
    path = key_path(settings, name)
    return str(json.loads(path.read_text())["public"]) if path.exists() else None


def rewrap(settings: Settings) -> int:
    """Rewrap every platform key with the active KEK (for ``ece keys rotate``); how many changed."""
    cipher = _cipher(settings)
    changed = 0
    for name in (FEE_PAYER, ARWEAVE_WALLET):
        path = key_path(settings, name)
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        if record.get("key_id") == cipher.key_id:
            continue
        secret = _open(settings, name, record)
        record["key_id"] = cipher.key_id
        record["sealed"] = base64.b64encode(cipher.seal(secret, _aad(name))).decode()
        # New file fsynced, renamed over the old one, folder fsynced: a crash leaves the
        # old envelope or the new one, never a torn or lost key.
        write_private(path, json.dumps(record), replace=True)
        changed += 1
    with _lock:
        _cache.clear()
    return changed


def fee_payer(settings: Settings) -> Keypair:
    """The Solana keypair that pays every mint and transfer fee (and new ATAs' rent)."""

    def generate() -> tuple[bytes, str]:
        keypair = Keypair()
        return bytes(keypair), str(keypair.pubkey())

    return Keypair.from_bytes(load_or_create(settings, FEE_PAYER, generate))


def arweave_wallet(settings: Settings) -> Wallet:
    """The platform's Arweave wallet (RSA-4096 JWK) that pays for metadata uploads."""

    def generate() -> tuple[bytes, str]:
        wallet = Wallet.generate()
        return json.dumps(wallet.to_jwk()).encode(), wallet.address

    return Wallet.from_jwk(json.loads(load_or_create(settings, ARWEAVE_WALLET, generate)))


def mint_seed(settings: Settings) -> bytes:
    """The secret that, with an NFT id, derives its mint keypair (``ECE_MINT_SEED`` in prod;
    otherwise generated once in ``data/secrets/mint_seed``)."""
    explicit = settings.mint_seed
    if explicit is not None and not explicit.get_secret_value():
        explicit = None  # ECE_MINT_SEED= (empty) means unset
    return settings.secret("mint_seed", explicit).encode()


# --- funding --------------------------------------------------------------------------


def is_local_rpc(url: str) -> bool:
    """A node on this machine (our LiteSVM node, a test validator): airdrops are free."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def ensure_fee_payer_funded(
    client: AsyncClient, payer: Pubkey, rpc_url: str, minimum: int = FEE_PAYER_MINIMUM
) -> int:
    """The payer's balance, airdropped up on a local node; raises if unfunded elsewhere."""
    balance = (await call("getBalance", lambda: client.get_balance(payer))).value
    if balance >= minimum:
        return balance
    if not is_local_rpc(rpc_url):
        raise PlatformKeyUnfunded(
            f"the platform fee payer {payer} has {balance} lamports on {rpc_url}; "
            f"fund it with at least {minimum} lamports ({minimum / LAMPORTS_PER_SOL:g} SOL) "
            "before minting (ECE airdrops only on a local node)"
        )
    try:
        await call("requestAirdrop", lambda: client.request_airdrop(payer, FEE_PAYER_TOP_UP))
    except RpcRejected as exc:
        # Two workers starting together send the identical airdrop: the node refuses the
        # second (AlreadyProcessed). The balance below says whether we are funded.
        log.info("fee_payer_airdrop_refused", payer=str(payer), error=str(exc))
    balance = (await call("getBalance", lambda: client.get_balance(payer))).value
    if balance < minimum:
        raise PlatformKeyUnfunded(
            f"the platform fee payer {payer} has {balance} lamports on {rpc_url} after an "
            "airdrop; the local node refused to fund it"
        )
    log.info("fee_payer_airdropped", payer=str(payer), balance=balance)
    return balance


async def ensure_arweave_funded(client: ArweaveClient, wallet: Wallet, needed: int) -> int:
    """The wallet's balance, minted on arlocal; raises if a real gateway says it is short."""
    if await client.is_local():
        return await client.ensure_funded(wallet, max(needed, ARWEAVE_TOP_UP))
    balance = await client.balance(wallet.address)
    if balance < needed:
        raise PlatformKeyUnfunded(
            f"the platform Arweave wallet {wallet.address} has {balance} winston on "
            f"{client.url}; an upload needs {needed}: fund it before minting"
        )
    return balance
