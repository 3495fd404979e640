"""presence(userId): the adapters' contract (memory, Redis), and real servers counting devices across processes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from tests._client import WAIT, WSClient, error_codes, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tests._services import redis_url
from tidings.presence import PresenceBackend, create_presence
from tidings.presence.memory import MemoryPresence
from tidings.presence.redis import RedisPresence

if TYPE_CHECKING:
    from tests._cluster import LocalCluster

pytest_plugins = ["tests._cluster"]

INTERVAL = 0.3  # seconds between refreshes in these tests: a member expires 0.9 s after its process stops

PRESENCE = "query($userId: ID!) { presence(userId: $userId) { userId devices online lastSeenAt } }"


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Wait for a condition, checking every 50 ms; fail after `timeout` naming it."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# -- the contract, over every adapter --------------------------------------------------------------------------


class PresenceContract:
    @pytest.fixture
    def prefix(self) -> str:
        return f"tidings-test-{uuid.uuid4().hex[:8]}"

    def make(self, prefix: str) -> PresenceBackend:
        raise NotImplementedError

    @pytest.fixture
    async def presence(self, prefix: str) -> AsyncIterator[PresenceBackend]:
        presence = self.make(prefix)
        await presence.start()
        try:
            yield presence
        finally:
            await presence.close()

    async def devices(self, presence: PresenceBackend, user: str, expected: int) -> None:
        async def counted() -> bool:
            return (await presence.lookup(user)).devices == expected

        await until(counted, f"{expected} devices of {user}")

    async def test_a_user_never_connected_has_no_devices_and_no_last_seen(
        self, presence: PresenceBackend, user: str
    ) -> None:
        record = await presence.lookup(user)
        assert (record.devices, record.last_seen_at) == (0, None)

    async def test_devices_are_counted_until_each_disconnects(self, presence: PresenceBackend, user: str) -> None:
        phone, laptop = presence.connected(user), presence.connected(user)
        await self.devices(presence, user, 2)
        presence.disconnected(user, phone)
        await self.devices(presence, user, 1)
        presence.disconnected(user, laptop)
        await self.devices(presence, user, 0)

    async def test_online_is_seen_now_and_offline_when_the_last_device_left(
        self, presence: PresenceBackend, user: str
    ) -> None:
        before = datetime.now(UTC)
        device = presence.connected(user)
        await self.devices(presence, user, 1)
        online = await presence.lookup(user)
        assert online.last_seen_at is not None and online.last_seen_at >= before
        presence.disconnected(user, device)
        await self.devices(presence, user, 0)
        left = datetime.now(UTC)
        await asyncio.sleep(0.05)
        offline = await presence.lookup(user)
        assert offline.last_seen_at is not None and before <= offline.last_seen_at <= left

    async def test_other_users_are_not_counted(self, presence: PresenceBackend, user: str) -> None:
        presence.connected(f"{user}-other")
        await self.devices(presence, f"{user}-other", 1)
        assert (await presence.lookup(user)).devices == 0


class TestMemoryPresence(PresenceContract):
    def make(self, prefix: str) -> PresenceBackend:
        return create_presence("memory://", prefix=prefix, interval=INTERVAL, seen_ttl=60)

    def test_the_embedded_default_counts_in_memory(self) -> None:
        assert isinstance(self.make("p"), MemoryPresence)

    async def test_last_seen_times_are_bounded(self, user: str) -> None:
        presence = MemoryPresence(max_seen_users=2)
        for name in ("a", "b", "c"):
            presence.disconnected(f"{user}-{name}", presence.connected(f"{user}-{name}"))
        assert (await presence.lookup(f"{user}-a")).last_seen_at is None
        assert (await presence.lookup(f"{user}-c")).last_seen_at is not None


class TestRedisPresence(PresenceContract):
    def make(self, prefix: str) -> PresenceBackend:
        return create_presence(redis_url(), prefix=prefix, interval=INTERVAL, seen_ttl=60)

    async def test_devices_of_several_processes_add_up(self, presence: PresenceBackend, prefix: str, user: str) -> None:
        other = self.make(prefix)
        await other.start()
        try:
            presence.connected(user)
            handle = other.connected(user)
            other.connected(user)
            await self.devices(presence, user, 3)
            await self.devices(other, user, 3)
            other.disconnected(user, handle)
            await self.devices(presence, user, 2)
        finally:
            await other.close()
        await self.devices(presence, user, 1)  # a process that shuts down withdraws its devices at once

    async def test_a_process_that_stops_refreshing_loses_its_devices_after_the_expiry(
        self, presence: PresenceBackend, prefix: str, user: str
    ) -> None:
        doomed = self.make(prefix)
        assert isinstance(doomed, RedisPresence)
        await doomed.start()
        doomed.connected(user)
        doomed.connected(user)
        presence.connected(user)
        await self.devices(presence, user, 3)
        # Killed: its task stops without withdrawing anything (what SIGKILL does to a process).
        assert doomed._task is not None
        doomed._task.cancel()
        killed_at = time.monotonic()
        await self.devices(presence, user, 1)
        assert time.monotonic() - killed_at < 3 * INTERVAL + 1
        await doomed._client.aclose()


async def test_the_refresh_outlives_a_flush_of_the_servers_scripts(user: str) -> None:
    """On a single server the refresh is a script (EVALSHA): one the server forgot (a restart, SCRIPT FLUSH) is
    loaded again, and devices go on being counted."""
    presence = create_presence(
        redis_url(), prefix=f"tidings-test-{uuid.uuid4().hex[:8]}", interval=INTERVAL, seen_ttl=60
    )
    await presence.start()
    admin = Redis.from_url(redis_url())
    try:
        presence.connected(user)
        await PresenceContract().devices(presence, user, 1)
        await admin.script_flush()
        presence.connected(user)
        await PresenceContract().devices(presence, user, 2)
    finally:
        await admin.aclose()
        await presence.close()


class TestRedisClusterPresence(TestRedisPresence):
    """On a cluster the refresh is a pipeline of plain commands (each user's keys on their own node)."""

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: LocalCluster) -> None:
        self.url = redis_cluster.url

    def make(self, prefix: str) -> PresenceBackend:
        return create_presence(self.url, prefix=prefix, interval=INTERVAL, seen_ttl=60)


