"""ANS-104 bundles: every item keeps a valid signature and its own id, and arbundles
(the implementation arlocal unbundles with) agrees with our bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from api.integrations.arweave import Wallet
from api.integrations.arweave.ans104 import (
    DataItem,
    bundle_bytes,
    decode_tags,
    encode_tags,
    pack,
    parse_bundle,
    sign_item,
)
from api.integrations.arweave.encoding import b64url_encode
from api.integrations.arweave.transaction import Tag
from ece.settings import REPO_ROOT

VERIFY_JS = """
const { Bundle } = require('arbundles');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const bundle = new Bundle(Buffer.concat(chunks));
  const items = bundle.items.map((item, i) => ({
    id: bundle.getIdBy(i), tags: item.tags, data: item.rawData.toString('utf8'),
  }));
  process.stdout.write(JSON.stringify({ verified: await bundle.verify(), items }));
});
"""


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet.generate()


def _items(wallet: Wallet, count: int) -> list[DataItem]:
    return [
        sign_item(json.dumps({"n": i, "name": f"Card é{i}"}).encode(),
                  {"Content-Type": "application/json", "ECE-NFT-Id": f"nft-{i}"}, wallet)
        for i in range(count)
    ]


def test_bundle_items_keep_signature_and_id(wallet: Wallet) -> None:
    items = _items(wallet, 5)
    parsed = parse_bundle(bundle_bytes(items))
    assert [p.id for p in parsed] == [i.id for i in items]
    assert len({p.id for p in parsed}) == 5
    for original, item in zip(items, parsed, strict=True):
        assert item.verify()
        assert item.id == b64url_encode(hashlib.sha256(item.signature).digest())
        assert item.data == original.data and item.tags == original.tags
    forged = DataItem(parsed[0].owner, b"", b"", parsed[0].tags, b'{"n":666}',
                      parsed[0].signature)
    assert not forged.verify(), "changing the data must break the signature"


def test_header_id_mismatch_is_refused(wallet: Wallet) -> None:
    raw = bytearray(bundle_bytes(_items(wallet, 2)))
    raw[32 + 32] ^= 1  # first byte of the first item's id in the header
    with pytest.raises(ValueError, match="header id"):
        parse_bundle(bytes(raw))


def test_tags_round_trip_avro() -> None:
    tags = tuple(Tag(f"name-{i}", "v" * (i * 40)) for i in range(1, 5))
    assert decode_tags(encode_tags(tags)) == tags
    assert encode_tags(()) == b""


def test_pack_respects_the_size_limit(wallet: Wallet) -> None:
    items = _items(wallet, 7)
    one = 64 + len(items[0].raw)
    groups = pack(items, 32 + 3 * one + 10)
    assert [len(g) for g in groups] == [3, 3, 1]
    assert [i.id for g in groups for i in g] == [i.id for i in items]


def test_arbundles_verifies_our_bundle(wallet: Wallet) -> None:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "arbundles").exists():
        pytest.fail(f"arbundles is missing: cd {REPO_ROOT} && npm ci --no-audit --no-fund")
    items = _items(wallet, 3)
    done = subprocess.run([node, "-e", VERIFY_JS], input=bundle_bytes(items), cwd=REPO_ROOT,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    answer = json.loads(done.stdout)
    assert answer["verified"] is True
    assert [i["id"] for i in answer["items"]] == [i.id for i in items]
    assert answer["items"][1]["data"] == items[1].data.decode()
    assert {t["name"]: t["value"] for t in answer["items"][2]["tags"]}["ECE-NFT-Id"] == "nft-2"
