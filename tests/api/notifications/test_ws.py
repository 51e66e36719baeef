"""``/ws`` against the API under uvicorn: auth, replay then live, the sweep, slow readers,
pings, the market channel, and two API processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from confluent_kafka import Producer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ece.contracts.topics import market_activity_topic, market_stats_topic
from ece.kafka import ensure_topics, producer_config
from ece.settings import Settings
from ops.stack.base import free_port
from tests.support.apitest import Account, register_and_login
from tests.support.notifytest import produce, ring, store_batch
from tests.support.processes import TestProcess


@asynccontextmanager
async def socket_for(ws_base: str, account: Account | None, **params: Any
                     ) -> AsyncIterator[ClientConnection]:
    query = {"token": account.access} if account else {}
    query.update({k: str(v) for k, v in params.items()})
    url = ws_base + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    async with connect(url, open_timeout=10, **params.pop("_connect", {})) as ws:
        yield ws


async def next_of(ws: ClientConnection, kind: str, timeout: float = 5.0  # noqa: ASYNC109
                  ) -> dict[str, Any]:
    """The next message of ``kind`` (others are skipped), within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind} message within {timeout}s")
        message = json.loads(await asyncio.wait_for(ws.recv(), left))
        if message["type"] == kind:
            return dict(message)


async def close_code(ws: ClientConnection, timeout: float = 10.0  # noqa: ASYNC109
                     ) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


