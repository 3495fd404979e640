"""The delivery guarantee end to end: every device is shown its user's feed in order, each event once, through gaps on
the live path, concurrent writers on two processes, resumes that replay many batches, and fan-out through the broker.

Real servers on real ports and real sockets, on the embedded default and on two processes sharing PostgreSQL + Redis.
Every deployment here runs with the periodic sync off (an hour) and replay batches of three events, so nothing is
delivered by the sync, and a resume of a few dozen events crosses many batches. A gap is made as Pub/Sub makes one:
a writer commits and its wake-up never reaches anyone (the test writes to the database itself, as another process
of the deployment would, and publishes nothing); only the next event that does arrive reveals it. What devices are
shown is audited against what the test itself wrote (`tests._faults.Ledger`), not against the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from tests._client import WAIT, gql, token
from tests._faults import Device, Ledger, assert_nothing_lost
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tests._services import REDIS_HOST, REDIS_PORT
from tidings.cursors import FeedCursor
from tidings.feed import user_channel
from tidings.store import NotificationType, SqlStore, create_engine

if TYPE_CHECKING:
    # Only for annotations: pytest imports the plugin itself (an earlier import would escape assertion rewriting).
    from tests._cluster import ClusterAdmin, LocalCluster

pytest_plugins = ["tests._cluster"]

BATCH = 3  # TIDINGS_REPLAY_BATCH_SIZE of every deployment here
GUARANTEE_ENV = {"TIDINGS_SYNC_INTERVAL": "3600", "TIDINGS_REPLAY_BATCH_SIZE": str(BATCH)}


@dataclass
class Deployment:
    """Servers sharing one database and one broadcast."""

    servers: list[ServerProcess]
    database_url: str  # SQLAlchemy URL of that database, for the test's own writer
    channel_prefix: str

    @contextlib.asynccontextmanager
    async def silent_writer(self, ledger: Ledger) -> AsyncIterator[SilentWriter]:
        store = SqlStore(create_engine(self.database_url, pool_size=1), pool_size=1)
        await store.start()
        try:
            yield SilentWriter(store, ledger)
        finally:
            await store.close()


class SilentWriter:
    """A writer whose wake-ups are lost: it commits to the shared database and publishes nothing."""

    def __init__(self, store: SqlStore, ledger: Ledger) -> None:
        self._store = store
        self._ledger = ledger

    async def create(self, user: str, title: str) -> None:
        _, event = await self._store.create_notification(
            user_id=user, type=NotificationType.INFO, title=title, message="m", data=None
        )
        assert event is not None
        self._ledger.event(event)


def _asyncpg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://")


@contextlib.contextmanager
def _started(*servers: ServerProcess) -> Iterator[list[ServerProcess]]:
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        yield list(servers)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`tidings serve` on SQLite and in-process fan-out; the test writes to its SQLite file beside it."""
    workdir = tmp_path_factory.mktemp("embedded")
    with _started(ServerProcess(workdir, GUARANTEE_ENV)) as servers:
        yield Deployment(servers, f"sqlite+aiosqlite:///{workdir / 'data' / 'tidings.db'}", "tidings")


def _two_processes(workdir: Path, database: PostgresDatabase, env: dict[str, str]) -> Iterator[Deployment]:
    with _started(ServerProcess(workdir / "a", env), ServerProcess(workdir / "b", env)) as servers:
        yield Deployment(servers, _asyncpg(database.url), env["TIDINGS_CHANNEL_PREFIX"])


@pytest.fixture(scope="module")
def on_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two `tidings serve` processes sharing PostgreSQL and Redis."""
    with PostgresDatabase() as database:
        env = scaled_env(database, **GUARANTEE_ENV)
        yield from _two_processes(tmp_path_factory.mktemp("on-redis"), database, env)


@pytest.fixture(scope="module")
def on_cluster(tmp_path_factory: pytest.TempPathFactory, redis_cluster: LocalCluster) -> Iterator[Deployment]:
    """Two `tidings serve` processes sharing PostgreSQL and a Redis Cluster (sharded Pub/Sub)."""
    with PostgresDatabase() as database:
        env = scaled_env(database, broadcast_url=redis_cluster.url, **GUARANTEE_ENV)
        yield from _two_processes(tmp_path_factory.mktemp("on-cluster"), database, env)


@pytest.fixture(params=["embedded", "postgres-redis"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Each guarantee holds on the embedded default and across two processes on PostgreSQL + Redis."""
    return request.getfixturevalue("embedded" if request.param == "embedded" else "on_redis")  # type: ignore[no-any-return]


