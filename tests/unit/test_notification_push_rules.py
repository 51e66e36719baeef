"""What a push carries: a small body, TTL, urgency by kind, an RFC 8030 Topic for outbid."""

from __future__ import annotations

import json
import re
import uuid

from api.notifications.push import PushFailed, headers, message, retryable, topic


def test_the_body_is_id_seq_kind_title_only() -> None:
    nid = uuid.uuid4()
    body = json.loads(message(nid, 4, "outbid", {"title": "Outbid on X", "price_cents": 5}))
    assert body == {"id": str(nid), "seq": 4, "kind": "outbid", "title": "Outbid on X"}


def test_urgent_kinds_are_high_and_every_push_is_octet_stream() -> None:
    for kind in ("outbid", "auction_won", "auction_ending_soon"):
        assert headers(kind, {}, 60)["Urgency"] == "high"
    plain = headers("listing_sold", {}, 86400)
    assert plain == {"TTL": "86400", "Urgency": "normal",
                     "Content-Type": "application/octet-stream"}


def test_outbid_topic_is_per_auction_and_fits_rfc_8030() -> None:
    auction = uuid.uuid4()
    name = topic("outbid", {"auction_id": str(auction)})
    assert name is not None and len(name) <= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
    assert name == topic("outbid", {"auction_id": str(auction).upper()})
    assert name != topic("outbid", {"auction_id": str(uuid.uuid4())})
    assert headers("outbid", {"auction_id": str(auction)}, 60)["Topic"] == name
    assert topic("auction_won", {"auction_id": str(auction)}) is None
    assert topic("outbid", {}) is None


def test_only_rate_limits_server_errors_and_network_failures_are_retried() -> None:
    assert retryable(PushFailed("x", 429)) and retryable(PushFailed("x", 503))
    assert retryable(PushFailed("connection refused", None))
    assert not retryable(PushFailed("x", 400)) and not retryable(PushFailed("x", 403))
    assert not retryable(ValueError("bug"))
