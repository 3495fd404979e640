"""/metrics of a real server: deliveries, their latency, mutations by outcome, replays, RESYNCs, broker reconnects."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from tests._client import CREATE, WAIT, WSClient, create, error_codes, gql, token
from tests._faults import RedisProcess
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tidings.cursors import FeedCursor

SAMPLE = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", re.MULTILINE)
# The standard path's (graphql-core) document: a fragment keeps it off the delivery fast path.
STANDARD_EVENTS = """
subscription Events { notificationEvents { ...Fields } }
fragment Fields on NotificationEvent { kind sequence }"""


async def scrape(server: ServerProcess) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.get(f"{server.url}/metrics")
    assert response.status_code == 200, response.text
    return {name: float(value) for name, value in SAMPLE.findall(response.text)}


async def until_metric(server: ServerProcess, name: str, expected: float) -> dict[str, float]:
    deadline = time.monotonic() + WAIT
    while True:
        samples = await scrape(server)
        if samples.get(name, 0.0) == expected:
            return samples
        assert time.monotonic() < deadline, f"{name} is {samples.get(name)}, not {expected}"
        await asyncio.sleep(0.05)


def mutations(samples: dict[str, float], name: str, outcome: str) -> float:
    return samples.get(f'tidings_mutations_total{{mutation="{name}",outcome="{outcome}"}}', 0.0)


async def test_one_event_to_three_sockets_is_three_deliveries_and_one_latency(server: ServerProcess, user: str) -> None:
    async with (
        await WSClient.connected(server.ws_url, token(user)) as phone,
        await WSClient.connected(server.ws_url, token(user)) as laptop,
        await WSClient.connected(server.ws_url, token(user)) as tablet,
    ):
        operations = [await phone.subscribe(), await laptop.subscribe(), await tablet.subscribe(STANDARD_EVENTS)]
        await until_metric(server, "tidings_subscriptions", 3)
        before = await scrape(server)
        await create(server.graphql_url, user, "timed")
        for device, operation in zip((phone, laptop, tablet), operations, strict=True):
            assert (await device.next_event(operation))["kind"] == "CREATED"
        after = await until_metric(server, "tidings_deliveries_total", before["tidings_deliveries_total"] + 3)
    timed = after["tidings_delivery_latency_seconds_count"] - before["tidings_delivery_latency_seconds_count"]
    assert timed == 1  # once per event and process, not per socket
    assert after["tidings_delivery_latency_seconds_sum"] > before["tidings_delivery_latency_seconds_sum"]
    assert (
        after['tidings_delivery_latency_seconds_bucket{le="+Inf"}'] == after["tidings_delivery_latency_seconds_count"]
    )


async def test_mutations_are_counted_by_name_and_outcome(server: ServerProcess, user: str) -> None:
    before = await scrape(server)
    await create(server.graphql_url, user, "counted")  # the createNotification fast path
    refused = await gql(
        server.graphql_url, CREATE, {"input": {"userId": user, "title": "t", "message": "m"}}, bearer=token(user)
    )
    assert error_codes(refused) == ["FORBIDDEN"]
    read = "mutation($id: ID!) { markNotificationRead(id: $id) { id } }"
    assert error_codes(await gql(server.graphql_url, read, {"id": "nope"}, bearer=token(user))) == ["BAD_USER_INPUT"]
    missing = {"id": "00000000-0000-0000-0000-000000000000"}
    assert error_codes(await gql(server.graphql_url, read, missing, bearer=token(user))) == ["NOT_FOUND"]
    everything = "mutation { markAllNotificationsRead { count } }"
    assert (await gql(server.graphql_url, everything, bearer=token(user)))["data"]["markAllNotificationsRead"] == {
        "count": 1
    }
    after = await scrape(server)
    for name, outcome in (
        ("createNotification", "ok"),
        ("createNotification", "FORBIDDEN"),
        ("markNotificationRead", "BAD_USER_INPUT"),
        ("markNotificationRead", "NOT_FOUND"),
        ("markAllNotificationsRead", "ok"),
    ):
        assert mutations(after, name, outcome) - mutations(before, name, outcome) == 1, (name, outcome)


async def test_replayed_events_and_resyncs_are_counted(server: ServerProcess, user: str) -> None:
    start = (await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))["data"]
    for title in ("one", "two"):
        await create(server.graphql_url, user, title)
    before = await scrape(server)
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        resumed = await device.subscribe(variables={"after": start["notifications"]["feedCursor"]})
        assert [event["kind"] for event in await device.events(resumed, 2)] == ["CREATED", "CREATED"]
        foreign = FeedCursor("anotherdatabase", 1).encode()
        stale = await device.subscribe(variables={"after": foreign})
        assert (await device.next_event(stale))["kind"] == "RESYNC"
    after = await scrape(server)
    assert after["tidings_replayed_events_total"] - before["tidings_replayed_events_total"] == 2
    assert after["tidings_resyncs_total"] - before["tidings_resyncs_total"] == 1


@pytest.fixture
def server_on_own_redis(tmp_path: Path) -> Iterator[tuple[ServerProcess, RedisProcess]]:
    broker = RedisProcess(tmp_path / "redis").start()
    try:
        with PostgresDatabase() as database:
            server = ServerProcess(tmp_path / "server", scaled_env(database, broadcast_url=broker.url)).start()
            try:
                yield server, broker
            finally:
                server.stop()
    finally:
        broker.kill()


async def test_broker_reconnects_are_counted(
    server_on_own_redis: tuple[ServerProcess, RedisProcess], user: str
) -> None:
    server, broker = server_on_own_redis
    assert (await scrape(server))["tidings_broker_reconnects_total"] == 0
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        await device.subscribe()  # a subscribed connection is what Redis calls a pubsub client
        await until_metric(server, "tidings_subscriptions", 1)
        admin = redis.Redis(port=broker.port)
        try:
            assert await admin.client_kill_filter(_type="pubsub") == 1
        finally:
            await admin.aclose()
        await until_metric(server, "tidings_broker_reconnects_total", 1)
