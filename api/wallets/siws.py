"""Sign-In-With-Solana messages (the EIP-4361 text layout, as Solana wallets show it).

The server writes the whole message and stores it with its nonce; the client signs
those exact bytes. Verification therefore never parses client text: it checks the
ed25519 signature against the stored message, so a client cannot alter the domain,
the expiry or the nonce of what it signs.

The domain and URI name this API (settings ``siws_domain`` / ``siws_uri``, i.e.
``ECE_SIWS_DOMAIN`` / ``ECE_SIWS_URI``, when it sits behind a public host name, else
the configured API host and port; the chain id is ``ECE_SIWS_CHAIN_ID``), so a
signature obtained by a phishing site for its own domain is useless here. In prod
(``ECE_ENV=prod``) ``ECE_SIWS_DOMAIN`` must be set: a message naming the bind
address (``127.0.0.1:8000``) would tell the user nothing about who asks.

The statement says what the signature is for (sign in, or link the wallet to the
signed-in account); the stored challenge carries the same ``purpose``.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from solders.pubkey import Pubkey
from solders.signature import Signature

from ece.settings import Settings

CHALLENGE_TTL = timedelta(minutes=5)
STATEMENT = "Sign in to ECE, the Elite Card Exchange."
STATEMENTS = {
    "login": STATEMENT,
    "link": "Link this wallet to your account on ECE, the Elite Card Exchange.",
}
VERSION = "1"


@dataclass(frozen=True)
class Origin:
    """Who asks for the signature: shown to the user by the wallet."""

    domain: str
    uri: str
    chain_id: str


def require_domain(settings: Settings) -> None:
    """Refuse to run in prod without a configured public SIWS domain."""
    if settings.env == "prod" and not (settings.siws_domain or "").strip():
        raise RuntimeError("ECE_SIWS_DOMAIN must be set in prod (the API's public host name)")


def origin(settings: Settings) -> Origin:
    require_domain(settings)
    host = f"{settings.api_host}:{settings.api_port}"
    domain = (settings.siws_domain or "").strip()
    return Origin(
        domain=domain or host,
        uri=settings.siws_uri or (f"https://{domain}/api/v1" if domain else f"http://{host}/api/v1"),
        chain_id=settings.siws_chain_id or "localnet",
    )


def new_nonce() -> str:
    """128 random bits, alphanumeric as EIP-4361 requires."""
    return secrets.token_hex(16)


def rfc3339(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_message(
    org: Origin,
    address: str,
    nonce: str,
    issued_at: datetime,
    expires_at: datetime,
    purpose: str = "login",
) -> str:
    return (
        f"{org.domain} wants you to sign in with your Solana account:\n"
        f"{address}\n"
        f"\n"
        f"{STATEMENTS[purpose]}\n"
        f"\n"
        f"URI: {org.uri}\n"
        f"Version: {VERSION}\n"
        f"Chain ID: {org.chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {rfc3339(issued_at)}\n"
        f"Expiration Time: {rfc3339(expires_at)}"
    )


def signature_valid(address: str, signature: str, message: str) -> bool:
    """True when ``signature`` (base58) is ``address``'s ed25519 signature of ``message``."""
    try:
        return Signature.from_string(signature).verify(
            Pubkey.from_string(address), message.encode()
        )
    except ValueError:
        return False
