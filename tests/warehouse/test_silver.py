"""silver.cards from bronze events: latest version by LSN, deletes gone, no duplicates."""

from __future__ import annotations

import uuid

from cdcfeed import Feed, card_row

from ece.settings import Settings
from quality import silver_cards
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect
from warehouse.sql import build, model


def test_silver_cards_is_the_latest_state_per_card(lake_settings: Settings, feed: Feed,
                                                   landing: LandingConfig) -> None:
    feed.create_topic("cards")
    a, b, c, e = (str(uuid.uuid4()) for _ in range(4))
    for v in (1, 2, 3):  # a: three versions
        feed.change("cards", "c" if v == 1 else "u", card_row(a, v))
    feed.change("cards", "c", card_row(b, 1))  # b: created, then deleted (+ tombstone)
    feed.change("cards", "d", card_row(b, 1))
    dup = card_row(c, 1)
    lsn = feed.change("cards", "c", dup)  # c: the same change delivered twice
    feed.change("cards", "c", dup, lsn=lsn)
    feed.change("cards", "u", card_row(e, 2), lsn=90_000)  # e: an older change replayed
    feed.change("cards", "c", card_row(e, 1), lsn=80_000)  # after a newer one
    feed.flush()
    con = connect(lake_settings)
    land(con, landing, ["cards"])
    rows = build(con, model("silver", "cards"))
    assert rows == 3
    got = dict(con.execute("SELECT CAST(id AS VARCHAR), version FROM ece.silver.cards")
               .fetchall())
    assert got == {a: 3, c: 1, e: 2}
    types = dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'ece' "
        "AND schema_name = 'silver' AND table_name = 'cards'").fetchall())
    assert types["id"] == "UUID" and types["version"] == "INTEGER"
    assert types["attributes"] == "JSON" and types["updated_at"] == "TIMESTAMP WITH TIME ZONE"
    hp = con.execute("SELECT attributes->>'hp' FROM ece.silver.cards WHERE id = ?", [a]).fetchone()
    assert hp == ("30",)
    # the GE suite passes on clean data
    df = con.execute("SELECT CAST(id AS VARCHAR) id, rarity, CAST(owner_id AS VARCHAR) owner_id "
                     "FROM ece.silver.cards").df()
    assert all(o.success for o in silver_cards.validate(df))


def test_silver_users_drops_secrets(lake_settings: Settings, feed: Feed,
                                    landing: LandingConfig) -> None:
    feed.create_topic("users", 1)
    uid = str(uuid.uuid4())
    user = {"id": uid, "email": "a@example.com", "username": "ann", "role": "user",
            "password_hash": "$argon2id$secret", "custody_address": None,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    feed.change("users", "c", user)
    feed.flush()
    con = connect(lake_settings)
    land(con, landing, ["users"])
    bronze_cols = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = 'ece' "
        "AND schema_name = 'bronze' AND table_name = 'users'").fetchall()}
    assert "password_hash" not in bronze_cols  # dropped at landing, never stored
    assert build(con, model("silver", "users")) == 1
    assert con.execute("SELECT username FROM ece.silver.users").fetchall() == [("ann",)]


def test_silver_watchlists_and_price_alerts_are_the_current_ones(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    """Watching, unwatching and watching again; an alert created then deleted."""
    feed.create_topic("watchlists", 1)
    feed.create_topic("price_alerts", 1)
    ann, bob, card_a, card_b = (str(uuid.uuid4()) for _ in range(4))
    key = ("user_id", "card_id")
    at = "2026-01-01T00:00:00Z"
    feed.change("watchlists", "c", {"user_id": ann, "card_id": card_a, "created_at": at},
                key_fields=key)
    feed.change("watchlists", "c", {"user_id": ann, "card_id": card_b, "created_at": at},
                key_fields=key)
    feed.change("watchlists", "d", {"user_id": ann, "card_id": card_b, "created_at": at},
                key_fields=key)  # unwatched
    watch = {"user_id": bob, "card_id": card_b, "created_at": at}
    lsn = feed.change("watchlists", "c", watch, key_fields=key)
    feed.change("watchlists", "c", watch, key_fields=key, lsn=lsn)  # landed twice
    alert_kept, alert_gone = str(uuid.uuid4()), str(uuid.uuid4())
    alert = {"id": alert_kept, "user_id": ann, "max_price_cents": 1500, "card_id": None,
             "set_name": "Base Set", "rarity": "rare", "created_at": at}
    feed.change("price_alerts", "c", alert)
    feed.change("price_alerts", "c", {**alert, "id": alert_gone})
    feed.change("price_alerts", "d", {**alert, "id": alert_gone})
    feed.flush()
    con = connect(lake_settings)
    land(con, landing, ["watchlists", "price_alerts"])
    assert build(con, model("silver", "watchlists")) == 2
    got = {tuple(map(str, r)) for r in con.execute(
        "SELECT user_id, card_id FROM ece.silver.watchlists").fetchall()}
    assert got == {(ann, card_a), (bob, card_b)}
    assert build(con, model("silver", "price_alerts")) == 1
    row = con.execute("SELECT CAST(id AS VARCHAR), max_price_cents, card_id, set_name, rarity "
                      "FROM ece.silver.price_alerts").fetchone()
    assert row == (alert_kept, 1500, None, "Base Set", "rare")
