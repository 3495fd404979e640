"""No leaks: after thousands of subscribe/complete cycles and abrupt disconnects, the process is back to baseline.

Tolerances: asyncio tasks and open file descriptors within 5 of the baseline; Redis PUBSUB NUMSUB for the channels
used back to 0; resident memory within 32 MiB of the baseline (the allocator keeps some pages it has touched).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from tests._client import EVENTS, WSClient, create, gql, token
from tests._server import PostgresDatabase, ServerProcess
from tests._services import redis_url

TASKS_TOLERANCE = 5
FDS_TOLERANCE = 5
RSS_TOLERANCE = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def leak_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    prefix = f"tidings-leak-{uuid.uuid4().hex[:8]}"
    with PostgresDatabase() as database:
        env = {
            "TIDINGS_DATABASE_URL": database.url,
            "TIDINGS_BROADCAST_URL": redis_url(),
            "TIDINGS_CHANNEL_PREFIX": prefix,
            "TIDINGS_AUTO_MIGRATE": "true",
            "TIDINGS_LOG_LEVEL": "warning",
            "PYTHONASYNCIODEBUG": "0",
            "TIDINGS_USER_SUBSCRIBES_PER_SECOND": "0",  # hundreds of subscribes of one user: leaks, not the rate
        }
        server = ServerProcess(tmp_path_factory.mktemp("leaks"), env).start()
        try:
            yield server, prefix
        finally:
            server.stop()


async def _gauges(server: ServerProcess) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{server.url}/metrics")).text
    wanted = ("tidings_asyncio_tasks", "process_open_fds", "process_resident_memory_bytes", "tidings_subscriptions")
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


async def _settled(server: ServerProcess, baseline: dict[str, float]) -> dict[str, float]:
    """Wait (bounded) for the subscriptions to be gone and tasks to be back near the baseline."""
    async with asyncio.timeout(30):
        while True:
            now = await _gauges(server)
            if (
                now["tidings_subscriptions"] == 0
                and now["tidings_asyncio_tasks"] <= baseline["tidings_asyncio_tasks"] + TASKS_TOLERANCE
            ):
                return now
            await asyncio.sleep(0.2)


async def _subscribe_complete_cycles(server: ServerProcess, user: str, cursor: str, cycles: int) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as client:
        for _ in range(cycles):
            operation = await client.subscribe(EVENTS, {"after": cursor})
            await client.next_event(operation)  # running: it replayed the one event after the cursor
            await client.complete(operation)


async def _abrupt_close_cycles(server: ServerProcess, user: str, cursor: str, cycles: int) -> None:
    for _ in range(cycles):
        client = await WSClient.connected(server.ws_url, token(user))
        operation = await client.subscribe(EVENTS, {"after": cursor})
        await client.next_event(operation)
        client.conn.transport.abort()  # no close frame, no FIN handshake: a phone losing its network


async def _numsub(prefix: str, users: list[str]) -> int:
    client = aioredis.Redis.from_url(redis_url())
    try:
        counts = await client.pubsub_numsub(*(f"{prefix}:user:{user}" for user in users))
    finally:
        await client.aclose()
    return sum(count for _, count in counts)


async def test_subscriptions_and_abrupt_disconnects_leave_nothing_behind(
    leak_server: tuple[ServerProcess, str],
) -> None:
    server, prefix = leak_server
    users = [f"leak-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    cursors = {}
    for user in users:
        start = (await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))["data"]
        cursors[user] = start["notifications"]["feedCursor"]
        await create(server.graphql_url, user, "replayed in every cycle")
    # Warm up caches and pools, then take the baseline.
    await asyncio.gather(*(_subscribe_complete_cycles(server, user, cursors[user], 20) for user in users))
    await asyncio.gather(*(_abrupt_close_cycles(server, user, cursors[user], 5) for user in users))
    baseline = await _settled(server, await _gauges(server))

    await asyncio.gather(*(_subscribe_complete_cycles(server, user, cursors[user], 500) for user in users))
    await asyncio.gather(*(_abrupt_close_cycles(server, user, cursors[user], 250) for user in users))

    after = await _settled(server, baseline)
    assert after["tidings_asyncio_tasks"] <= baseline["tidings_asyncio_tasks"] + TASKS_TOLERANCE, (baseline, after)
    assert after["process_open_fds"] <= baseline["process_open_fds"] + FDS_TOLERANCE, (baseline, after)
    assert after["process_resident_memory_bytes"] <= baseline["process_resident_memory_bytes"] + RSS_TOLERANCE, (
        baseline,
        after,
    )
    assert await _numsub(prefix, users) == 0
    log = server.log()
    for symptom in ("Task was destroyed but it is pending", "exception was never retrieved", "Traceback"):
        assert symptom not in log, symptom
