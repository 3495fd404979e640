"""Broadcast contract: the same behaviour over the memory backend, a real Redis and a real Redis Cluster, plus each
broker's outage recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests._services import in_ci, redis_url
from tidings.broadcast import Broadcast, Subscription, create_backend
from tidings.broadcast.cluster import RedisClusterBackend, parse_cluster_url
from tidings.broadcast.memory import MemoryBackend
from tidings.broadcast.redis import RedisBackend

if TYPE_CHECKING:
    # Only for annotations: pytest imports the plugin itself (an earlier import would escape assertion rewriting).
    from tests._cluster import ClusterAdmin, LocalCluster

# The session's Redis Cluster and its admin, shared with the end-to-end tests.
pytest_plugins = ["tests._cluster"]

# Every wait is bounded so that a bug fails the test instead of hanging it.
WAIT = 5.0
# Recovering from a stopped node includes restarting it and the backend's backoff between attempts.
RECOVERY_WAIT = 15.0

MakeBroadcast = Callable[..., Awaitable[Broadcast]]
# The channels of a test's prefix that the broker holds a subscription to, by place (Redis node), zeros left out.
BrokerChannels = Callable[[], Awaitable[dict[str, int]]]


async def next_item(subscription: Subscription) -> bytes | None:
    async with asyncio.timeout(WAIT):
        return await subscription.get()


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
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


async def wait_for_broker_channels(broker_channels: BrokerChannels, expected: dict[str, int]) -> None:
    """Poll the broker: it may serve the poll before the other connection's (UN)SUBSCRIBE."""
    try:
        async with asyncio.timeout(WAIT):
            while (seen := await broker_channels()) != expected:
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"the broker holds {seen}, expected {expected}") from None


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

    async def test_churn_with_repeated_cancellations_leaves_the_broker_as_it_was(
        self, broadcast: Broadcast, broker_channels: BrokerChannels
    ) -> None:
        # A closing WebSocket cancels its operations more than once (the close, then the handler's shutdown), and a
        # second cancellation can land while the first one's unsubscribe is still on its way to the broker.
        before = await broker_channels()
        names = [f"churn-{number}" for number in range(12)]
        rng = random.Random(10)

        async def member(name: str) -> None:
            async with broadcast.subscribe(name):
                await asyncio.get_running_loop().create_future()  # inside until cancelled

        async def cancel_twice(task: asyncio.Task[None], first: int, second: int) -> None:
            for _ in range(first):
                await asyncio.sleep(0)
            task.cancel()
            for _ in range(second):
                await asyncio.sleep(0)
            task.cancel()

        for _ in range(10):
            members = [asyncio.create_task(member(rng.choice(names))) for _ in range(40)]
            cancellers = [cancel_twice(task, rng.randrange(60), rng.randrange(6)) for task in members]
            await asyncio.gather(*cancellers)
            await asyncio.wait(members)
        await wait_until(lambda: broadcast.local_channels() == frozenset())
        await wait_for_broker_channels(broker_channels, before)

        # A user who comes back gets live messages, and the broker counts them (so the check above can fail).
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = [await stack.enter_async_context(broadcast.subscribe(name)) for name in names]
            during = await broker_channels()
            assert sum(during.values()) == sum(before.values()) + len(names)
            for name, subscription in zip(names, subscriptions, strict=True):
                await broadcast.publish(name, name.encode())
                assert await next_item(subscription) == name.encode()
        await wait_for_broker_channels(broker_channels, before)

    async def test_overflowing_queue_is_replaced_by_one_catch_up_marker(self, make_broadcast: MakeBroadcast) -> None:
        broadcast = await make_broadcast(queue_size=3)
        # One hash tag, so one hash slot: Redis Cluster keeps the order of messages only within a shard.
        flood_channel, barrier_channel = "{flood}", "{flood}:barrier"

        async def publish_and_settle(*messages: bytes) -> None:
            for message in messages:
                await broadcast.publish(flood_channel, message)
            # One reader dispatches in publish order, so once the barrier arrives every message above has been queued.
            await broadcast.publish(barrier_channel, b"")
            assert await next_item(barrier) == b""

        async with broadcast.subscribe(flood_channel) as flood, broadcast.subscribe(barrier_channel) as barrier:
            # 0 1 2 fill the queue, 3 overflows it into [None], then 4 5 6 fill it up to queue_size + 1.
            await publish_and_settle(b"0", b"1", b"2", b"3", b"4", b"5", b"6")
            assert flood.qsize() == 4
            # 7 overflows again: still a single marker.
            await publish_and_settle(b"7", b"8")
            assert flood.qsize() == 2
            assert [await next_item(flood), await next_item(flood)] == [None, b"8"]
            await broadcast.publish(flood_channel, b"9")
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

    async def test_concurrent_and_cut_short_publishes_leave_the_next_ones_whole(self, broadcast: Broadcast) -> None:
        """Publishes at once all arrive; one cancelled mid-way leaves no answer behind for the next to read."""
        async with broadcast.subscribe("busy") as subscription:
            await asyncio.gather(*(broadcast.publish("busy", b"%d" % i) for i in range(200)))
            assert sorted([int(await next_item(subscription) or b"-1") for _ in range(200)]) == list(range(200))
            for steps in range(4):
                cut = asyncio.ensure_future(broadcast.publish("busy", b"cut"))
                for _ in range(steps):
                    await asyncio.sleep(0)
                cut.cancel()
                await asyncio.gather(cut, return_exceptions=True)
                await broadcast.publish("busy", b"after %d" % steps)
                heard = await next_item(subscription)
                if heard == b"cut":  # it got through before the cancellation
                    heard = await next_item(subscription)
                assert heard == b"after %d" % steps

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

    @pytest.fixture
    def broker_channels(self, broadcast: Broadcast, prefix: str) -> BrokerChannels:
        backend = broadcast._backend
        assert isinstance(backend, MemoryBackend)

        async def count() -> dict[str, int]:
            held = sum(channel.startswith(f"{prefix}:") for channel in backend._channels)
            return {"memory": held} if held else {}

        return count


