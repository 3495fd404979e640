"""Two server processes on PostgreSQL and a Redis Cluster deliver each other's events over sharded Pub/Sub."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import pytest

from tests._client import WSClient, create, gql, token
from tests._server import PostgresDatabase, ServerProcess
from tidings.feed import user_channel

if TYPE_CHECKING:
    # Only for annotations: pytest imports the plugin itself (an earlier import would escape assertion rewriting).
    from tests._cluster import ClusterAdmin, LocalCluster

pytest_plugins = ["tests._cluster"]

WAIT = 10.0


class Deployment(NamedTuple):
    a: ServerProcess
    b: ServerProcess
    prefix: str


@pytest.fixture(scope="module")
def deployment(redis_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("cluster-servers")
    prefix = f"tidings-test-{uuid.uuid4().hex[:8]}"
    with PostgresDatabase() as database, contextlib.ExitStack() as stack:
        env = {
            "TIDINGS_DATABASE_URL": database.url,
            "TIDINGS_BROADCAST_URL": redis_cluster.url,
            "TIDINGS_CHANNEL_PREFIX": prefix,
            "TIDINGS_AUTO_MIGRATE": "true",
            # No periodic sync within the test: live events can only have come through the cluster.
            "TIDINGS_SYNC_INTERVAL": "3600",
        }
        servers = []
        for name in ("a", "b"):
            server = ServerProcess(workdir / name, env)
            stack.callback(server.stop)
            servers.append(server.start())
        yield Deployment(*servers, prefix)


async def wait_for_shard_subscribers(admin: ClusterAdmin, channel: str, expected: dict[int, int]) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while (seen := await admin.shard_subscribers(channel)) != expected:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{channel}: shard subscribers by node {seen}, expected {expected}") from None


async def test_users_on_every_shard_receive_in_order_what_either_process_creates(
    deployment: Deployment, cluster_admin: ClusterAdmin
) -> None:
    a, b, prefix = deployment
    # One user whose channel lives on each node, so every shard carries events between the processes.
    users: dict[int, str] = {}
    while len(users) < len(cluster_admin.cluster.ports):
        user = f"user-{uuid.uuid4().hex[:10]}"
        users.setdefault(cluster_admin.owner(f"{prefix}:{user_channel(user)}"), user)
    async with contextlib.AsyncExitStack() as stack:
        devices: list[tuple[str, WSClient, str]] = []
        for user in users.values():
            body = await gql(a.graphql_url, "{ notifications { feedCursor } }", bearer=token(user))
            cursor = body["data"]["notifications"]["feedCursor"]
            for server in (a, b):
                device = await stack.enter_async_context(await WSClient.connected(server.ws_url, token(user)))
                devices.append((user, device, await device.subscribe(variables={"after": cursor})))
        for port, user in users.items():
            channel = f"{prefix}:{user_channel(user)}"
            # Each process holds one sharded subscription, on the node owning the channel's slot, and no classic one.
            await wait_for_shard_subscribers(cluster_admin, channel, {port: 2})
            assert await cluster_admin.plain_subscribers(channel) == {}

        created: dict[str, list[str]] = {user: [] for user in users.values()}
        for round_, server in enumerate((b, a, b)):
            for user in users.values():
                notification = await create(server.graphql_url, user, f"round {round_}")
                created[user].append(notification["id"])

        for user, device, operation in devices:
            events = await device.events(operation, 3)
            assert [event["notification"]["id"] for event in events] == created[user]
            assert [event["unreadCount"] for event in events] == [1, 2, 3]


async def test_subscriptions_closed_at_once_and_churning_leave_no_shard_subscription_behind(
    deployment: Deployment, cluster_admin: ClusterAdmin
) -> None:
    a, b, prefix = deployment
    # Four users whose channels live on every node (two on one of them), each followed on both processes.
    owners: dict[str, int] = {}
    while len(set(owners.values())) < len(cluster_admin.cluster.ports) or len(owners) < 4:
        user = f"user-{uuid.uuid4().hex[:10]}"
        owner = cluster_admin.owner(f"{prefix}:{user_channel(user)}")
        if owner not in owners.values() or len(set(owners.values())) == len(cluster_admin.cluster.ports):
            owners[user] = owner
    cursors = {}
    for user in owners:
        body = await gql(a.graphql_url, "{ notifications { feedCursor } }", bearer=token(user))
        cursors[user] = body["data"]["notifications"]["feedCursor"]

    async def everyone_live() -> list[tuple[str, WSClient, str]]:
        devices = []
        for user in owners:
            for server in (a, b):
                device = await WSClient.connected(server.ws_url, token(user))
                devices.append((user, device, await device.subscribe()))
        for user, owner in owners.items():
            await wait_for_shard_subscribers(cluster_admin, f"{prefix}:{user_channel(user)}", {owner: 2})
        return devices

    async def leave(device: WSClient, operation: str, how: str) -> None:
        """End a subscription the way clients do: `complete` then close, a plain close, or a protocol error that makes
        the server close the socket (4429)."""
        try:
            if how == "complete":
                await device.complete(operation)
            elif how == "rejected":
                await device.send({"type": "connection_init"})
        finally:
            await device.close()

    ways = ["complete", "close", "rejected"]
    devices = await everyone_live()
    try:
        for user in owners:
            await create(b.graphql_url, user, "while everyone is here")
        for _, device, operation in devices:
            await device.next_event(operation)
    finally:
        # Every subscription closed at about the same time.
        await asyncio.gather(
            *(leave(device, operation, ways[n % 3]) for n, (_, device, operation) in enumerate(devices))
        )

    for user in owners:  # three events to replay from the cursor: some subscriptions leave in the middle
        for title in ("second", "third"):
            await create(a.graphql_url, user, title)

    async def churn(server: ServerProcess, user: str, how: str, replayed: int) -> None:
        """Subscribe from a cursor and leave before, during or after the replay of the user's events."""
        device = await WSClient.connected(server.ws_url, token(user))
        try:
            operation = await device.subscribe(variables={"after": cursors[user]})
            for _ in range(replayed):
                await device.next_event(operation)
        finally:
            await leave(device, operation, how)

    for round_ in range(6):
        await asyncio.gather(
            *(
                churn(server, user, ways[(round_ + number) % 3], (round_ + number) % 3)
                for number, user in enumerate(owners)
                for server in (a, b)
            )
        )
    # Back to where they were on every node: nobody here follows these users any more.
    for user in owners:
        await wait_for_shard_subscribers(cluster_admin, f"{prefix}:{user_channel(user)}", {})

    # A user who comes back gets live wake-ups on both processes.
    devices = await everyone_live()
    try:
        for user in owners:
            await create(a.graphql_url, user, "welcome back")
        for _, device, operation in devices:
            assert (await device.next_event(operation))["notification"]["title"] == "welcome back"
    finally:
        for _, device, _ in devices:
            await device.close()
    for user in owners:
        await wait_for_shard_subscribers(cluster_admin, f"{prefix}:{user_channel(user)}", {})
