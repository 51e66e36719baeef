"""``ece demo``: realistic marketplace traffic over the real REST API.

Simulated users register, get deposits, receive cards, then for ``--minutes``
list, delist, buy, auction, bid, offer trades, accept or reject them and mint,
concurrently, the way real clients would (money-moving POSTs carry an
``Idempotency-Key``). It finishes with a summary per request type and the
invariants that must hold whatever the traffic did: the ledger sums to zero, no
listing sold twice, no negative user balance, every ledger transaction balanced.

The demo adapts to what is deployed: an action whose route is absent from the
OpenAPI document (or answers a route-level 404) is skipped with one warning line.
Business refusals (``listing_not_active``, ``bid_too_low``, ...) are expected in
a busy market and counted apart from errors (5xx, transport failures).

Each simulated user names its own address (``X-Forwarded-For``). The API honours
that header only from a proxy listed in ``ECE_TRUSTED_PROXIES`` (run the stack with
``ECE_TRUSTED_PROXIES=127.0.0.1`` to give each simulated user its own per-IP
budget); otherwise every simulated user shares the demo machine's bucket. Either
way a 429 is waited out (``Retry-After``) and counted, never treated as an error.

Modules: ``client`` (the REST client, shared with ``ops.seed``), ``traffic`` (setup,
the actions and the run), ``invariants`` (the checks, SQL in ``invariants.sql``),
``report`` (what was sent and how it went). The command is ``ops.cli.demo``.
"""
