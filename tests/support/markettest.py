"""Helpers for the marketplace tests (``tests.support.markettest``; not fixtures)."""

import uuid
from typing import Any

import httpx

from tests.support.apitest import Account, Db

# Tables a failed money/ownership request must leave untouched.
WRITE_TABLES = (
    "ledger_transactions",
    "ledger_entries",
    "listings",
    "sales",
    "card_history",
    "card_valuations",
    "audit_events",
    "idempotency_keys",
)


def snapshot(db: Db) -> dict[str, Any]:
    """Row counts of the written tables plus every balance and card state."""
    counts: dict[str, Any] = {t: int(db.value(f"SELECT count(*) FROM {t}")) for t in WRITE_TABLES}
    counts["balances"] = db.rows("SELECT id, balance_cents FROM ledger_accounts ORDER BY id")
    counts["cards"] = db.rows("SELECT id, owner_id, status, version FROM cards ORDER BY id")
    counts["listing_states"] = db.rows("SELECT id, status FROM listings ORDER BY id")
    return counts


async def new_card(client: httpx.AsyncClient, admin: Account, owner_id: str) -> str:
    r = await client.post(
        "/cards",
        headers=admin.auth,
        json={
            "name": "Black Lotus",
            "set_name": "Alpha",
            "number": "232",
            "rarity": "legendary",
            "owner_id": owner_id,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def fund(
    client: httpx.AsyncClient, admin: Account, user_id: str, amount_cents: int
) -> dict[str, Any]:
    r = await client.post(
        "/admin/deposits",
        headers=admin.auth,
        json={"user_id": user_id, "amount_cents": amount_cents,
              "reference": f"test-funding-{uuid.uuid4()}"},  # references are unique
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def balance(client: httpx.AsyncClient, account: Account) -> tuple[int, int]:
    r = await client.get("/me/balance", headers=account.auth)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["available_cents"], body["held_cents"]


async def list_card(
    client: httpx.AsyncClient, seller: Account, card_id: str, price_cents: int
) -> dict[str, Any]:
    r = await client.post(
        "/listings", headers=seller.auth, json={"card_id": card_id, "price_cents": price_cents}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())