def _new_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


async def _receive(ledger: Ledger, devices: list[Device], count: int | None = None) -> None:
    """Each device takes `count` more events, or else as many more as the test made for it; when they do not all
    come, the audit says what is missing."""
    try:
        for device in devices:
            expected = len(ledger.expected(device.user, device.start_sequence)) - len(device.received)
            await device.receive(expected if count is None else count)
    except TimeoutError:
        assert_nothing_lost(ledger, devices)
        raise


async def _close(devices: list[Device]) -> None:
    for device in devices:
        await device.close()


# -- order on the live path ----------------------------------------------------------------------------------------


async def test_every_device_sees_its_feed_in_order_through_live_gaps_and_concurrent_writers(
    deployment: Deployment,
) -> None:
    """Writers on every process at once, with lost wake-ups among them and runs of lost wake-ups (up to more than
    two replay batches) right before an event that does arrive: each device, on each process, is shown its user's
    feed exactly, in feed order. Two users keep their feeds at the same positions, so an event of one user that
    reached the other would fit there and be shown."""
    ledger = Ledger()
    servers = deployment.servers
    users = [_new_user(), _new_user()]
    devices: list[Device] = []
    try:
        for user in users:
            for server in itertools.islice(itertools.cycle(servers), 2):
                devices.append(await Device.after_list(server, user))
        async with deployment.silent_writer(ledger) as silent:
            for user in users:
                await ledger.create(servers[0].graphql_url, user, "first")
            await _receive(ledger, devices)  # every device is following live from here on
            for round_, lost in enumerate((1, 2, BATCH + 1, 2 * BATCH + 1)):
                concurrent = [
                    ledger.create(server.graphql_url, user, f"round {round_} via {server.port} #{i}")
                    for i in range(3)
                    for server in servers
                    for user in users
                ]
                concurrent += [silent.create(user, f"round {round_}: its wake-up is lost") for user in users]
                await asyncio.gather(*concurrent)
                for user in users:
                    for i in range(lost):
                        await silent.create(user, f"round {round_}: lost wake-up {i}")
                    # The first wake-up after the lost ones: the live path sees the gap and fills it.
                    await ledger.create(servers[round_ % len(servers)].graphql_url, user, f"round {round_}: after")
        await _receive(ledger, devices)
        assert_nothing_lost(ledger, devices)
    finally:
        await _close(devices)


# -- resume ---------------------------------------------------------------------------------------------------------


async def test_a_resume_replays_many_batches_then_hands_over_to_live(deployment: Deployment) -> None:
    """A device that went offline after two events resumes, on another process, after 18 more (six full replay
    batches, with an ALL_READ among them) while a writer keeps creating; then it continues live. A device that
    starts from the beginning of the feed replays it all."""
    ledger = Ledger()
    first, last = deployment.servers[0], deployment.servers[-1]
    user = _new_user()
    device = await Device.after_list(first, user)
    devices = [device]
    try:
        for i in range(2):
            await ledger.create(first.graphql_url, user, f"seen {i}")
        await _receive(ledger, devices)
        await device.close()
        for i in range(10):
            await ledger.create(first.graphql_url, user, f"missed {i}")
        marked = await gql(first.graphql_url, "mutation { markAllNotificationsRead { cursor } }", bearer=token(user))
        ledger.all_read(user, marked["data"]["markAllNotificationsRead"]["cursor"])
        for i in range(7):
            await ledger.create(first.graphql_url, user, f"missed after reading {i}")
        assert len(ledger.expected(user, after=2)) == 6 * BATCH

        async def meanwhile() -> None:
            for i in range(4):
                await ledger.create(first.graphql_url, user, f"while replaying {i}")

        await device.connect(last.ws_url)  # with the cursor of the last event it was shown
        writing = asyncio.create_task(meanwhile())
        try:
            await _receive(ledger, devices, 6 * BATCH)
        finally:
            await writing
        await _receive(ledger, devices)
        await ledger.create(first.graphql_url, user, "live")
        await _receive(ledger, devices)

        epoch = FeedCursor.decode(device.cursor).epoch
        whole = Device(user=user, start_sequence=0, cursor=FeedCursor(epoch, 0).encode())
        devices.append(whole)
        await whole.connect(first.ws_url)
        await _receive(ledger, [whole])
        assert_nothing_lost(ledger, devices)
    finally:
        await _close(devices)


