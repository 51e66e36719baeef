"""A minted card's token follows its owner on chain: one transfer per ownership change,
in order, checked through the chain's own JSON-RPC. Both workers run in this loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nfttest import (
    custody_address,
    give_card,
    make_card,
    request_mint,
    running_workers,
    sell,
    token_amount,
    wait_for,
    wait_status,
)

from ece.settings import Settings
from tests.support.apitest import Account, Db, register_and_login, unique


@pytest.fixture(scope="module")
async def workers(stack: Any, nft_settings: Settings) -> AsyncIterator[None]:
    async with running_workers(nft_settings, "mint_saga", "chain_transfers"):
        yield


async def owner_on_chain(http: httpx.AsyncClient, nft_id: str, address: str) -> dict[str, Any]:
    async def moved() -> dict[str, Any] | None:
        body = dict((await http.get(f"/nfts/{nft_id}")).json())
        return body if body["owner_address"] == address else None

    return await wait_for(moved, 60, f"NFT {nft_id} at {address}")


async def test_sale_moves_the_token_to_the_buyer(
    workers: None, http: httpx.AsyncClient, admin: Account, alice: Account, bob: Account,
    db: Db, nft_settings: Settings,
) -> None:
    card_id = await make_card(http, admin, alice)
    nft = await wait_status(http, (await request_mint(http, alice, card_id))["id"], "minted")
    seller, buyer = await custody_address(http, alice), await custody_address(http, bob)
    sale = await sell(http, admin, alice, bob, card_id)
    history_id = db.value("SELECT id::text FROM card_history WHERE reference_id = %s",
                          sale["id"])

    await owner_on_chain(http, nft["id"], buyer)
    rpc_url, mint = nft_settings.solana_rpc_url, nft["mint_address"]
    assert await token_amount(rpc_url, buyer, mint) == 1
    assert await token_amount(rpc_url, seller, mint) == 0
    rows = db.rows("SELECT from_address, to_address, status, card_history_id::text, "
                   "signature IS NOT NULL FROM nft_transactions "
                   "WHERE nft_id = %s AND kind = 'transfer'", nft["id"])
    assert rows == [(seller, buyer, "confirmed", history_id, True)]


async def test_two_quick_changes_are_replayed_in_order(
    workers: None, http: httpx.AsyncClient, admin: Account, alice: Account, bob: Account,
    db: Db, nft_settings: Settings,
) -> None:
    """A -> B -> C within milliseconds: two transfers, A->B then B->C, token at C."""
    carol = await register_and_login(http, unique("carol"))
    card_id = await make_card(http, admin, alice)
    nft = await wait_status(http, (await request_mint(http, alice, card_id))["id"], "minted")
    a, b, c = [await custody_address(http, x) for x in (alice, bob, carol)]
    first = await give_card(card_id, bob.id, "sale")
    second = await give_card(card_id, carol.id, "trade")

    await owner_on_chain(http, nft["id"], c)
    mint, url = nft["mint_address"], nft_settings.solana_rpc_url
    assert [await token_amount(url, x, mint) for x in (a, b, c)] == [0, 0, 1]
    rows = db.rows("SELECT from_address, to_address, status, card_history_id::text "
                   "FROM nft_transactions WHERE nft_id = %s AND kind = 'transfer' "
                   "ORDER BY created_at", nft["id"])
    assert rows == [(a, b, "confirmed", first), (b, c, "confirmed", second)]


async def test_changes_while_minting_end_at_the_last_owner(
    workers: None, http: httpx.AsyncClient, admin: Account, alice: Account, bob: Account,
    db: Db, nft_settings: Settings,
) -> None:
    """Sold (and sold back, and sold again) while the mint is in flight: whatever owner the
    mint went to, the history after it is replayed and the token ends with the last owner."""
    card_id = await make_card(http, admin, alice)
    nft = await request_mint(http, alice, card_id)
    await give_card(card_id, bob.id, "sale")
    await give_card(card_id, alice.id, "sale")
    await give_card(card_id, bob.id, "auction")
    minted = await wait_status(http, nft["id"], "minted")
    buyer = await custody_address(http, bob)
    await owner_on_chain(http, nft["id"], buyer)
    assert await token_amount(nft_settings.solana_rpc_url, buyer, minted["mint_address"]) == 1
    statuses = db.rows("SELECT kind, status FROM nft_transactions WHERE nft_id = %s", nft["id"])
    assert all(status == "confirmed" for _, status in statuses), statuses
    history = int(db.value("SELECT count(*) FROM card_history WHERE card_id = %s", card_id))
    assert len(statuses) <= history  # at most one row per history row (plus none for issue)
