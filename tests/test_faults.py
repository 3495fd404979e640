"""Faults, each measured the same way: every device ends with exactly the committed events after its cursor.

Real processes, a real PostgreSQL and real Redis servers; faults injected with a throwaway redis-server, a TCP proxy
in front of PostgreSQL, and signals to the server processes.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests._client import CREATE, error_codes, gql, service_token, token
from tests._faults import Device, Ledger, RedisProcess, TcpProxy, assert_nothing_lost
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tests._services import POSTGRES_HOST, POSTGRES_PORT

FAST = {"TIDINGS_SYNC_INTERVAL": "0.5", "TIDINGS_DATABASE_TIMEOUT": "1", "TIDINGS_STATEMENT_TIMEOUT": "5"}


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://")


READY = {"ready": True, "broadcast": True, "database": True}
NO_BROKER = {"ready": False, "broadcast": False, "database": True}
NO_DATABASE = {"ready": False, "broadcast": True, "database": False}


async def _readiness(server: ServerProcess) -> tuple[int, dict[str, bool]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{server.url}/readyz")
    return response.status_code, response.json()


async def _wait_ready(server: ServerProcess, checks: dict[str, bool], timeout: float = 20.0) -> None:
    """Wait until /readyz answers these checks, with 200 when all pass and 503 otherwise."""
    expected = (200 if checks["ready"] else 503, checks)
    async with asyncio.timeout(timeout):
        while (answer := await _readiness(server)) != expected:
            assert answer[0] in (200, 503) and set(answer[1]) == set(checks), answer
            await asyncio.sleep(0.1)


async def _wait_logged(server: ServerProcess, line: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while line not in server.log():
            await asyncio.sleep(0.05)


async def _wait_lock_waiters(database: PostgresDatabase, count: int, timeout: float = 20.0) -> None:
    """Wait until `count` sessions of the database wait for a lock (a writer held by another's row lock)."""
    conn = await asyncpg.connect(database.url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if waiting >= count:
                    return
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


@pytest.fixture
def database() -> Iterator[PostgresDatabase]:
    with PostgresDatabase() as database:
        yield database


async def test_redis_dies_mid_stream_and_comes_back(tmp_path: Path, database: PostgresDatabase) -> None:
    ledger = Ledger()
    broker = RedisProcess(tmp_path / "redis").start()
    env = scaled_env(database, broadcast_url=broker.url, TIDINGS_BROKER_RECONNECT_DELAY_MAX="0.5", **FAST)
    a = ServerProcess(tmp_path / "a", env).start()
    b = ServerProcess(tmp_path / "b", env).start()
    user = f"user-{uuid.uuid4().hex[:8]}"
    devices: list[Device] = []
    try:
        devices += [await Device.after_list(a, user), await Device.after_list(b, user)]
        made = [await ledger.create(a.graphql_url, user, f"before {i}") for i in range(3)]
        for device in devices:
            await device.receive_until(made[-1]["sequence"])

        broker.kill()
        await _wait_ready(a, NO_BROKER)
        await _wait_ready(b, NO_BROKER)
        # Creating keeps working without the broker; the periodic database sync delivers to the open sockets.
        during = [await ledger.create(server.graphql_url, user, f"during {i}") for i, server in enumerate((a, b, a, b))]
        for device in devices:
            await device.receive_until(during[-1]["sequence"])

        broker.start()
        await _wait_ready(a, READY)
        await _wait_ready(b, READY)
        after = [await ledger.create(b.graphql_url, user, f"after {i}") for i in range(3)]
        for device in devices:
            await device.receive_until(after[-1]["sequence"])
        assert_nothing_lost(ledger, devices)
        for server in (a, b):
            log = server.log()
            assert log.count("lost connection to Redis") == 1, "each fault is logged once, not once per socket"
            assert log.count("reconnected to Redis") == 1
    finally:
        for device in devices:
            await device.close()
        a.stop()
        b.stop()
        broker.kill()


async def test_lost_last_wake_up_is_delivered_by_the_periodic_sync(tmp_path: Path, database: PostgresDatabase) -> None:
    ledger = Ledger()
    server = ServerProcess(tmp_path, scaled_env(database, **FAST)).start()
    user = f"user-{uuid.uuid4().hex[:8]}"
    device = await Device.after_list(server, user)
    try:
        await ledger.create(server.graphql_url, user, "delivered live")
        await device.receive(1)
        # Another writer commits and its wake-up never reaches this process (Pub/Sub is at most once): no later
        # event reveals a gap, so only the periodic sync can find it.
        from tidings.store import NotificationType, SqlStore, create_engine

        store = SqlStore(create_engine(_asyncpg_url(database.url)))
        await store.start()
        try:
            _, lost = await store.create_notification(
                user_id=user, type=NotificationType.INFO, title="wake-up lost", message="m", data=None
            )
        finally:
            await store.close()
        assert lost is not None
        ledger.event(lost)
        await device.receive_until(lost.seq)
        assert_nothing_lost(ledger, [device])
    finally:
        await device.close()
        server.stop()


@pytest.fixture
async def postgres_proxy() -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(POSTGRES_HOST, POSTGRES_PORT).start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_postgres_unreachable_then_back(
    tmp_path: Path, database: PostgresDatabase, postgres_proxy: TcpProxy
) -> None:
    ledger = Ledger()
    proxied = database.url.replace(f":{POSTGRES_PORT}/", f":{postgres_proxy.port}/")
    env = {**scaled_env(database, **FAST), "TIDINGS_DATABASE_URL": proxied}
    # Started and stopped off the event loop: the proxy that carries its database traffic runs on this loop.
    server = await asyncio.to_thread(ServerProcess(tmp_path, env).start)
    user = f"user-{uuid.uuid4().hex[:8]}"
    device = await Device.after_list(server, user)
    try:
        first = await ledger.create(server.graphql_url, user, "before")
        await device.receive_until(first["sequence"])

        await postgres_proxy.cut()
        retried = {"input": {"userId": user, "title": "retried", "message": "m", "idempotencyKey": "order-17"}}
        async with asyncio.timeout(15):  # bounded: a hang fails the test instead of stalling the suite
            failed = await gql(server.graphql_url, CREATE, retried, bearer=service_token())
        assert error_codes(failed) == ["SERVICE_UNAVAILABLE"], failed
        assert "Traceback" not in str(failed) and "sqlalchemy" not in str(failed).lower()
        read = await gql(server.graphql_url, "{ unreadCount }", bearer=token(user))
        assert error_codes(read) == ["SERVICE_UNAVAILABLE"]
        await _wait_ready(server, NO_DATABASE)
        # The periodic sync (a device is subscribed) found the outage: logged once, not once per attempt.
        await _wait_logged(server, "feed sync: database unreachable")

        await postgres_proxy.restore()
        async with asyncio.timeout(30):
            while True:  # the service keeps retrying with the same key until the database is back
                answer = await gql(server.graphql_url, CREATE, retried, bearer=service_token())
                if "errors" not in answer:
                    ledger.created(answer["data"]["createNotification"])
                    break
                assert error_codes(answer) == ["SERVICE_UNAVAILABLE"], answer
                await asyncio.sleep(0.2)
        again = await gql(server.graphql_url, CREATE, retried, bearer=service_token())
        assert again["data"] == answer["data"], "the same key returns the same notification"
        await _wait_ready(server, READY)
        await _wait_logged(server, "feed sync: database reachable again")
        last = await ledger.create(server.graphql_url, user, "after")
        await device.receive_until(last["sequence"])  # the socket stayed open through the outage

        listing = await gql(
            server.graphql_url, "{ notifications(first: 100) { edges { node { title } } } }", bearer=token(user)
        )
        titles = [edge["node"]["title"] for edge in listing["data"]["notifications"]["edges"]]
        assert titles.count("retried") == 1, titles
        assert_nothing_lost(ledger, [device])
        assert server.log().count("feed sync: database unreachable") == 1
        assert server.log().count("feed sync: database reachable again") == 1
        assert "Traceback" not in server.log()
    finally:
        await device.close()
        await asyncio.to_thread(server.stop)


async def _hold_feed_lock(database: PostgresDatabase, user: str) -> asyncpg.Connection:
    """Lock the user's feed row as a slow writer would, so a mutation for that user stays in flight."""
    conn = await asyncpg.connect(database.url)
    await conn.execute("BEGIN")
    await conn.execute("SELECT 1 FROM user_feeds WHERE user_id = $1 FOR UPDATE", user)
    return conn


async def test_graceful_restart_finishes_in_flight_and_closes_with_1012(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    ledger = Ledger()
    env = scaled_env(
        database,
        **FAST,
        TIDINGS_SHUTDOWN_GRACE="20",
    )
    a = ServerProcess(tmp_path / "a", env).start()
    b = ServerProcess(tmp_path / "b", env).start()
    user = f"user-{uuid.uuid4().hex[:8]}"
    device = Device(user, 0, "")
    # Another user's device on the other process: a's restart does not disturb it.
    bystander = Device(f"{user}-bystander", 0, "")
    try:
        device = await Device.after_list(a, user)
        bystander = await Device.after_list(b, bystander.user)
        first = await ledger.create(a.graphql_url, user, "first")
        await device.receive_until(first["sequence"])

        lock = await _hold_feed_lock(database, user)
        in_flight = asyncio.create_task(ledger.create(a.graphql_url, user, "in flight during shutdown"))
        await _wait_lock_waiters(database, 1)  # the mutation is waiting for the feed lock inside process a
        assert a.process is not None
        a.process.send_signal(signal.SIGTERM)
        assert device.client is not None
        with pytest.raises(ConnectionClosed) as closed:
            await device.client.receive(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        # While a drains, another user's socket on b stays open and keeps receiving.
        during_drain = await ledger.create(b.graphql_url, bystander.user, "while a drains")
        await bystander.receive_until(during_drain["sequence"])
        await lock.execute("COMMIT")
        await lock.close()
        finished = await asyncio.wait_for(in_flight, 20)  # answered, not dropped
        # uvicorn re-raises SIGTERM once shut down, so the exit status says how the process ended.
        assert a.process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Finished server process" in a.log()

        during = await ledger.create(b.graphql_url, user, "while reconnecting")
        await device.connect(b.ws_url)  # another process, with the last cursor
        await device.receive_until(during["sequence"])
        sequences = [event["sequence"] for event in device.received]
        assert finished["sequence"] in sequences
        after_restart = await ledger.create(b.graphql_url, bystander.user, "after a stopped")
        await bystander.receive_until(after_restart["sequence"])
        assert_nothing_lost(ledger, [device, bystander])
    finally:
        await device.close()
        await bystander.close()
        a.stop()
        b.stop()


async def test_crash_of_one_process_loses_nothing(tmp_path: Path, database: PostgresDatabase) -> None:
    ledger = Ledger()
    env = scaled_env(
        database,
        **FAST,
    )
    a = ServerProcess(tmp_path / "a", env).start()
    b = ServerProcess(tmp_path / "b", env).start()
    users = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    devices: list[Device] = []
    try:
        devices += [await Device.after_list(a, user) for user in users]
        for user in users:
            await ledger.create(b.graphql_url, user, "before")
        for device in devices:
            await device.receive(1)
        a.stop(signal.SIGKILL)
        for user in users:
            for i in range(3):
                await ledger.create(b.graphql_url, user, f"while down {i}")
        for device in devices:
            assert device.client is not None
            with pytest.raises(ConnectionClosed):
                await device.client.receive(timeout=10)
            await device.connect(b.ws_url)
            await device.receive(3)
        assert_nothing_lost(ledger, devices)
    finally:
        for device in devices:
            await device.close()
        a.stop()  # already killed, unless the test failed before
        b.stop()


async def test_reconnect_storm_catches_everyone_up_with_bounded_replays(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    ledger = Ledger()
    concurrency = 4
    env = scaled_env(
        database,
        **FAST,
        TIDINGS_REPLAY_CONCURRENCY=str(concurrency),
        TIDINGS_LOG_LEVEL="warning",
    )
    server = ServerProcess(tmp_path, env).start()
    users = [f"storm-{uuid.uuid4().hex[:8]}" for _ in range(100)]
    sockets_per_user = 10
    devices: list[Device] = []
    try:
        for user in users:
            await ledger.create(server.graphql_url, user, "first")
        for user in users:
            start = (await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))["data"]
            devices += [Device(user, 1, start["notifications"]["feedCursor"]) for _ in range(sockets_per_user)]
        await _gather_bounded([device.connect(server.ws_url) for device in devices])
        assert len(devices) == 1000

        for device in devices:  # every socket drops at once, without a close handshake
            assert device.client is not None
            device.client.conn.transport.abort()
        for user in users:
            await ledger.create(server.graphql_url, user, "missed")
        await _gather_bounded([device.connect(server.ws_url) for device in devices])
        await _gather_bounded([device.receive(1) for device in devices])
        for user in users:
            await ledger.create(server.graphql_url, user, "live after the storm")
        await _gather_bounded([device.receive(1) for device in devices])

        assert_nothing_lost(ledger, devices)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{server.url}/metrics")).text
        peak = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("tidings_replays_in_flight_max ")
        )
        assert 1 <= peak <= concurrency, f"concurrent replays peaked at {peak}, bound {concurrency}"
        assert "Traceback" not in server.log()
    finally:
        await _gather_bounded([device.close() for device in devices])
        server.stop()


async def _gather_bounded(coroutines: list, limit: int = 100) -> None:  # type: ignore[type-arg]
    """Run many client operations concurrently, a bounded number at a time, failing on the first error."""
    slots = asyncio.Semaphore(limit)

    async def bounded(coroutine) -> None:  # type: ignore[no-untyped-def]
        async with slots:
            await coroutine

    await asyncio.gather(*(bounded(coroutine) for coroutine in coroutines))


async def test_concurrent_writers_on_two_processes_stay_commit_ordered(
    tmp_path: Path, database: PostgresDatabase
) -> None:
    ledger = Ledger()
    # Room in each process's pool for its five writers at once (a sixth would wait for a connection, and be answered
    # OVERLOADED after TIDINGS_DATABASE_TIMEOUT), and a statement timeout they do not reach while the lock is held.
    env = {**scaled_env(database, **FAST), "TIDINGS_DATABASE_POOL_SIZE": "8", "TIDINGS_STATEMENT_TIMEOUT": "30"}
    a = ServerProcess(tmp_path / "a", env).start()
    b = ServerProcess(tmp_path / "b", env).start()
    user = f"user-{uuid.uuid4().hex[:8]}"
    devices: list[Device] = []
    try:
        await ledger.create(a.graphql_url, user, "first")
        devices += [await Device.after_list(a, user), await Device.after_list(b, user)]
        start_cursor = devices[0].cursor
        # A slow writer holds the user's feed open while both processes try to commit for that user.
        conn = await _hold_feed_lock(database, user)
        writes = asyncio.gather(
            *(
                ledger.create(server.graphql_url, user, f"{name}{i}")
                for i in range(5)
                for name, server in (("a", a), ("b", b))
            )
        )
        await _wait_lock_waiters(database, 10)  # all ten wait for the lock, five in each process
        await conn.execute("COMMIT")
        await conn.close()
        made = await asyncio.wait_for(writes, 30)
        sequences = sorted(n["sequence"] for n in made)
        assert sequences == list(range(sequences[0], sequences[0] + 10)), "no gaps, no two writers on one position"
        for device in devices:
            await device.receive_until(sequences[-1])
            assert [e["sequence"] for e in device.received] == sequences
        replay = Device(user, devices[0].start_sequence, start_cursor)
        devices.append(replay)
        await replay.connect(b.ws_url)
        await replay.receive(10)
        assert replay.received == devices[0].received, "replayed events are the live ones"
        assert_nothing_lost(ledger, devices)
    finally:
        for device in devices:
            await device.close()
        a.stop()
        b.stop()
