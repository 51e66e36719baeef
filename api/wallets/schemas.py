"""Wallet bodies. Addresses and signatures are checked as base58 of the right length
here, so a malformed one is a 422 before any database work; a well-formed signature
that does not verify is a 401 from the service."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from solders.pubkey import Pubkey
from solders.signature import Signature


def _check_address(value: str) -> str:
    try:
        key = Pubkey.from_string(value)
    except ValueError as exc:
        raise ValueError(f"not a base58 ed25519 public key: {exc}") from None
    if not key.is_on_curve():
        # Off-curve addresses (program-derived) have no private key: they can never sign.
        raise ValueError("not an ed25519 public key (off curve)")
    return str(key)


def _check_signature(value: str) -> str:
    try:
        Signature.from_string(value)
    except ValueError as exc:
        raise ValueError(f"not a base58 ed25519 signature: {exc}") from None
    return value


# The base58 alphabet in the schema too (clients and generators see it); what no pattern
# can say (the decoded length, a point on the curve) stays in the validators.
BASE58 = r"^[1-9A-HJ-NP-Za-km-z]+$"
Address = Annotated[
    str,
    StringConstraints(min_length=32, max_length=44, pattern=BASE58),
    AfterValidator(_check_address),
]
SignatureB58 = Annotated[
    str,
    StringConstraints(min_length=64, max_length=88, pattern=BASE58),
    AfterValidator(_check_signature),
]
Nonce = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Purpose = Literal["login", "link"]


class ChallengeIn(Strict):
    """``purpose`` binds the challenge: ``login`` ones only sign in
    (``/auth/wallet/login``), ``link`` ones only link (``/me/wallets``). Omitted, it
    is ``link`` for an address no account has linked yet and ``login`` otherwise
    (the only use each can have)."""

    address: Address
    purpose: Purpose | None = None


class ChallengeOut(BaseModel):
    message: str = Field(description="Sign these exact UTF-8 bytes with the wallet")
    nonce: str
    expires_at: datetime
    purpose: Purpose


class SignedIn(Strict):
    """A signature over the message of a challenge issued for ``address``.

    ``nonce`` is optional (the contract body is ``{address, signature}``): without it
    the newest challenges of the address are tried; with it, exactly that one.
    """

    address: Address
    signature: SignatureB58
    nonce: Nonce | None = None


class WalletOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    address: str
    linked_at: datetime


class WalletPage(BaseModel):
    items: list[WalletOut]
    next_cursor: str | None
