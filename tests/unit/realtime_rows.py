"""Rows and Debezium envelopes as the CDC runner writes them, for the real-time tests.

Column sets follow the generated schemas (streaming/topics/schemas/ece.public.*.json),
so a message built here also validates against its CDC schema.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

T0 = "2026-12-01T11:00:00.000000Z"


def uid() -> str:
    return str(uuid.uuid4())


def iso(epoch_ms: int) -> str:
    from ece.contracts.realtime import iso_millis

    return iso_millis(epoch_ms)


def card(card_id: str, owner_id: str, **over: Any) -> dict[str, Any]:
    row = {"id": card_id, "name": "Charizard", "set_name": "Base Set", "number": "4/102",
           "rarity": "holo", "edition": "1st", "attributes": json.dumps({"grade": 10}),
           "owner_id": owner_id, "status": "available", "image_object_key": None,
           "version": 1, "created_at": T0, "updated_at": T0}
    return {**row, **over}


def listing(listing_id: str, card_id: str, seller_id: str, price: int,
            status: str = "active") -> dict[str, Any]:
    return {"id": listing_id, "card_id": card_id, "seller_id": seller_id, "price_cents": price,
            "status": status, "created_at": T0, "updated_at": T0}


def sale(sale_id: str, listing_id: str, card_id: str, buyer_id: str, seller_id: str,
         price: int) -> dict[str, Any]:
    return {"id": sale_id, "listing_id": listing_id, "card_id": card_id, "buyer_id": buyer_id,
            "seller_id": seller_id, "price_cents": price, "fee_cents": price // 20,
            "created_at": T0}


def auction(auction_id: str, card_id: str, seller_id: str, ends_at: str, *,
            bid: int | None = None, bidder: str | None = None, bids: int = 0,
            status: str = "active", result: str | None = None) -> dict[str, Any]:
    return {"id": auction_id, "card_id": card_id, "seller_id": seller_id,
            "start_price_cents": 1000, "reserve_price_cents": None, "min_increment_cents": 100,
            "current_bid_cents": bid, "current_bidder_id": bidder, "bid_count": bids,
            "starts_at": T0, "ends_at": ends_at, "status": status, "result": result,
            "created_at": T0, "updated_at": T0}


def history(history_id: str, card_id: str, from_user: str | None, to_user: str, reason: str,
            reference_id: str | None = None) -> dict[str, Any]:
    return {"id": history_id, "card_id": card_id, "from_user_id": from_user,
            "to_user_id": to_user, "reason": reason, "reference_id": reference_id, "at": T0}


def nft(nft_id: str, card_id: str, status: str) -> dict[str, Any]:
    minted = status == "minted"
    return {"id": nft_id, "card_id": card_id, "status": status,
            "mint_address": "Mint1111" if minted else None, "metadata_uri": None,
            "tx_signature": None, "owner_address": None, "error": None,
            "created_at": T0, "updated_at": T0}


def offer(offer_id: str, from_user: str, to_user: str, status: str) -> dict[str, Any]:
    return {"id": offer_id, "from_user_id": from_user, "to_user_id": to_user, "message": None,
            "status": status, "expires_at": T0, "created_at": T0, "updated_at": T0}


def watch(user_id: str, card_id: str, created_at: str = T0) -> dict[str, Any]:
    return {"user_id": user_id, "card_id": card_id, "created_at": created_at}


def alert(alert_id: str, user_id: str, max_price: int, *, card_id: str | None = None,
          set_name: str | None = None, rarity: str | None = None,
          created_at: str = T0) -> dict[str, Any]:
    return {"id": alert_id, "user_id": user_id, "max_price_cents": max_price,
            "card_id": card_id, "set_name": set_name, "rarity": rarity,
            "created_at": created_at}


def envelope(table: str, op: str, after: dict[str, Any] | None,
             before: dict[str, Any] | None = None, ts_ms: int | None = None) -> str:
    ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
    return json.dumps({
        "before": before, "after": after, "op": op, "ts_ms": ts,
        "source": {"lsn": ts, "txId": 7, "ts_ms": ts, "table": table, "schema": "public",
                   "db": "ece", "connector": "postgresql"},
    })