class TestRedisBroadcast(BroadcastContract):
    @pytest.fixture
    def url(self) -> str:
        return redis_url()

    @pytest.fixture
    async def redis_client(self, url: str) -> AsyncIterator[Redis]:
        client = Redis.from_url(url)
        yield client
        await client.aclose()

    @pytest.fixture
    def broker_channels(self, redis_client: Redis, prefix: str) -> BrokerChannels:
        async def count() -> dict[str, int]:
            held = len(await redis_client.pubsub_channels(f"{prefix}:*"))
            return {"redis": held} if held else {}

        return count

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


async def wait_for_shard_subscribers(cluster_admin: ClusterAdmin, channel: str, expected: dict[int, int]) -> None:
    """Poll PUBSUB SHARDNUMSUB on every node until it shows `expected` (port -> count, zeros left out)."""
    async with asyncio.timeout(WAIT):
        while await cluster_admin.shard_subscribers(channel) != expected:
            await asyncio.sleep(0.01)


class TestRedisClusterBroadcast(BroadcastContract):
    @pytest.fixture
    def url(self, redis_cluster: LocalCluster) -> str:
        return redis_cluster.url

    @pytest.fixture
    def broker_channels(self, cluster_admin: ClusterAdmin, prefix: str) -> BrokerChannels:
        return lambda: cluster_admin.shard_channels(prefix)

    @pytest.fixture
    async def cluster(self, redis_cluster: LocalCluster) -> AsyncIterator[LocalCluster]:
        """The session's cluster for a test that stops nodes: afterwards every node runs again and the cluster is ok."""
        yield redis_cluster
        await asyncio.to_thread(redis_cluster.restore)

    async def test_channels_are_sharded_subscriptions_on_the_node_owning_their_slot(
        self, broadcast: Broadcast, cluster_admin: ClusterAdmin, prefix: str
    ) -> None:
        spread = cluster_admin.names_on_every_node(prefix, per_node=2)
        names = [name for names in spread.values() for name in names]
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = {name: await stack.enter_async_context(broadcast.subscribe(name)) for name in names}
            # Several local subscribers of a channel are still one subscriber in Redis.
            await stack.enter_async_context(broadcast.subscribe(names[0]))
            for port, owned in spread.items():
                for name in owned:
                    # Confirmed before subscribe() returned, so no polling needed here.
                    assert await cluster_admin.shard_subscribers(f"{prefix}:{name}") == {port: 1}
                    assert await cluster_admin.plain_subscribers(f"{prefix}:{name}") == {}
            for name in names:
                await broadcast.publish(name, name.encode())
            for name, subscription in subscriptions.items():
                assert await next_item(subscription) == name.encode()
        for name in names:
            await wait_for_shard_subscribers(cluster_admin, f"{prefix}:{name}", {})

    async def test_unconfirmed_subscription_times_out_and_is_withdrawn(
        self, url: str, prefix: str, cluster_admin: ClusterAdmin
    ) -> None:
        backend = RedisClusterBackend(url, confirm_timeout=0.2)
        await backend.connect()
        channel = f"{prefix}:silent"
        try:
            # The owner holds every command, SSUBSCRIBE included, for longer than the backend waits.
            await cluster_admin.pause(cluster_admin.owner(channel), seconds=1.0)
            with pytest.raises(TimeoutError, match="did not confirm"):
                await backend.subscribe(channel)
            # Once the node answers again, the SUNSUBSCRIBE sent on the timeout has undone the late SSUBSCRIBE.
            await wait_for_shard_subscribers(cluster_admin, channel, {})
            assert backend.healthy
        finally:
            await backend.disconnect()

    async def test_recovers_from_a_node_restart_with_a_catch_up_marker(
        self,
        cluster: LocalCluster,
        cluster_admin: ClusterAdmin,
        make_broadcast: MakeBroadcast,
        prefix: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="tidings.broadcast")
        broadcast = await make_broadcast()
        spread = cluster_admin.names_on_every_node(prefix)
        victim, *survivors = cluster.ports
        [down], [up] = spread[victim], spread[survivors[0]]
        async with broadcast.subscribe(down) as on_down, broadcast.subscribe(up) as on_up:
            await broadcast.publish(down, b"before")
            assert await next_item(on_down) == b"before"

            await asyncio.to_thread(cluster.stop_node, victim)
            await wait_until(lambda: not broadcast.healthy)
            with pytest.raises(RedisConnectionError):
                async with asyncio.timeout(WAIT):
                    await broadcast.publish(down, b"nobody can hear this")
            # The other shards keep delivering during the outage.
            await broadcast.publish(up, b"meanwhile")
            assert await next_item(on_up) == b"meanwhile"
            await asyncio.sleep(0.5)  # several failed recovery attempts, still one log line

            await asyncio.to_thread(cluster.start_node, victim)
            await wait_until(lambda: broadcast.healthy, RECOVERY_WAIT)
            # Every subscription catches up, not only those of the lost node: one marker for the whole outage.
            assert await next_item(on_down) is None
            assert await next_item(on_up) is None
            await wait_for_shard_subscribers(cluster_admin, f"{prefix}:{down}", {victim: 1})
            # The publisher's pooled connection to the restarted node died with it and nothing has used it since.
            await broadcast.publish(down, b"after")
            assert await next_item(on_down) == b"after"
        messages = [record.getMessage() for record in caplog.records]
        assert sum("lost the subscriptions" in message for message in messages) == 1
        assert sum("subscriptions recovered" in message for message in messages) == 1

    async def test_dropped_connection_is_reported_with_a_catch_up_marker(
        self, broadcast: Broadcast, cluster_admin: ClusterAdmin, prefix: str
    ) -> None:
        # The node stays up, so redis-py could reconnect and resubscribe on its own without telling anyone.
        async with broadcast.subscribe("dropped") as subscription:
            assert await cluster_admin.kill_subscribers(cluster_admin.owner(f"{prefix}:dropped")) == 1
            assert await next_item(subscription) is None
            await wait_until(lambda: broadcast.healthy)
            await broadcast.publish("dropped", b"still connected")
            assert await next_item(subscription) == b"still connected"

    async def test_subscribe_during_a_node_outage_completes_once_it_is_back(
        self, cluster: LocalCluster, cluster_admin: ClusterAdmin, broadcast: Broadcast, prefix: str
    ) -> None:
        owner = cluster_admin.owner(f"{prefix}:late")
        await asyncio.to_thread(cluster.stop_node, owner)
        # Nothing is subscribed, yet the loss is seen: the backend keeps a connection to every primary.
        await wait_until(lambda: not broadcast.healthy)
        async with contextlib.AsyncExitStack() as stack:
            entering = asyncio.create_task(stack.enter_async_context(broadcast.subscribe("late")))
            await wait_until(lambda: "late" in broadcast.local_channels())
            await asyncio.to_thread(cluster.start_node, owner)
            async with asyncio.timeout(RECOVERY_WAIT):
                subscription = await entering
            await broadcast.publish("late", b"welcome")
            # It joined during the outage, so it is told to catch up like everyone else. A node that is back delivers
            # before the recovery is over (other nodes may still be down), so the marker may come second.
            assert {await next_item(subscription), await next_item(subscription)} == {None, b"welcome"}

    async def test_follows_a_migrated_slot_with_a_catch_up_marker(
        self, broadcast: Broadcast, cluster_admin: ClusterAdmin, prefix: str
    ) -> None:
        channel = f"{prefix}:moving"
        source = cluster_admin.owner(channel)
        target = next(port for port in cluster_admin.cluster.ports if port != source)
        async with broadcast.subscribe("moving") as subscription:
            try:
                await cluster_admin.move_slot(channel, target)
                # Redis ends the subscription on the old owner; the backend subscribes on the new one, then tells.
                assert await next_item(subscription) is None
                assert await cluster_admin.shard_subscribers(channel) == {target: 1}
                # The publisher's slot map is stale too: it follows MOVED.
                await broadcast.publish("moving", b"found you")
                assert await next_item(subscription) == b"found you"
            finally:
                await cluster_admin.move_slot(channel, source)

    async def test_follows_a_failover_to_a_replica_with_a_catch_up_marker(
        self, cluster: LocalCluster, cluster_admin: ClusterAdmin, broadcast: Broadcast, prefix: str
    ) -> None:
        master = cluster.ports[0]
        [name] = cluster_admin.names_on_every_node(prefix)[master]
        channel = f"{prefix}:{name}"
        replica = await asyncio.to_thread(cluster.add_replica, master)
        try:
            async with broadcast.subscribe(name) as subscription:
                await asyncio.to_thread(cluster.fail_over, replica)
                # The demoted master ends the subscription; the backend finds the promoted replica (a node it had no
                # connection to), subscribes there, then tells.
                assert await next_item(subscription) is None
                assert await cluster_admin.shard_subscribers(channel) == {replica: 1}
                await broadcast.publish(name, b"from the new primary")
                assert await next_item(subscription) == b"from the new primary"
        finally:
            await asyncio.to_thread(cluster.fail_over, master, takeover=True)
            await asyncio.to_thread(cluster.remove_replica, replica)

    async def test_subscribing_with_a_stale_slot_map_follows_moved(
        self, broadcast: Broadcast, cluster_admin: ClusterAdmin, prefix: str
    ) -> None:
        channel = f"{prefix}:moved-before"
        source = cluster_admin.owner(channel)
        target = next(port for port in cluster_admin.cluster.ports if port != source)
        # Moved after the backend read the slot map: its SSUBSCRIBE goes to the old owner, which answers MOVED.
        await cluster_admin.move_slot(channel, target)
        try:
            async with broadcast.subscribe("moved-before") as subscription:
                assert await cluster_admin.shard_subscribers(channel) == {target: 1}
                await broadcast.publish("moved-before", b"here")
                # Handling MOVED also resubscribed the old owner's channels, hence (usually) a marker first.
                while (item := await next_item(subscription)) is None:
                    pass
                assert item == b"here"
        finally:
            await cluster_admin.move_slot(channel, source)


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
    assert isinstance(create_backend("redis-cluster://localhost:7000,localhost:7001"), RedisClusterBackend)


