"""Arweave wallets: RSA-4096 keys in the JWK format every Arweave tool reads.

Keeping the JWK format (not PEM) means a wallet file made here opens in arweave-js,
ArConnect or arkb and vice versa. The address is ``base64url(sha256(n))`` — the hash
of the raw modulus, not of any encoding of the public key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from api.integrations.arweave.encoding import (
    b64url_decode,
    b64url_encode,
    b64url_to_int,
    int_to_b64url,
)

KEY_BITS = 4096
PUBLIC_EXPONENT = 65537
# Arweave nodes sign with a salt as long as the digest; any length verifies (see verify()).
SALT_LENGTH = 32


_SIGN_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)
_VERIFY_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def address_of(owner: str) -> str:
    """The wallet address for an ``owner`` field (base64url modulus)."""
    return b64url_encode(hashlib.sha256(b64url_decode(owner)).digest())


def verify(owner: str, message: bytes, signature: bytes) -> bool:
    """Check an RSA-PSS/SHA-256 signature by the key whose modulus is ``owner``.

    The salt length is detected, not assumed: arweave-js signs with Node's default
    (the maximum, 478 bytes for 4096-bit keys) while Arweave nodes use 32, and both
    are valid on chain.
    """
    public = rsa.RSAPublicNumbers(PUBLIC_EXPONENT, b64url_to_int(owner)).public_key()
    try:
        public.verify(signature, message, _VERIFY_PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Wallet:
    """A private key plus the derived public values Arweave puts in transactions."""

    key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> Wallet:
        """A fresh RSA-4096 wallet (takes about a second: 4096-bit primes are slow)."""
        return cls(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS))

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> Wallet:
        """Load a JWK as written by arweave-js ``wallets.generate()`` or by ``to_jwk``."""
        if jwk.get("kty") != "RSA":
            raise ValueError("an Arweave wallet is an RSA JWK (kty=RSA)")
        public = rsa.RSAPublicNumbers(b64url_to_int(jwk["e"]), b64url_to_int(jwk["n"]))
        numbers = rsa.RSAPrivateNumbers(
            p=b64url_to_int(jwk["p"]),
            q=b64url_to_int(jwk["q"]),
            d=b64url_to_int(jwk["d"]),
            dmp1=b64url_to_int(jwk["dp"]),
            dmq1=b64url_to_int(jwk["dq"]),
            iqmp=b64url_to_int(jwk["qi"]),
            public_numbers=public,
        )
        return cls(numbers.private_key())

    @classmethod
    def load(cls, path: Path) -> Wallet:
        return cls.from_jwk(json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        """Write the JWK readable by the owner only (it is the money)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.to_jwk(), handle)
        tmp.replace(path)

    @classmethod
    def load_or_create(cls, path: Path) -> Wallet:
        """The wallet at ``path``, generating and saving one on first use."""
        if Path(path).exists():
            return cls.load(path)
        wallet = cls.generate()
        wallet.save(path)
        return wallet

    def to_jwk(self) -> dict[str, str]:
        priv = self.key.private_numbers()
        pub = priv.public_numbers
        return {
            "kty": "RSA",
            "e": int_to_b64url(pub.e),
            "n": int_to_b64url(pub.n),
            "d": int_to_b64url(priv.d),
            "p": int_to_b64url(priv.p),
            "q": int_to_b64url(priv.q),
            "dp": int_to_b64url(priv.dmp1),
            "dq": int_to_b64url(priv.dmq1),
            "qi": int_to_b64url(priv.iqmp),
        }

    @property
    def owner(self) -> str:
        """The transaction ``owner`` field: the base64url RSA modulus."""
        n = self.key.public_key().public_numbers().n
        return b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    @property
    def address(self) -> str:
        return address_of(self.owner)

    def sign(self, message: bytes) -> bytes:
        """RSA-PSS / SHA-256 / MGF1-SHA-256 with a 32-byte salt, as Arweave nodes do."""
        return self.key.sign(message, _SIGN_PSS, hashes.SHA256())
