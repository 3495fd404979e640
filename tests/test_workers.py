"""`tidings serve --workers 2` on PostgreSQL and Redis: both workers serve, and an event created on one reaches a
socket on the other through Redis (the periodic feed sync is off, so nothing else could carry it)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests._client import CREATE, EVENTS, WAIT, WSClient, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tests._services import redis_url

WORKERS = 2
ATTEMPTS = 100  # connections tried before concluding that a worker never accepts any


@pytest.fixture
async def database() -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase()
    await database.create()
    try:
        yield database
    finally:
        await database.drop()


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _worker_of(server: ServerProcess, client_port: int) -> int:
    """The process holding the server's end of our TCP connection from `client_port` (Linux's /proc), once one has
    accepted it."""
    assert server.process is not None
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port, remote_port = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                if (local_port, remote_port) == (server.port, client_port):
                    inodes.add(f"socket:[{fields[9]}]")
        for child in _children(server.process.pid):
            with contextlib.suppress(OSError):  # a process or descriptor gone meanwhile
                if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{child}/fd").iterdir()):
                    return child
        time.sleep(0.01)
    raise AssertionError(f"no worker accepted the connection from port {client_port}")


async def _socket_per_worker(server: ServerProcess, user: str, after: str) -> dict[int, tuple[WSClient, str]]:
    """One subscribed socket of `user` on each worker; the kernel picks the worker of each new connection."""
    sockets: dict[int, tuple[WSClient, str]] = {}
    extra: list[WSClient] = []
    try:
        for _ in range(ATTEMPTS):
            client = await WSClient.connected(server.ws_url, token(user))
            worker = _worker_of(server, client.conn.transport.get_extra_info("sockname")[1])
            if worker in sockets:
                extra.append(client)  # kept open meanwhile: a busy worker is slower to accept the next one
                continue
            sockets[worker] = (client, await client.subscribe(EVENTS, {"after": after}))
            if len(sockets) == WORKERS:
                return sockets
        raise AssertionError(f"{ATTEMPTS} connections all went to the workers {sorted(sockets)}")
    except BaseException:
        for client, _ in sockets.values():
            await client.close()
        raise
    finally:
        for client in extra:
            await client.close()


def _create_on(server: ServerProcess, worker: int, user: str, title: str) -> dict[str, Any]:
    """A createNotification over HTTP that the given worker answers."""
    for _ in range(ATTEMPTS):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        try:
            conn.connect()
            assert conn.sock is not None
            if _worker_of(server, conn.sock.getsockname()[1]) != worker:
                continue
            body = {"query": CREATE, "variables": {"input": {"userId": user, "title": title, "message": "m"}}}
            headers = {"Authorization": f"Bearer {service_token()}", "Content-Type": "application/json"}
            conn.request("POST", "/graphql", json.dumps(body), headers)
            answer = json.loads(conn.getresponse().read())
            assert "errors" not in answer, answer
            created: dict[str, Any] = answer["data"]["createNotification"]
            return created
        finally:
            conn.close()
    raise AssertionError(f"{ATTEMPTS} connections, none to worker {worker}")


async def test_two_workers_both_serve_and_share_events_through_redis(
    tmp_path: Path, database: PostgresDatabase, user: str
) -> None:
    # The sockets kept open while looking for the other worker are all one user's: room for every attempt.
    env = scaled_env(database, TIDINGS_SYNC_INTERVAL="3600", TIDINGS_MAX_CONNECTIONS_PER_USER=str(ATTEMPTS + 1))
    server = ServerProcess(tmp_path, env, args=("--workers", str(WORKERS))).start()
    assert server.process is not None
    channel = f"{env['TIDINGS_CHANNEL_PREFIX']}:user:{user}"
    redis = Redis.from_url(redis_url())
    sockets: dict[int, tuple[WSClient, str]] = {}
    try:
        listed = await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user))
        sockets = await _socket_per_worker(server, user, listed["data"]["notifications"]["feedCursor"])
        async with asyncio.timeout(WAIT):  # each worker has subscribed to the user's channel
            while (await redis.pubsub_numsub(channel))[0][1] != WORKERS:
                await asyncio.sleep(0.05)
        a, b = sockets
        first = await asyncio.to_thread(_create_on, server, a, user, "on a")  # both sockets live after it
        for client, operation in sockets.values():
            assert (await client.next_event(operation))["notification"]["id"] == first["id"]
        for creator, receiver in ((a, b), (b, a)):
            made = await asyncio.to_thread(_create_on, server, creator, user, f"made on {creator}")
            client, operation = sockets[receiver]
            event = await client.next_event(operation)
            assert event["notification"]["id"] == made["id"], f"created on worker {creator}, delivered on {receiver}"
            own_client, own_operation = sockets[creator]
            assert (await own_client.next_event(own_operation))["notification"]["id"] == made["id"]
    finally:
        for client, _ in sockets.values():
            await client.close()
        await redis.aclose()
        children = _children(server.process.pid)
        server.stop()
    assert server.process.returncode in (0, -15), server.log()
    async with asyncio.timeout(WAIT):  # the processes the server started end with it (orphans exit, then are reaped)
        while left := [child for child in children if Path(f"/proc/{child}").exists()]:
            await asyncio.sleep(0.05)
    assert not left
    assert "Traceback" not in server.log()