def test_cluster_url_names_every_startup_node_and_the_credentials() -> None:
    address = parse_cluster_url("redis-cluster://tidings:p%40ss@10.0.0.1:7000,redis-b,[::1]:7002/")
    assert address.nodes == [("10.0.0.1", 7000), ("redis-b", 6379), ("::1", 7002)]
    assert (address.username, address.password) == ("tidings", "p@ss")
    assert parse_cluster_url("redis-cluster://:secret@node:7000").username is None


@pytest.mark.parametrize(
    "url",
    [
        "redis-cluster://user:hunter2@node:7000/3",  # Redis Cluster has only database 0
        "redis-cluster://user:hunter2@node:7000?ssl=true",
        "redis-cluster://user:hunter2@node:port",
        "redis-cluster://user:hunter2@node:7000,,node:7001",
    ],
)
def test_bad_cluster_url_is_rejected_without_echoing_it(url: str) -> None:
    with pytest.raises(ValueError, match="redis-cluster://") as raised:
        create_backend(url)
    assert "hunter2" not in str(raised.value)


def test_unknown_scheme_is_rejected_without_echoing_the_url() -> None:
    with pytest.raises(ValueError, match="'kafka'") as raised:
        create_backend("kafka://user:hunter2@broker:9092")
    assert "hunter2" not in str(raised.value)