# -- fan-out through the broker ---------------------------------------------------------------------------------


class BrokerView(Protocol):
    """The broker seen from outside the code under test."""

    async def subscribers(self, channel: str) -> int: ...

    def tap(self, channel: str) -> contextlib.AbstractAsyncContextManager[PubSub]: ...


class RedisView:
    async def subscribers(self, channel: str) -> int:
        async with Redis(host=REDIS_HOST, port=REDIS_PORT) as client:
            [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)

    @contextlib.asynccontextmanager
    async def tap(self, channel: str) -> AsyncIterator[PubSub]:
        async with Redis(host=REDIS_HOST, port=REDIS_PORT) as client, client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            yield pubsub


class ClusterView:
    def __init__(self, cluster: LocalCluster) -> None:
        self._cluster = cluster

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[ClusterAdmin]:
        from tests._cluster import ClusterAdmin  # loaded as a plugin by now (see the import for annotations)

        async with ClusterAdmin(self._cluster) as admin:
            yield admin

    async def subscribers(self, channel: str) -> int:
        async with self._admin() as admin:
            return sum((await admin.shard_subscribers(channel)).values())

    @contextlib.asynccontextmanager
    async def tap(self, channel: str) -> AsyncIterator[PubSub]:
        async with self._admin() as admin, admin.node(admin.owner(channel)).pubsub() as pubsub:
            await pubsub.ssubscribe(channel)
            yield pubsub


async def _messages(pubsub: PubSub, count: int) -> list[dict[str, Any]]:
    """The next `count` messages published on the tapped channel, decoded."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while len(found) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT)
            if message is not None and message["type"] in ("message", "smessage"):
                found.append(orjson.loads(message["data"]))
    return found


async def _metric(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"no {name} in /metrics"
    return float(match.group(1))


async def _wait_for_subscribers(broker: BrokerView, channel: str, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while await broker.subscribers(channel) != count:
            await asyncio.sleep(0.05)


@pytest.fixture(params=["redis", "redis-cluster"])
def broker(request: pytest.FixtureRequest) -> tuple[Deployment, BrokerView]:
    """Two processes and their broker: Redis, or a Redis Cluster."""
    if request.param == "redis":
        return request.getfixturevalue("on_redis"), RedisView()
    return request.getfixturevalue("on_cluster"), ClusterView(request.getfixturevalue("redis_cluster"))


async def test_events_reach_another_process_through_the_broker(broker: tuple[Deployment, BrokerView]) -> None:
    """With the periodic sync off, what one process creates reaches a device on the other process live, through
    the broker: the broker carried each event to the receiving process's subscription, and that process read
    nothing from the database to deliver them."""
    deployment, view = broker
    writer, reader = deployment.servers
    ledger = Ledger()
    user = _new_user()
    channel = f"{deployment.channel_prefix}:{user_channel(user)}"
    device = await Device.after_list(reader, user)
    try:
        await _wait_for_subscribers(view, channel, 1)  # the reading process, once, whatever its sockets
        async with view.tap(channel) as tap:
            await _wait_for_subscribers(view, channel, 2)
            await ledger.create(writer.graphql_url, user, "first")
            await _receive(ledger, [device])
            reads = await _metric(reader, "tidings_replays_total")
            for i in range(5):
                await ledger.create(writer.graphql_url, user, f"live {i}")
            await _receive(ledger, [device])
            carried = await _messages(tap, 6)
        assert [message["seq"] for message in carried] == [event.sequence for event in ledger.expected(user)]
        assert await _metric(reader, "tidings_replays_total") == reads, "delivered from the database, not live"
        assert await _metric(reader, "tidings_sync_wakeups_total") == 0
        assert_nothing_lost(ledger, [device])
    finally:
        await device.close()
