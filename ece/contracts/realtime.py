"""The ids and channels that the stream jobs, the delivery worker and the API share.

Ids are deterministic so that every consumer can deduplicate: the same business
transition (``listings:<id>:created``) always yields the same ``event_id``, and the
same source event, rule and recipient always yield the same notification ``id``.
They hash the transition rather than the LSN, because a CDC re-snapshot re-reads
rows at a new LSN and must not look like new events (docs/realtime.md).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

# A fixed namespace for notification ids (uuid5 of "urn:ece:notification").
NOTIFICATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:ece:notification")

# The delivery worker publishes {"user_id", "seq"} here after each commit; API
# processes fetch from the table when they hear it (a hint, never the data).
DOORBELL_CHANNEL = "ece:notifications:doorbell"

ACTIVITY_TYPES = (
    "listing_created",
    "listing_cancelled",
    "sale",
    "bid",
    "auction_started",
    "auction_ended",
    "trade_accepted",
    "nft_minted",
)

ENDING_SOON_LEAD_MS = 5 * 60 * 1000  # auction_ending_soon fires 5 minutes before ends_at


def event_id(table: str, primary_key: str, transition: str) -> str:
    """The id of one business event: 32 hex digits of SHA-256 over table, key, transition."""
    return hashlib.sha256(f"{table}:{primary_key}:{transition}".encode()).hexdigest()[:32]


def notification_id(source_event_id: str, kind: str, user_id: str) -> str:
    """The id of one notification: the same source, rule and recipient, the same id."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{source_event_id}|{kind}|{user_id}"))


def iso_millis(epoch_ms: int) -> str:
    """``2026-12-01T11:00:00.123Z``: how every derived topic writes a time."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