async def test_bad_missing_or_expired_token_closes_4401(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    me = await register_and_login(live)
    now = datetime.now(UTC)
    expired = jwt.encode({"iss": "ece", "sub": me.id, "role": "user", "typ": "access",
                          "iat": now - timedelta(hours=1), "exp": now - timedelta(minutes=1)},
                         settings.jwt_key, algorithm="HS256")
    forged = jwt.encode({"iss": "ece", "sub": me.id, "role": "user", "typ": "access",
                         "iat": now, "exp": now + timedelta(minutes=5)},
                        "not-the-key-" * 4, algorithm="HS256")
    for query in ("", "?token=", "?token=garbage", f"?token={expired}", f"?token={forged}",
                  f"?token={me.refresh}"):
        async with connect(ws_base + query, open_timeout=10) as ws:
            assert await close_code(ws) == 4401, query

    async with socket_for(ws_base, me, channels="bogus") as ws:
        assert await close_code(ws) == 4400
    async with socket_for(ws_base, me, after_seq="-1") as ws:
        assert await close_code(ws) == 4400


async def test_replay_after_seq_then_live(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    me = await register_and_login(live)
    other = await register_and_login(live)
    stored = [produce(settings, me.id, kind="card_received") for _ in range(3)]

    async with socket_for(ws_base, me, after_seq=1) as ws:
        replay = [await next_of(ws, "notification") for _ in range(2)]
        assert [m["data"]["seq"] for m in replay] == [2, 3]
        assert replay[0]["data"] == {"id": stored[1].id, "seq": 2, "kind": "card_received",
                                     "payload": stored[1].payload, "read_at": None,
                                     "created_at": replay[0]["data"]["created_at"]}
        produce(settings, other.id)  # someone else's: never on this socket
        started = time.monotonic()
        fresh = produce(settings, me.id, kind="outbid")
        live_one = await next_of(ws, "notification", timeout=2)
        latency = time.monotonic() - started
        assert live_one["data"]["id"] == fresh.id and live_one["data"]["seq"] == 4
        assert latency < 1.0, f"doorbell to socket took {latency:.2f}s"
        # Nothing else (not the other user's, no duplicate) arrives.
        try:
            extra = await next_of(ws, "notification", timeout=1.5)
            raise AssertionError(f"unexpected {extra}")
        except TimeoutError:
            pass


async def test_without_after_seq_only_new_ones(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    me = await register_and_login(live)
    produce(settings, me.id)
    async with socket_for(ws_base, me) as ws:
        await asyncio.sleep(0.3)
        fresh = produce(settings, me.id)
        assert (await next_of(ws, "notification"))["data"]["seq"] == fresh.seq == 2


async def test_lost_doorbell_is_caught_by_the_sweep(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    me = await register_and_login(live)
    async with socket_for(ws_base, me, after_seq=0) as ws:
        await asyncio.sleep(0.3)
        started = time.monotonic()
        silent = produce(settings, me.id, doorbell=False)
        message = await next_of(ws, "notification", timeout=4)
        waited = time.monotonic() - started
        assert message["data"]["id"] == silent.id
        assert waited < 3.0, f"the 2 s sweep took {waited:.2f}s"
        # A stray doorbell for a seq already sent repeats nothing.
        ring(settings.redis_url, me.id, silent.seq)
        try:
            extra = await next_of(ws, "notification", timeout=1.0)
            raise AssertionError(f"unexpected {extra}")
        except TimeoutError:
            pass


class RawSocket:
    """A WebSocket client that reads only when told to: nothing reads in the background,
    and its receive buffer is tiny, so the server's sends back up at once."""

    def __init__(self, ws_url: str) -> None:
        parts = urlsplit(ws_url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(15)
        self.sock.connect((parts.hostname, parts.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed without a close frame")
            data += chunk
        return bytes(data)

    def frame(self) -> tuple[int, bytes]:
        first, second = self._exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(self._exactly(8), "big")
        return first & 0x0F, self._exactly(length)

    def close(self) -> None:
        self.sock.close()


async def test_slow_reader_is_closed_4408_and_resumes(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    """A client that stops reading is cut off, not buffered without bound; it resumes
    after the last seq it got and misses nothing."""
    me = await register_and_login(live)
    raw = RawSocket(f"{ws_base}?token={me.access}&after_seq=0")
    total = 1500  # 48 MB: more than the kernel buffers and the server's send queue hold
    try:
        big = "x" * 32_000
        stored = store_batch(settings.database_url, me.id,
                             [{"title": f"n{i}", "pad": big} for i in range(total)])
        ring(settings.redis_url, me.id, stored[-1].seq)
        # The server fills the buffers, waits SEND_TIMEOUT_SECONDS (10 s) for the client,
        # then closes; the close frame waits behind the buffered data for the client.
        await asyncio.sleep(12)
        seqs: list[int] = []
        while True:
            opcode, data = await asyncio.to_thread(raw.frame)
            if opcode == 0x8:
                code = int.from_bytes(data[:2], "big")
                break
            if opcode == 0x1:
                message = json.loads(data)
                if message["type"] == "notification":
                    seqs.append(message["data"]["seq"])
    finally:
        raw.close()
    assert code == 4408
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < total
    async with socket_for(ws_base, me, after_seq=seqs[-1]) as ws:
        rest = [(await next_of(ws, "notification"))["data"]["seq"]
                for _ in range(total - len(seqs))]
    assert rest == list(range(len(seqs) + 1, total + 1))


async def test_pings_at_the_configured_interval(ws_base: str, live: httpx.AsyncClient,
                                                settings: Settings) -> None:
    """Every ``ECE_WS_PING_SECONDS`` (20 s by default; the test session sets 3 s)."""
    me = await register_and_login(live)
    async with socket_for(ws_base, me) as ws:
        started = time.monotonic()
        ping = await next_of(ws, "ping", timeout=settings.ws_ping_seconds + 5)
        assert time.monotonic() - started >= settings.ws_ping_seconds - 1
        at = datetime.fromisoformat(ping["at"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - at).total_seconds()) < 5


async def test_market_channel_fans_out_activity(
    ws_base: str, live: httpx.AsyncClient, platform: Any, settings: Settings
) -> None:
    platform.require("broker")
    topic = market_activity_topic(settings.topic_prefix)
    ensure_topics(settings, [topic])
    me = await register_and_login(live)
    producer = Producer(producer_config(settings, idempotent=False))
    async with socket_for(ws_base, me, channels="notifications,market") as ws:
        deadline = time.monotonic() + 40  # the feed starts on this first market socket
        seen: dict[str, Any] | None = None
        sent: set[str] = set()
        while seen is None and time.monotonic() < deadline:
            event_id = uuid.uuid4().hex
            sent.add(event_id)
            event = {"event_id": event_id, "type": "sale", "card_id": str(uuid.uuid4()),
                     "user_id": me.id, "counterparty_id": None, "price_cents": 1234,
                     "reference_id": str(uuid.uuid4()), "set_name": "Alpha",
                     "rarity": "rare", "at": "2026-12-01T11:00:00.123Z"}
            producer.produce(topic, key=str(event["card_id"]), value=json.dumps(event))
            producer.flush(5)
            # other tests' activity shares the channel: read all of it, not one a round
            seen = await _market_event_of(ws, sent, within=1.0)
        assert seen is not None, ("no market event reached the socket; the API's market "
                                  f"feed logged:\n{_market_feed_log(platform)}")
        assert seen["type"] == "sale" and seen["price_cents"] == 1234
        # Notifications keep flowing on the same socket.
        fresh = produce(settings, me.id)
        assert (await next_of(ws, "notification"))["data"]["id"] == fresh.id


async def _market_event_of(ws: ClientConnection, event_ids: set[str], within: float
                           ) -> dict[str, Any] | None:
    """The first market event on the socket whose id is one of ``event_ids``, if one
    comes within ``within`` seconds; every other message is skipped."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            return None
        if message["type"] == "market" and message["data"].get("event_id") in event_ids:
            return dict(message["data"])
    return None


def _market_feed_log(platform: Any, lines: int = 12) -> str:
    """The API's last ``market_feed`` log lines: why a feed did not deliver, on failure."""
    log = platform.part("api").log_path.read_text(errors="replace").splitlines()
    return "\n".join([line for line in log if "market_feed" in line][-lines:]) or "(nothing)"


@asynccontextmanager
async def second_api(settings: Settings, **env: str) -> AsyncIterator[str]:
    """Another API process (its own hub) on a free port, with ``env`` overrides; yields
    its ``/ws`` URL."""
    port = free_port()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        second = TestProcess(settings, "uvicorn", "api.web.app:create_app", "--factory",
                             "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                             label="api-second")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                async with httpx.AsyncClient(timeout=1) as probe:
                    if (await probe.get(f"{base}/healthz")).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert second.proc.poll() is None, second.log()
            assert time.monotonic() < deadline, second.log()
            await asyncio.sleep(0.3)
        yield base.replace("http://", "ws://") + "/ws"
    finally:
        second.stop()


async def test_two_api_processes_each_deliver_to_their_sockets(
    ws_base: str, live: httpx.AsyncClient, settings: Settings
) -> None:
    async with second_api(settings) as second_ws:
        me = await register_and_login(live)
        other = await register_and_login(live)
        async with socket_for(ws_base, me) as first, socket_for(second_ws, me) as other_proc, \
                socket_for(second_ws, other) as others:
            # No pause: a socket that is open gets everything stored after it opened, also
            # on a cold process (its first database connection). 10 s: on a loaded machine
            # the doorbell may ring before the socket subscribes; the sweep then delivers
            # it (test_lost_doorbell_is_caught_by_the_sweep).
            mine = produce(settings, me.id)
            for ws in (first, other_proc):
                message = await next_of(ws, "notification", timeout=10)
                assert message["data"]["id"] == mine.id
            theirs = produce(settings, other.id)
            assert (await next_of(others, "notification", timeout=10))["data"]["id"] == theirs.id


async def test_notifications_flow_while_the_market_broker_is_down(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    """An API process whose broker is unreachable still serves the notifications of a
    socket that asked for the market channel too."""
    dead = f"127.0.0.1:{free_port()}"
    async with second_api(settings, ECE_KAFKA_BOOTSTRAP=dead) as ws_url:
        me = await register_and_login(live)
        async with socket_for(ws_url, me, channels="market,notifications") as ws:
            await asyncio.sleep(1.0)  # the feed is failing to connect by now
            for _ in range(2):
                fresh = produce(settings, me.id)
                assert (await next_of(ws, "notification", timeout=2))["data"]["id"] == fresh.id


async def test_market_channel_joins_the_stats_topic_created_after_it_started(
    live: httpx.AsyncClient, platform: Any, settings: Settings
) -> None:
    """An API process whose ticker started before the market_stats job made its topic
    picks the topic up later: stats windows reach the socket without a restart."""
    platform.require("broker")
    prefix = f"late{uuid.uuid4().hex[:8]}"
    activity, stats = market_activity_topic(prefix), market_stats_topic(prefix)
    ensure_topics(settings, [activity])
    me = await register_and_login(live)
    producer = Producer(producer_config(settings, idempotent=False))

    async def first_seen(ws: ClientConnection, topic: str, make: Any, stream: str | None
                         ) -> dict[str, Any] | None:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            event = make()
            producer.produce(topic, key=str(event["card_id"]), value=json.dumps(event))
            producer.flush(5)
            try:
                message = await next_of(ws, "market", timeout=1.0)
            except TimeoutError:
                continue
            if message.get("stream") == stream and message["data"] == event:
                return dict(message["data"])
        return None

    def sale() -> dict[str, Any]:
        return {"event_id": uuid.uuid4().hex, "type": "sale", "card_id": str(uuid.uuid4()),
                "user_id": me.id, "counterparty_id": None, "price_cents": 1234,
                "reference_id": str(uuid.uuid4()), "set_name": "Alpha", "rarity": "rare",
                "at": "2026-12-01T11:00:00.123Z"}

    def window() -> dict[str, Any]:
        return {"card_id": str(uuid.uuid4()), "window_start": "2026-12-01T11:00:00.000Z",
                "window_end": "2026-12-01T11:01:00.000Z", "sales": 1, "volume_cents": 1234,
                "min_price_cents": 1234, "max_price_cents": 1234, "last_price_cents": 1234}

    async with second_api(settings, ECE_TOPIC_PREFIX=prefix) as ws_url, \
            socket_for(ws_url, me, channels="market") as ws:
        assert await first_seen(ws, activity, sale, None) is not None, "ticker never started"
        ensure_topics(settings, [stats])  # the stats job comes up after the API
        got = await first_seen(ws, stats, window, "stats")
    assert got is not None, "a stats topic created after the ticker started never joined"
    assert got["sales"] == 1 and got["volume_cents"] == 1234
