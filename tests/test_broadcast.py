"""Broadcast contract: the same behaviour over the memory backend and a real Redis, plus Redis's outage recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests._services import in_ci, redis_url
from tidings.broadcast import Broadcast, Subscription, create_backend
from tidings.broadcast.memory import MemoryBackend
from tidings.broadcast.redis import RedisBackend

# Every wait is bounded so that a bug fails the test instead of hanging it.
WAIT = 5.0

MakeBroadcast = Callable[..., Awaitable[Broadcast]]


async def next_item(subscription: Subscription) -> bytes | None:
    async with asyncio.timeout(WAIT):
        return await subscription.get()


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


async def wait_for_redis_subscribers(client: Redis, channel: str, expected: int) -> None:
    """Poll PUBSUB NUMSUB: Redis may serve this connection before the other one's (UN)SUBSCRIBE."""
    async with asyncio.timeout(WAIT):
        while True:
            [(_, count)] = await client.pubsub_numsub(channel)
            if count == expected:
                return
            await asyncio.sleep(0.01)


class BroadcastContract:
    """What every backend must do; a subclass per backend provides the `url` fixture."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def prefix(self) -> str:
        return f"test-{uuid.uuid4().hex}"

    @pytest.fixture
    async def make_broadcast(self, url: str, prefix: str) -> AsyncIterator[MakeBroadcast]:
        created: list[Broadcast] = []

        async def make(**options: Any) -> Broadcast:
            broadcast = Broadcast(url, channel_prefix=prefix, **options)
            await broadcast.connect()
            created.append(broadcast)
            return broadcast

        yield make
        for broadcast in created:
            await broadcast.disconnect()

    @pytest.fixture
    async def broadcast(self, make_broadcast: MakeBroadcast) -> Broadcast:
        return await make_broadcast()

    @pytest.fixture
    def backend_calls(self, broadcast: Broadcast, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
        """Record the backend (un)subscriptions the Broadcast makes, as (operation, prefixed channel)."""
        calls: list[tuple[str, str]] = []
        backend = broadcast._backend
        for operation in ("subscribe", "unsubscribe"):
            original = getattr(backend, operation)

            async def spy(channel: str, operation: str = operation, original: Any = original) -> None:
                calls.append((operation, channel))
                await original(channel)

            monkeypatch.setattr(backend, operation, spy)
        return calls

    async def test_message_reaches_every_subscriber_of_its_channel_and_no_other(self, broadcast: Broadcast) -> None:
        async with (
            broadcast.subscribe("a") as first,
            broadcast.subscribe("a") as second,
            broadcast.subscribe("b") as other,
        ):
            await broadcast.publish("a", b"for a")
            await broadcast.publish("b", b"for b")
            assert await next_item(first) == b"for a"
            assert await next_item(second) == b"for a"
            # Had "for a" reached `other`, it would have come first: one reader dispatches in order.
            assert await next_item(other) == b"for b"
            assert (first.qsize(), second.qsize(), other.qsize()) == (0, 0, 0)

    async def test_message_published_right_after_subscribe_returns_is_received(self, broadcast: Broadcast) -> None:
        # A fresh channel is a new backend subscription; the reused one is unsubscribed and subscribed again.
        for i in range(30):
            for channel in (f"fresh-{i}", "reused"):
                async with broadcast.subscribe(channel) as subscription:
                    await broadcast.publish(channel, b"%d" % i)
                    assert await next_item(subscription) == b"%d" % i

    async def test_subscribers_of_one_channel_share_one_backend_subscription(
        self, broadcast: Broadcast, backend_calls: list[tuple[str, str]], prefix: str
    ) -> None:
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = await asyncio.gather(
                *(stack.enter_async_context(broadcast.subscribe("shared")) for _ in range(3))
            )
            assert backend_calls == [("subscribe", f"{prefix}:shared")]
            await broadcast.publish("shared", b"to all")
            for subscription in subscriptions:
                assert await next_item(subscription) == b"to all"
        assert backend_calls == [("subscribe", f"{prefix}:shared"), ("unsubscribe", f"{prefix}:shared")]

    async def test_last_subscriber_leaving_unsubscribes_the_backend(
        self, broadcast: Broadcast, backend_calls: list[tuple[str, str]], prefix: str
    ) -> None:
        assert broadcast.local_channels() == frozenset()
        async with broadcast.subscribe("room") as staying:
            async with broadcast.subscribe("room"):
                assert broadcast.local_channels() == {"room"}
            assert broadcast.local_channels() == {"room"}
            assert backend_calls == [("subscribe", f"{prefix}:room")]
            await broadcast.publish("room", b"still here")
            assert await next_item(staying) == b"still here"
        assert broadcast.local_channels() == frozenset()
        assert backend_calls == [("subscribe", f"{prefix}:room"), ("unsubscribe", f"{prefix}:room")]

    async def test_concurrent_subscribers_coming_and_going_stay_subscribed_while_inside(
        self, broadcast: Broadcast, backend_calls: list[tuple[str, str]]
    ) -> None:
        async def member(number: int) -> None:
            for round_ in range(5):
                async with broadcast.subscribe("churn") as subscription:
                    token = f"{number}-{round_}".encode()
                    await broadcast.publish("churn", token)
                    while await next_item(subscription) != token:
                        pass
                await asyncio.sleep(0)

        await asyncio.gather(*(member(number) for number in range(20)))
        assert broadcast.local_channels() == frozenset()
        operations = [operation for operation, _ in backend_calls]
        assert operations == ["subscribe", "unsubscribe"] * (len(operations) // 2)

    async def test_overflowing_queue_is_replaced_by_one_catch_up_marker(self, make_broadcast: MakeBroadcast) -> None:
        broadcast = await make_broadcast(queue_size=3)

        async def publish_and_settle(*messages: bytes) -> None:
            for message in messages:
                await broadcast.publish("flood", message)
            # One reader dispatches in publish order, so once the barrier arrives every message above has been queued.
            await broadcast.publish("barrier", b"")
            assert await next_item(barrier) == b""

        async with broadcast.subscribe("flood") as flood, broadcast.subscribe("barrier") as barrier:
            # 0 1 2 fill the queue, 3 overflows it into [None], then 4 5 6 fill it up to queue_size + 1.
            await publish_and_settle(b"0", b"1", b"2", b"3", b"4", b"5", b"6")
            assert flood.qsize() == 4
            # 7 overflows again: still a single marker.
            await publish_and_settle(b"7", b"8")
            assert flood.qsize() == 2
            assert [await next_item(flood), await next_item(flood)] == [None, b"8"]
            await broadcast.publish("flood", b"9")
            assert await next_item(flood) == b"9"

    async def test_catch_up_request_queues_one_marker_until_it_is_taken(self, broadcast: Broadcast) -> None:
        async with broadcast.subscribe("sync") as subscription:
            subscription.request_catch_up()
            subscription.request_catch_up()
            await broadcast.publish("sync", b"after")
            assert [await next_item(subscription), await next_item(subscription)] == [None, b"after"]
            subscription.request_catch_up()
            assert await next_item(subscription) is None
            assert subscription.qsize() == 0

    async def test_publish_without_subscribers_succeeds_and_is_not_replayed(self, broadcast: Broadcast) -> None:
        await broadcast.publish("nobody", b"into the void")
        async with broadcast.subscribe("nobody") as subscription:
            await broadcast.publish("nobody", b"heard")
            assert await next_item(subscription) == b"heard"

    async def test_messages_on_one_channel_keep_their_order(self, broadcast: Broadcast) -> None:
        sent = [b"%d" % i for i in range(300)]
        async with broadcast.subscribe("ordered") as subscription:
            for message in sent:
                await broadcast.publish("ordered", message)
            assert [await next_item(subscription) for _ in sent] == sent

    async def test_reader_keeps_waiting_while_nothing_is_subscribed(self, broadcast: Broadcast) -> None:
        # redis-py's PubSub refuses to read before the first SUBSCRIBE and listen() ends after the last UNSUBSCRIBE.
        for round_ in range(2):
            await asyncio.sleep(0.1)
            assert broadcast.healthy
            async with broadcast.subscribe("now and then") as subscription:
                await broadcast.publish("now and then", b"%d" % round_)
                assert await next_item(subscription) == b"%d" % round_

    async def test_disconnect_is_idempotent_and_leaves_no_tasks(self, url: str, prefix: str) -> None:
        broadcast = Broadcast(url, channel_prefix=prefix)
        assert not broadcast.healthy
        await broadcast.connect()
        assert broadcast.healthy
        async with broadcast.subscribe("bye") as subscription:
            await broadcast.publish("bye", b"hello")
            assert await next_item(subscription) == b"hello"
        await broadcast.disconnect()
        await broadcast.disconnect()
        assert not broadcast.healthy
        assert asyncio.all_tasks() == {asyncio.current_task()}

    async def test_publish_and_subscribe_before_connect_raise(self, url: str, prefix: str) -> None:
        broadcast = Broadcast(url, channel_prefix=prefix)
        with pytest.raises(RuntimeError, match=r"connect\(\)"):
            await broadcast.publish("early", b"x")
        with pytest.raises(RuntimeError, match=r"connect\(\)"):
            async with broadcast.subscribe("early"):
                pass
        assert broadcast.local_channels() == frozenset()


class TestMemoryBroadcast(BroadcastContract):
    @pytest.fixture
    def url(self) -> str:
        return "memory://"


class TestRedisBroadcast(BroadcastContract):
    @pytest.fixture
    def url(self) -> str:
        return redis_url()

    @pytest.fixture
    async def redis_client(self, url: str) -> AsyncIterator[Redis]:
        client = Redis.from_url(url)
        yield client
        await client.aclose()

    async def test_local_subscribers_of_a_channel_are_one_redis_subscriber(
        self, broadcast: Broadcast, redis_client: Redis, prefix: str
    ) -> None:
        async with broadcast.subscribe("shared"), broadcast.subscribe("shared"), broadcast.subscribe("shared"):
            # Confirmed before subscribe() returned, so no polling needed here.
            [(_, count)] = await redis_client.pubsub_numsub(f"{prefix}:shared")
            assert count == 1
        await wait_for_redis_subscribers(redis_client, f"{prefix}:shared", 0)

    async def test_unconfirmed_subscription_times_out_and_is_withdrawn(
        self, url: str, prefix: str, redis_client: Redis
    ) -> None:
        # Without a reader nobody reads Redis's confirmation, which looks to subscribe() like Redis never answering.
        backend = RedisBackend(url, confirm_timeout=0.2)
        await backend.connect()
        try:
            with pytest.raises(TimeoutError, match="did not confirm"):
                await backend.subscribe(f"{prefix}:silent")
            await wait_for_redis_subscribers(redis_client, f"{prefix}:silent", 0)
        finally:
            await backend.disconnect()

    async def test_recovers_from_a_redis_restart_with_a_catch_up_marker(
        self, redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="tidings.broadcast")
        broadcast = Broadcast(redis_server.url, channel_prefix=prefix)
        await broadcast.connect()
        try:
            async with broadcast.subscribe("outage") as subscription:
                await broadcast.publish("outage", b"before")
                assert await next_item(subscription) == b"before"
                assert broadcast.healthy

                redis_server.stop()
                await wait_until(lambda: not broadcast.healthy)
                await asyncio.sleep(0.5)  # several failed reconnection attempts, still one log line

                await redis_server.start()
                await wait_until(lambda: broadcast.healthy)
                assert await next_item(subscription) is None
                # The publisher's pooled connection died with the server and nothing has used it since.
                await broadcast.publish("outage", b"after")
                assert await next_item(subscription) == b"after"
        finally:
            await broadcast.disconnect()
        messages = [record.getMessage() for record in caplog.records]
        assert sum("lost connection to Redis" in message for message in messages) == 1
        assert sum("reconnected to Redis" in message for message in messages) == 1

    async def test_dropped_connection_is_reported_with_a_catch_up_marker(
        self, redis_server: RedisServer, prefix: str
    ) -> None:
        # The server stays up, so redis-py could reconnect and resubscribe on its own without telling anyone.
        broadcast = Broadcast(redis_server.url, channel_prefix=prefix)
        await broadcast.connect()
        admin = Redis.from_url(redis_server.url)
        try:
            async with broadcast.subscribe("dropped") as subscription:
                assert await admin.client_kill_filter(_type="pubsub") == 1
                assert await next_item(subscription) is None
                await wait_until(lambda: broadcast.healthy)
                await broadcast.publish("dropped", b"still connected")
                assert await next_item(subscription) == b"still connected"
        finally:
            await admin.aclose()
            await broadcast.disconnect()

    async def test_subscribe_during_an_outage_completes_once_redis_is_back(
        self, redis_server: RedisServer, prefix: str
    ) -> None:
        broadcast = Broadcast(redis_server.url, channel_prefix=prefix)
        await broadcast.connect()
        try:
            redis_server.stop()
            await wait_until(lambda: not broadcast.healthy)
            with pytest.raises(RedisConnectionError):
                async with asyncio.timeout(WAIT):
                    await broadcast.publish("late", b"nobody can hear this")
            async with contextlib.AsyncExitStack() as stack:
                entering = asyncio.create_task(stack.enter_async_context(broadcast.subscribe("late")))
                await wait_until(lambda: "late" in broadcast.local_channels())
                await redis_server.start()
                async with asyncio.timeout(WAIT):
                    subscription = await entering
                await broadcast.publish("late", b"welcome")
                # It joined during the outage, so it is told to catch up like everyone else.
                assert [await next_item(subscription), await next_item(subscription)] == [None, b"welcome"]
        finally:
            await broadcast.disconnect()


class RedisServer:
    """A throwaway redis-server on a free port that a test may stop and start again (the shared one never stops)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self._binary = binary
        self._directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(
            [*command, "--dir", str(self._directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._process = process
        async with asyncio.timeout(WAIT):
            while not self._accepts_connections():
                if process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {process.returncode} on port {self.port}")
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=WAIT)

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is not installed (CI=true: services are required)", pytrace=False)
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


def test_backend_is_chosen_by_url_scheme() -> None:
    assert isinstance(create_backend("memory://"), MemoryBackend)
    assert isinstance(create_backend("redis://localhost:6379/0"), RedisBackend)
    assert isinstance(create_backend("rediss://localhost:6380/0"), RedisBackend)


def test_unknown_scheme_is_rejected_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="'kafka'") as raised:
        create_backend("kafka://user:hunter2@broker:9092")
    assert "hunter2" not in str(raised.value)


def test_memory_backend_does_not_import_redis() -> None:
    script = "import sys, tidings.broadcast as b; b.Broadcast('memory://'); assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=WAIT * 6, cwd=Path(__file__).parents[1])
