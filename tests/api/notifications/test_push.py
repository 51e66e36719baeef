"""Web Push against a real push service (npm web-push-testing): our VAPID key signs,
the browser's keys decrypt, a gone subscription is deleted, a dead push service is
retried and then given up on loudly, and a kill between commit and push is healed
by the start-up sweep."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.notifications.outbox import Pusher
from api.notifications.push import PushSender
from api.notifications.vapid import public_key_b64url, vapid_for_push
from ece.contracts.topics import notifications_topic
from ece.settings import Settings
from tests.support.apitest import Db
from tests.support.notificationtest import make_users, notification, produce, wait_for
from tests.support.pushservice import PushService


@pytest.fixture(scope="module")
def delivery(platform: Any, api_settings: Settings) -> Settings:
    platform.require("delivery")
    return api_settings


def subscribe(db: Db, service: PushService, settings: Settings, user_id: str) -> dict[str, Any]:
    """A browser subscribing with our applicationServerKey, saved as the API would."""
    sub = service.subscribe(public_key_b64url(settings))
    db.value("INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
             "VALUES (%s, %s, %s, %s) RETURNING id", user_id, sub["endpoint"],
             sub["keys"]["p256dh"], sub["keys"]["auth"])
    return sub


def browser_keys() -> tuple[str, str]:
    """A browser's subscription keys (P-256 public point, 16-byte auth secret), base64url."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    return (base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
            base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())


def pushed_at(db: Db, notification_id: str) -> Any:
    return db.value("SELECT pushed_at FROM notifications WHERE id = %s", notification_id)


async def test_delivery_pushes_the_notification_to_the_browser(
    delivery: Settings, db: Db, push_service: PushService,
) -> None:
    [user] = make_users(db, 1)
    sub = subscribe(db, push_service, delivery, user)
    auction = str(uuid.uuid4())
    value = notification(user, "outbid", auction_id=auction, price_cents=1200)
    produce(delivery, notifications_topic(delivery.topic_prefix), [value])
    [body] = await wait_for(lambda: push_service.messages(sub["clientHash"]), 60, "the push")
    assert json.loads(body) == {"id": value["id"], "seq": 1, "kind": "outbid",
                                "title": value["payload"]["title"]}
    await wait_for(lambda: pushed_at(db, value["id"]) is not None, 10, "pushed_at")


async def test_a_gone_subscription_is_deleted_and_the_push_marked_done(
    delivery: Settings, db: Db, push_service: PushService,
) -> None:
    [user] = make_users(db, 1)
    sub = subscribe(db, push_service, delivery, user)
    topic = notifications_topic(delivery.topic_prefix)
    first = notification(user, "listing_sold")
    produce(delivery, topic, [first])
    await wait_for(lambda: push_service.messages(sub["clientHash"]), 60, "the first push")
    push_service.expire(sub["clientHash"])  # the user unsubscribed in the browser
    second = notification(user, "card_received")
    produce(delivery, topic, [second])
    await wait_for(lambda: pushed_at(db, second["id"]) is not None, 60, "the second push done")
    assert db.value("SELECT count(*) FROM push_subscriptions WHERE user_id = %s", user) == 0
    assert len(push_service.messages(sub["clientHash"])) == 1


@pytest.fixture
async def engine(api_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(api_settings.sqlalchemy_url)
    yield engine
    await engine.dispose()


async def run_pusher(pusher: Pusher, until: Any, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    stop = asyncio.Event()
    task = asyncio.create_task(pusher.run(stop))
    try:
        await wait_for(until, timeout, "the pusher")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def unpushed_row(db: Db, user_id: str, seq: int, kind: str = "auction_won") -> dict[str, Any]:
    """A row committed by a worker that was killed before it pushed (pushed_at NULL)."""
    value = notification(user_id, kind)
    db.value("INSERT INTO notifications (id, user_id, seq, kind, payload, source_event_id) "
             "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id", value["id"], user_id, seq, kind,
             json.dumps(value["payload"]), value["source_event_id"])
    return value


async def test_the_start_sweep_pushes_what_a_killed_worker_left(
    api_settings: Settings, db: Db, push_service: PushService, engine: AsyncEngine,
) -> None:
    [user] = make_users(db, 1)
    sub = subscribe(db, push_service, api_settings, user)
    left = unpushed_row(db, user, seq=1)
    sender = PushSender(vapid_for_push(api_settings), api_settings.vapid_subject,
                        ttl_seconds=api_settings.push_ttl_seconds)
    await run_pusher(Pusher(engine, sender),
                     lambda: pushed_at(db, left["id"]) is not None)
    [body] = push_service.messages(sub["clientHash"])
    assert json.loads(body) == {"id": left["id"], "seq": 1, "kind": "auction_won",
                                "title": left["payload"]["title"]}


async def test_an_unreachable_push_service_is_retried_then_given_up(
    api_settings: Settings, db: Db, engine: AsyncEngine,
) -> None:
    from ops.stack.base import free_port

    [user] = make_users(db, 1)
    db.value("INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
             "VALUES (%s, %s, %s, %s) RETURNING id", user,
             f"http://127.0.0.1:{free_port()}/push/{uuid.uuid4().hex}", *browser_keys())
    left = unpushed_row(db, user, seq=1)
    sender = PushSender(vapid_for_push(api_settings), api_settings.vapid_subject,
                        ttl_seconds=60, attempts=3, base_delay=0.2, timeout_seconds=2)
    started = asyncio.get_running_loop().time()
    await run_pusher(Pusher(engine, sender), lambda: pushed_at(db, left["id"]) is not None)
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.4  # two backoff sleeps (0.2 s, 0.4 s, -20% jitter) before giving up
    # Given up, not gone: the subscription stays for the next notification.
    assert db.value("SELECT count(*) FROM push_subscriptions WHERE user_id = %s", user) == 1
