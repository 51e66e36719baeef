"""Regenerate ``vectors.json`` from arweave-js.

Run ``uv run python tests/integrations/arweave/make_vectors.py``.

Pinned vectors keep the Python algorithms honest even if node_modules changes version;
they hold only public data (hashes of deterministic payloads), never keys.
"""

from __future__ import annotations

import hashlib
import json

from arweave_reference import VECTORS, js, payload

from api.integrations.arweave.encoding import b64url_encode

KIB = 1024
# 1 byte, exactly one max chunk, 600 KiB (3 chunks), and the sizes around the
# last-two-chunks rebalancing rule (remainder below / at / above 32 KiB).
SIZES = [1, 1000, 256 * KIB, 256 * KIB + 1, 288 * KIB - 1, 288 * KIB, 600 * KIB,
         512 * KIB + 10 * KIB, 1024 * KIB]
DEEP_HASH_INPUTS: list[object] = [
    [],
    [b""],
    [b"a", [b"b", b"c"], []],
    [b"2", [[b"Content-Type", b"application/json"], [b"App-Name", b"ECE"]], b"12345"],
    [[[[b"deep"]]], payload(300, "deep")],
]


def _encode(node: object) -> object:
    return [_encode(n) for n in node] if isinstance(node, list) else b64url_encode(node)  # type: ignore[arg-type]


def main() -> None:
    requests: list[dict[str, object]] = [
        {"op": "deep_hash", "input": _encode(item)} for item in DEEP_HASH_INPUTS
    ]
    requests += [{"op": "chunks", "data": b64url_encode(payload(size))} for size in SIZES]
    answers = js(requests)
    deep = answers[: len(DEEP_HASH_INPUTS)]
    roots = answers[len(DEEP_HASH_INPUTS) :]
    out = {
        "source": ("arweave-js 1.15.7 (node_modules/arweave) via "
                   "tests/integrations/arweave/js_reference.js"),
        "payload": "tests/integrations/arweave/arweave_reference.py:payload(size, seed='ece')",
        "deep_hash": [
            {"input": _encode(item), "hash": h}
            for item, h in zip(DEEP_HASH_INPUTS, deep, strict=True)
        ],
        "data_root": [
            {
                "size": size,
                "payload_sha256": hashlib.sha256(payload(size)).hexdigest(),
                "data_root": ans["data_root"],
                "chunk_ranges": [[c[0], c[1]] for c in ans["chunks"]],
            }
            for size, ans in zip(SIZES, roots, strict=True)
        ],
    }
    VECTORS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {VECTORS}")


if __name__ == "__main__":
    main()
