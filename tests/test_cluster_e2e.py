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
    async with asyncio.timeout(WAIT):
        while await admin.shard_subscribers(channel) != expected:
            await asyncio.sleep(0.05)


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
