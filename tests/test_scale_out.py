"""Two server processes sharing PostgreSQL and Redis deliver each other's events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._client import WSClient, create, gql, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    workdir: Path = tmp_path_factory.mktemp("two-servers")
    with PostgresDatabase() as database:
        # No periodic sync within the test: what one process delivers of the other's can only have come by Redis.
        env = scaled_env(database, TIDINGS_SYNC_INTERVAL="3600")
        first = ServerProcess(workdir / "a", env).start()
        second = ServerProcess(workdir / "b", env).start()
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


async def test_subscriber_on_one_process_receives_what_another_creates(
    two_servers: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    a, b = two_servers
    start = (await gql(a.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))["data"]
    async with (
        await WSClient.connected(a.ws_url, token(user)) as on_a,
        await WSClient.connected(b.ws_url, token(user)) as on_b,
    ):
        op_a = await on_a.subscribe(variables={"after": start["notifications"]["feedCursor"]})
        op_b = await on_b.subscribe(variables={"after": start["notifications"]["feedCursor"]})
        through_b = await create(b.graphql_url, user, "via b")
        through_a = await create(a.graphql_url, user, "via a")
        for device, operation in ((on_a, op_a), (on_b, op_b)):
            events = await device.events(operation, 2)
            assert [e["notification"]["id"] for e in events] == [through_b["id"], through_a["id"]]
            assert [e["unreadCount"] for e in events] == [1, 2]
        read = await gql(
            a.graphql_url,
            "mutation($id: ID!) { markNotificationRead(id: $id) { read } }",
            {"id": through_b["id"]},
            bearer=token(user),
        )
        assert read["data"]["markNotificationRead"]["read"] is True
        event = await on_b.next_event(op_b)
        assert event["kind"] == "READ" and event["unreadCount"] == 1
