"""After the kills: nothing lost, nothing doubled.

Four verdicts, each one line in the report:

- ``ece check`` (its own function, with its table): the ledger, the cards, bronze
  holding every committed change exactly once, the cache and hot figures against
  PostgreSQL, the chain; run after a lake refresh (``ece warehouse refresh``'s
  function), so bronze has what the topics hold;
- the lake against what the REST API acknowledged in this run: every user the
  demo registered and every card it issued (201 answers, before the first kill)
  is in silver exactly once; the listings and sales of its cards are at least the
  acknowledged ones and at most the attempted ones (a request cut off by a kill
  may have committed without its answer reaching the client);
- ``ece demo``'s invariants, read again now that everything settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import typer

from ece.settings import Settings
from ops.demo.invariants import check_invariants
from ops.demo.report import DemoReport


@dataclass
class Verdict:
    what: str
    ok: bool
    detail: str


def refresh_lake(say: Callable[[str], None]) -> Verdict:
    """``ece warehouse refresh`` (its function): land every event, rebuild silver."""
    from ops.cli.warehouse import refresh

    say("lake refresh (ece warehouse refresh) ...")
    try:
        refresh(land_only=False, checks=False, record=True)
    except typer.Exit as exc:
        return Verdict("lake refresh", exc.exit_code == 0, f"exit {exc.exit_code}")
    except Exception as exc:  # noqa: BLE001 - a failed refresh is a verdict
        return Verdict("lake refresh", False, f"{type(exc).__name__}: {exc}"[:300])
    return Verdict("lake refresh", True, "landed and rebuilt")


def run_check(settle: float, say: Callable[[str], None]) -> Verdict:
    """``ece check`` over everything (its function; it prints its own table)."""
    from ops.cli.check import check

    say(f"ece check (settle {settle:.0f}s) ...")
    try:
        check(as_json=False, only=[], settle=settle)
    except typer.Exit as exc:
        return Verdict("ece check", exc.exit_code == 0, f"exit {exc.exit_code}")
    except Exception as exc:  # noqa: BLE001
        return Verdict("ece check", False, f"{type(exc).__name__}: {exc}"[:300])
    return Verdict("ece check", True, "every comparison agrees")


_LAKE_COUNTS = """
SELECT
  (SELECT count(*) FROM ece.silver.users WHERE username LIKE ?),
  (SELECT count(DISTINCT id) FROM ece.silver.users WHERE username LIKE ?),
  (SELECT count(*) FROM ece.silver.cards WHERE set_name = ?),
  (SELECT count(*) FROM ece.silver.listings l JOIN ece.silver.cards c ON c.id = l.card_id
    WHERE c.set_name = ?),
  (SELECT count(*) FROM ece.silver.listings l JOIN ece.silver.cards c ON c.id = l.card_id
    WHERE c.set_name = ? AND l.status = 'sold')
"""


def lake_against_rest(settings: Settings, report: DemoReport) -> list[Verdict]:
    """The demo's acknowledged writes against the lake's silver tables."""
    from warehouse.lake import connect

    tag = report.tag
    user_pattern = f"demo{tag}u%"
    cards_set = f"Demo {tag}"
    try:
        lake = connect(settings, read_only=True)
        try:
            row = lake.execute(_LAKE_COUNTS, [user_pattern, user_pattern, cards_set, cards_set,
                                              cards_set]).fetchone()
        finally:
            lake.close()
    except Exception as exc:  # noqa: BLE001 - an unreachable lake is a failed verdict
        return [Verdict("lake vs REST", False, f"{type(exc).__name__}: {exc}"[:300])]
    assert row is not None
    lake_users, distinct_users, lake_cards, lake_listings, lake_sold = (int(v) for v in row)
    stats = report.stats
    registered, issued = stats["register"].ok, stats["issue-card"].ok
    listed_ok, listed_sent = stats["list"].ok, stats["list"].sent
    sold_ok, sold_sent = stats["purchase"].ok, stats["purchase"].sent
    return [
        Verdict("lake vs REST: users", lake_users == distinct_users == registered,
                f"REST 201 x{registered}, silver {lake_users} rows / {distinct_users} ids"),
        Verdict("lake vs REST: cards", lake_cards == issued,
                f"REST 201 x{issued}, silver {lake_cards}"),
        Verdict("lake vs REST: listings", listed_ok <= lake_listings <= listed_sent,
                f"REST 201 x{listed_ok} of {listed_sent} sent, silver {lake_listings}"),
        Verdict("lake vs REST: sales", sold_ok <= lake_sold <= sold_sent,
                f"REST 2xx x{sold_ok} of {sold_sent} sent, silver sold {lake_sold}"),
    ]


def invariants(settings: Settings, report: DemoReport) -> Verdict:
    """The demo's invariants, at its end and again now."""
    now = check_invariants(settings.database_url)
    inv = report.invariants
    detail = (f"ledger sum {now.ledger_sum_cents}, double sales {now.double_sales}, "
              f"negative balances {now.negative_balances}, unbalanced transactions "
              f"{now.unbalanced_transactions}{f' ({now.error})' if now.error else ''}")
    return Verdict("ece demo invariants", inv.hold and now.hold, detail)
