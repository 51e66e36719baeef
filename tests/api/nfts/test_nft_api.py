"""``POST /cards/{id}/nft``, ``GET /cards/{id}/nft``, ``GET /nfts/{id}`` over real uvicorn.

No worker runs in this module: every NFT stays ``pending``, which is exactly what
the request path promises (202, the saga does the rest).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
from nfttest import execute, make_card, request_mint

from tests.support.apitest import Account, Db, assert_problem


def nft_counts(db: Db, card_id: str) -> tuple[int, int]:
    """(NFT rows of the card, audit events about NFTs): what a refused request must not add."""
    nfts = int(db.value("SELECT count(*) FROM nfts WHERE card_id = %s", card_id))
    audits = int(db.value("SELECT count(*) FROM audit_events WHERE action LIKE 'nft.%%'"))
    return nfts, audits


async def test_owner_gets_202_pending_and_reads_it_back(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    card_id = await make_card(http, admin, alice)
    r = await http.post(f"/cards/{card_id}/nft", headers=alice.auth)
    assert r.status_code == 202, r.text
    nft = r.json()
    assert nft["status"] == "pending" and nft["card_id"] == card_id
    assert {k: nft[k] for k in ("mint_address", "metadata_uri", "tx_signature", "owner_address",
                                "error")} == dict.fromkeys(
        ("mint_address", "metadata_uri", "tx_signature", "owner_address", "error"))
    assert set(nft) == {"id", "card_id", "status", "mint_address", "metadata_uri", "tx_signature",
                        "owner_address", "error", "created_at", "updated_at"}
    assert r.headers["location"].endswith(f"/nfts/{nft['id']}")

    by_id = await http.get(f"/nfts/{nft['id']}")
    by_card = await http.get(f"/cards/{card_id}/nft")
    assert by_id.status_code == by_card.status_code == 200
    assert by_id.json() == by_card.json() == nft
    etag = by_id.headers["etag"]
    cached = await http.get(f"/nfts/{nft['id']}", headers={"If-None-Match": etag})
    assert cached.status_code == 304
    audit = db.rows("SELECT actor_id, entity_id FROM audit_events WHERE action = "
                    "'nft.mint_requested' AND entity_id = %s", nft["id"])
    assert [(str(a), e) for a, e in audit] == [(alice.id, nft["id"])]


async def test_someone_elses_card_is_403_and_writes_nothing(
    http: httpx.AsyncClient, admin: Account, alice: Account, bob: Account, db: Db
) -> None:
    card_id = await make_card(http, admin, alice)
    before = nft_counts(db, card_id)
    r = await http.post(f"/cards/{card_id}/nft", headers=bob.auth)
    assert_problem(r, 403, "card_not_owned")
    r = await http.post(f"/cards/{card_id}/nft", headers=admin.auth)  # admins do not own it
    assert_problem(r, 403, "card_not_owned")
    assert nft_counts(db, card_id) == before
    assert_problem(await http.get(f"/cards/{card_id}/nft"), 404, "not_found")


async def test_bad_input(http: httpx.AsyncClient, alice: Account, db: Db) -> None:
    before = int(db.value("SELECT count(*) FROM nfts"))
    assert_problem(await http.post(f"/cards/{uuid.uuid4()}/nft", headers=alice.auth),
                   404, "not_found")
    assert_problem(await http.post("/cards/not-a-uuid/nft", headers=alice.auth),
                   422, "validation_error")
    assert_problem(await http.post(f"/cards/{uuid.uuid4()}/nft"), 401, "unauthorized")
    assert_problem(await http.get(f"/nfts/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(await http.get("/nfts/nope"), 422, "validation_error")
    assert_problem(await http.get(f"/cards/{uuid.uuid4()}/nft"), 404, "not_found")
    assert int(db.value("SELECT count(*) FROM nfts")) == before


async def test_second_request_is_409_already_minted(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    card_id = await make_card(http, admin, alice)
    first = await request_mint(http, alice, card_id)
    before = nft_counts(db, card_id)
    body = assert_problem(await http.post(f"/cards/{card_id}/nft", headers=alice.auth),
                          409, "already_minted")
    assert "pending" in body["detail"]
    execute(db, "UPDATE nfts SET status = 'minting' WHERE id = %s", first["id"])
    assert_problem(await http.post(f"/cards/{card_id}/nft", headers=alice.auth),
                   409, "already_minted")
    assert nft_counts(db, card_id) == before


async def test_racing_requests_one_wins(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    """Eight concurrent POSTs at real uvicorn: one 202, seven 409, one row."""
    card_id = await make_card(http, admin, alice)
    answers = await asyncio.gather(
        *(http.post(f"/cards/{card_id}/nft", headers=alice.auth) for _ in range(8))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * 7, [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert_problem(r, 409, "already_minted")
    assert nft_counts(db, card_id)[0] == 1
    audits = db.value("SELECT count(*) FROM audit_events WHERE action = 'nft.mint_requested' "
                      "AND details->>'card_id' = %s", card_id)
    assert audits == 1


async def test_idempotency_key_replays_the_first_answer(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    card_id = await make_card(http, admin, alice)
    headers = {**alice.auth, "Idempotency-Key": f"mint-{uuid.uuid4()}"}
    first = await http.post(f"/cards/{card_id}/nft", headers=headers)
    again = await http.post(f"/cards/{card_id}/nft", headers=headers)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert nft_counts(db, card_id)[0] == 1
    other_card = await make_card(http, admin, alice)
    reused = await http.post(f"/cards/{other_card}/nft", headers=headers)
    assert_problem(reused, 409, "idempotency_key_reused")
    assert nft_counts(db, other_card)[0] == 0


async def test_listed_card_can_be_minted(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    """Our choice: the token follows every ownership change, so a listing does not block."""
    card_id = await make_card(http, admin, alice)
    execute(db, "UPDATE cards SET status = 'listed' WHERE id = %s", card_id)
    nft = await request_mint(http, alice, card_id)
    assert nft["status"] == "pending"


async def test_failed_nft_can_be_requested_again(
    http: httpx.AsyncClient, admin: Account, alice: Account, db: Db
) -> None:
    card_id = await make_card(http, admin, alice)
    nft = await request_mint(http, alice, card_id)
    execute(db, "UPDATE nfts SET status = 'failed', error = 'boom' WHERE id = %s", nft["id"])
    failed = (await http.get(f"/nfts/{nft['id']}")).json()
    assert failed["status"] == "failed" and failed["error"] == "boom"
    again = await request_mint(http, alice, card_id)
    assert again["id"] == nft["id"] and again["status"] == "pending" and again["error"] is None