def test_memory_backend_does_not_import_redis() -> None:
    script = "import sys, tidings.broadcast as b; b.Broadcast('memory://'); assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=WAIT * 6, cwd=Path(__file__).parents[1])


async def test_a_reader_that_fails_unexpectedly_restarts_and_subscribers_catch_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a connection loss (the backend handles those): a bug in a delivery. The reader comes back with backoff,
    every subscriber is told to re-read the database, and /readyz (healthy) says so meanwhile."""
    broadcast = Broadcast("memory://", reconnect_delay=0.2, reconnect_delay_max=0.4)
    await broadcast.connect()
    try:
        async with broadcast.subscribe("flaky") as subscription:
            original = Subscription._deliver
            failures: list[bytes] = []

            def deliver_failing_once(self: Subscription, data: bytes) -> None:
                if not failures:
                    failures.append(data)
                    raise RuntimeError("a bug in a delivery")
                original(self, data)

            monkeypatch.setattr(Subscription, "_deliver", deliver_failing_once)
            await broadcast.publish("flaky", b"lost to the bug")
            async with asyncio.timeout(WAIT):
                while broadcast.healthy:
                    await asyncio.sleep(0.01)
            assert await asyncio.wait_for(subscription.get(), WAIT) is None  # re-read what may have been lost
            async with asyncio.timeout(WAIT):
                while not broadcast.healthy:
                    await asyncio.sleep(0.01)
            await broadcast.publish("flaky", b"after the restart")
            async with asyncio.timeout(WAIT):
                while (message := await subscription.get()) is None:
                    pass
            assert message == b"after the restart" and failures == [b"lost to the bug"]
        assert "broadcast: the reader failed; restarting it in 0.2s" in caplog.text
    finally:
        await broadcast.disconnect()