# -- real servers ------------------------------------------------------------------------------------------------


async def presence_of(server: ServerProcess, user: str) -> dict[str, Any]:
    body = await gql(server.graphql_url, PRESENCE, {"userId": user}, bearer=service_token())
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["presence"]
    return result


async def until_devices(server: ServerProcess, user: str, expected: int) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def counted() -> bool:
        found.update(await presence_of(server, user))
        return bool(found["devices"] == expected)

    await until(counted, f"{expected} devices of {user} on :{server.port}")
    return found


async def test_presence_counts_a_users_sockets_and_remembers_when_they_left(server: ServerProcess, user: str) -> None:
    assert await presence_of(server, user) == {"userId": user, "devices": 0, "online": False, "lastSeenAt": None}
    backend = await WSClient.connected(server.ws_url, service_token())  # a service's socket is not a device
    async with (
        await WSClient.connected(server.ws_url, token(user)),
        await WSClient.connected(server.ws_url, token(user)),
    ):
        online = await until_devices(server, user, 2)
        assert online["online"] is True and online["lastSeenAt"] is not None
        leaving = datetime.now(UTC)
    offline = await until_devices(server, user, 0)
    gone = datetime.now(UTC)
    await backend.conn.close()
    assert offline["online"] is False
    # The server stamps the moment it saw the last device go: after the client left, before the client saw it gone.
    assert leaving <= datetime.fromisoformat(offline["lastSeenAt"]) <= gone


async def test_a_user_token_may_not_ask_for_presence(server: ServerProcess, user: str) -> None:
    body = await gql(server.graphql_url, PRESENCE, {"userId": user}, bearer=token(user))
    assert error_codes(body) == ["FORBIDDEN"]
    assert body["data"] is None


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with PostgresDatabase() as database:
        env = scaled_env(database, TIDINGS_PRESENCE_INTERVAL=str(INTERVAL))
        first = ServerProcess(tmp_path / "a", env).start()
        second = ServerProcess(tmp_path / "b", env).start()
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


async def test_devices_on_two_processes_add_up_and_a_killed_ones_expire(
    two_servers: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    a, b = two_servers
    on_a = [await WSClient.connected(a.ws_url, token(user)) for _ in range(2)]
    on_b = [await WSClient.connected(b.ws_url, token(user)) for _ in range(3)]
    await until_devices(a, user, 5)
    await until_devices(b, user, 5)
    await on_a[0].conn.close()
    await until_devices(b, user, 4)
    b.stop(signal.SIGKILL)  # its three devices are never withdrawn: they expire
    survivor = await until_devices(a, user, 1)
    assert survivor["online"] is True
    await on_a[1].conn.close()
    await until_devices(a, user, 0)
    for client in on_b:
        await client.conn.close()
