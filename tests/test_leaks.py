"""No leaks: after thousands of subscribe/complete cycles and abrupt disconnects, the process is back to baseline.

Tolerances: asyncio tasks and open file descriptors within 5 of the baseline; Redis PUBSUB NUMSUB for the channels
used back to 0; resident memory within a few KiB per cycle and per socket of a baseline taken after a warm-up round of
the same size (bounded caches full, pools open).

Resident memory keeps the pages freed objects leave (some 6 MiB here after a round), and a leak fills those first: a
round of 1,000 sockets fails at about 11 KiB leaked per socket. An open subscribed socket holds some 27 KiB: as many
held open as a round closes fail the bound by far (the positive control at the end).
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
USERS = 4
CYCLES, SOCKETS = 125, 250  # per user and round: subscribe/complete cycles on one socket, abruptly closed sockets
RSS_PER_CYCLE = 2 * 1024  # bytes a subscribe/complete cycle may leave behind
RSS_PER_SOCKET = 4 * 1024  # bytes a closed socket may leave behind


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
            "TIDINGS_USER_SUBSCRIBES_PER_SECOND": "0",  # the cycles subscribe as fast as the server answers
            "TIDINGS_MAX_CONNECTIONS_PER_USER": str(SOCKETS),
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


async def _round(server: ServerProcess, cursors: dict[str, str]) -> None:
    await asyncio.gather(
        *(_subscribe_complete_cycles(server, user, cursor, CYCLES) for user, cursor in cursors.items())
    )
    await asyncio.gather(*(_abrupt_close_cycles(server, user, cursor, SOCKETS) for user, cursor in cursors.items()))


async def test_subscriptions_and_abrupt_disconnects_leave_nothing_behind(
    leak_server: tuple[ServerProcess, str],
) -> None:
    server, prefix = leak_server
    users = [f"leak-{uuid.uuid4().hex[:8]}" for _ in range(USERS)]
    cursors = {}
    for user in users:
        start = (await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))["data"]
        cursors[user] = start["notifications"]["feedCursor"]
        await create(server.graphql_url, user, "replayed in every cycle")
    await _round(server, cursors)  # warm-up: caches and pools at their working size, then the baseline
    baseline = await _settled(server, await _gauges(server))

    await _round(server, cursors)

    after = await _settled(server, baseline)
    assert after["tidings_asyncio_tasks"] <= baseline["tidings_asyncio_tasks"] + TASKS_TOLERANCE, (baseline, after)
    assert after["process_open_fds"] <= baseline["process_open_fds"] + FDS_TOLERANCE, (baseline, after)
    allowed = len(users) * (CYCLES * RSS_PER_CYCLE + SOCKETS * RSS_PER_SOCKET)
    grown = after["process_resident_memory_bytes"] - baseline["process_resident_memory_bytes"]
    assert grown <= allowed, f"resident memory grew {grown} bytes, at most {allowed} allowed: {baseline} {after}"
    assert await _numsub(prefix, users) == 0
    log = server.log()
    for symptom in ("Task was destroyed but it is pending", "exception was never retrieved", "Traceback"):
        assert symptom not in log, symptom

    # Positive controls: a round's sockets left open (as a leak would leave them) show in every gauge above.
    held: list[WSClient] = []
    try:
        for number in range(USERS * SOCKETS):
            user = users[number % USERS]
            client = await WSClient.connected(server.ws_url, token(user))
            held.append(client)
            await client.next_event(await client.subscribe(EVENTS, {"after": cursors[user]}))
        holding = await _gauges(server)
        assert await _numsub(prefix, users) == USERS  # one Redis subscription per user and process
    finally:
        for client in held:
            await client.close()
    assert holding["tidings_subscriptions"] == USERS * SOCKETS
    assert holding["tidings_asyncio_tasks"] > after["tidings_asyncio_tasks"] + TASKS_TOLERANCE
    assert holding["process_open_fds"] >= after["process_open_fds"] + USERS * SOCKETS
    held_bytes = holding["process_resident_memory_bytes"] - after["process_resident_memory_bytes"]
    assert held_bytes > allowed, f"{USERS * SOCKETS} open sockets hold only {held_bytes} bytes, {allowed} allowed"
