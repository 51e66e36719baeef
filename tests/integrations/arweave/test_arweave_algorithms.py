"""The Python Arweave algorithms against arweave-js: pinned vectors and live answers.

No gateway here: these prove deep hash, chunking/data root/proofs and v2 signatures
are byte-identical to arweave-js, which is what a gateway checks an upload against.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from arweave_reference import js, payload, vectors

from api.integrations.arweave import Transaction, Wallet, chunk_data, data_root, deep_hash
from api.integrations.arweave.encoding import b64url_decode, b64url_encode
from api.integrations.arweave.merkle import MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, transaction_chunks

KIB = 1024


def _decode_tree(node: Any) -> Any:
    return [_decode_tree(n) for n in node] if isinstance(node, list) else b64url_decode(node)


def _encode_tree(node: Any) -> Any:
    return [_encode_tree(n) for n in node] if isinstance(node, list) else b64url_encode(node)


# --- pinned vectors (computed once with arweave-js, see make_vectors.py) -----------------


@pytest.mark.parametrize("case", vectors()["deep_hash"], ids=lambda c: c["hash"][:8])
def test_deep_hash_matches_pinned_arweave_js_vector(case: dict[str, Any]) -> None:
    assert b64url_encode(deep_hash(_decode_tree(case["input"]))) == case["hash"]


@pytest.mark.parametrize("case", vectors()["data_root"], ids=lambda c: f"{c['size']}B")
def test_data_root_matches_pinned_arweave_js_vector(case: dict[str, Any]) -> None:
    data = payload(case["size"])
    assert hashlib.sha256(data).hexdigest() == case["payload_sha256"], "payload generator drifted"
    assert b64url_encode(data_root(data)) == case["data_root"]
    chunks = transaction_chunks(data).chunks
    assert [[c.min_byte_range, c.max_byte_range] for c in chunks] == case["chunk_ranges"]


def test_pinned_vectors_cover_the_required_sizes() -> None:
    sizes = {case["size"] for case in vectors()["data_root"]}
    assert {1, 256 * KIB, 600 * KIB} <= sizes


# --- rules stated in the spec --------------------------------------------------------------


def test_last_two_chunks_are_rebalanced_when_the_tail_would_be_too_small() -> None:
    size = MAX_CHUNK_SIZE + MIN_CHUNK_SIZE - 1  # a full chunk would leave 32 KiB - 1
    chunks = chunk_data(payload(size))
    lengths = [c.max_byte_range - c.min_byte_range for c in chunks]
    assert lengths == [-(-size // 2), size // 2]
    assert all(n >= MIN_CHUNK_SIZE for n in lengths)


def test_no_rebalancing_when_the_tail_is_big_enough() -> None:
    chunks = chunk_data(payload(MAX_CHUNK_SIZE + MIN_CHUNK_SIZE))
    assert [c.max_byte_range - c.min_byte_range for c in chunks] == [MAX_CHUNK_SIZE, MIN_CHUNK_SIZE]


def test_deep_hash_refuses_str() -> None:
    with pytest.raises(TypeError):
        deep_hash(["not bytes"])  # type: ignore[list-item]


# --- live comparison with arweave-js on fresh random inputs ---------------------------------


def test_deep_hash_and_chunks_match_arweave_js_on_random_inputs() -> None:
    tree = [os.urandom(5), [os.urandom(1000), [], [os.urandom(0)]], os.urandom(70_000)]
    sizes = [1, 7 * KIB, 256 * KIB, 600 * KIB, 256 * KIB + 1000]
    datas = [os.urandom(n) for n in sizes]
    answers = js(
        [{"op": "deep_hash", "input": _encode_tree(tree)}]
        + [{"op": "chunks", "data": b64url_encode(d)} for d in datas]
    )
    assert b64url_encode(deep_hash(tree)) == answers[0]
    for data, expected in zip(datas, answers[1:], strict=True):
        ours = transaction_chunks(data)
        assert b64url_encode(ours.data_root) == expected["data_root"]
        assert [[c.min_byte_range, c.max_byte_range, b64url_encode(c.data_hash)]
                for c in ours.chunks] == expected["chunks"]
        assert [[p.offset, b64url_encode(p.proof)] for p in ours.proofs] == expected["proofs"]


@pytest.fixture(scope="module")
def js_jwk() -> dict[str, str]:
    """A wallet made by arweave-js at test time (private keys are never committed)."""
    jwk: dict[str, str] = js([{"op": "generate_jwk"}])[0]
    return jwk


def test_wallet_from_arweave_js_jwk_has_the_same_address(js_jwk: dict[str, str]) -> None:
    wallet = Wallet.from_jwk(js_jwk)
    assert wallet.address == js([{"op": "address", "jwk": js_jwk}])[0]
    assert wallet.to_jwk() == {k: js_jwk[k] for k in wallet.to_jwk()}


def test_python_wallet_is_rsa_4096_with_e_65537_and_round_trips(tmp_path: Any) -> None:
    wallet = Wallet.generate()
    jwk = wallet.to_jwk()
    assert jwk["e"] == "AQAB" and len(b64url_decode(jwk["n"])) == 512
    assert wallet.address == b64url_encode(hashlib.sha256(b64url_decode(jwk["n"])).digest())
    path = tmp_path / "wallet.json"
    wallet.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert Wallet.load(path).to_jwk() == jwk
    assert js([{"op": "address", "jwk": jwk}])[0] == wallet.address


TAGS = [("Content-Type", "application/json"), ("App-Name", "ECE"), ("Card-Id", "42")]


def test_transaction_signed_by_arweave_js_verifies_in_python(js_jwk: dict[str, str]) -> None:
    data = payload(300 * KIB, "js-signed")  # two chunks: data_root is not trivial
    signed = js([{"op": "sign", "jwk": js_jwk, "data": b64url_encode(data), "tags": TAGS,
                  "last_tx": b64url_encode(os.urandom(48)), "reward": "123456"}])[0]
    tx = Transaction.from_json(signed)
    assert tx.verify()
    assert tx.data == data and tx.data_root == b64url_encode(data_root(data))
    assert [(t.name, t.value) for t in tx.tags] == TAGS
    ours = Transaction.build(data, owner=tx.owner, last_tx=tx.last_tx, reward=tx.reward, tags=TAGS)
    assert ours.signature_data() == tx.signature_data()
    assert b64url_encode(ours.signature_data()) == js([{"op": "signature_data", "tx": signed}])[0]


def test_transaction_signed_by_python_verifies_in_arweave_js(js_jwk: dict[str, str]) -> None:
    wallet = Wallet.from_jwk(js_jwk)
    anchor = b64url_encode(os.urandom(48))
    tx = Transaction.build(b'{"card": 1}', owner=wallet.owner, last_tx=anchor, reward=999,
                           tags=TAGS).signed(wallet)
    assert tx.verify()
    body = tx.to_json()
    tampered_tags = {**body, "tags": [{"name": body["tags"][0]["name"], "value": "eA"}]}
    tampered_sig = _resigned_id({**body, "signature": _flip(body["signature"])})
    assert js([{"op": "verify", "tx": body}, {"op": "verify", "tx": tampered_tags},
               {"op": "verify", "tx": tampered_sig}]) == [True, False, False]
    assert not Transaction.from_json(tampered_tags).verify()
    assert not Transaction.from_json(tampered_sig).verify()


def _flip(b64: str) -> str:
    raw = bytearray(b64url_decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return b64url_encode(bytes(raw))


def _resigned_id(body: dict[str, Any]) -> dict[str, Any]:
    """Keep id == sha256(signature) so only the signature check can catch the tampering."""
    return {**body, "id": b64url_encode(hashlib.sha256(b64url_decode(body["signature"])).digest())}
