"""The notification delivery worker (``python -m api.workers --only notifications``).

Its own part, so the marketplace workers never wait for the broker: it needs
Postgres (migrated), Redis (doorbell, heartbeat) and the broker (``ece.notifications``).
Ready means its heartbeat is in Redis: the process reached the database, read the
broker's epoch and joined the consumer group (was given its share of the partitions).
Start more processes by hand (same command) for more throughput: they share the group.
"""

from __future__ import annotations

from ops.stack.workers import Workers


class Delivery(Workers):
    """Stores each notification once (seq per user), rings the doorbell, pushes."""

    name = "delivery"
    depends_on = ("migrate", "redis", "broker")
    default_only = "notifications"
