"""Cancellation storms against real servers on SQLite and on PostgreSQL: HTTP requests aborted mid-flight, WebSocket
operations (replays, queries, mutations) cut off by every kind of close. Afterwards every pooled connection is back,
the server answers a burst that needs the whole pool, and its log holds no sign of a connection left behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests._client import EVENTS, WAIT, WSClient, create, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tidings.store import NotificationType, SqlStore

# What a connection abandoned by a cancellation leaves in the log (the first two are asyncio's, the others any
# error logged with its traceback: SQLAlchemy's pool logs "Exception during reset or similar" so).
LOG_DEFECTS = ("Task was destroyed but it is pending", "Exception in callback", "Traceback", " ERROR ")
POOL_SIZE = 4
EVENTS_PER_USER = 24

LIST = "{ notifications(first: 20) { edges { cursor } unreadCount feedCursor } }"
UNREAD = "{ unreadNotifications(first: 20) { id } unreadCount }"
MARK_ALL = "mutation { markAllNotificationsRead { count unreadCount cursor } }"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def storm_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own (its log is this module's), replaying 4 events per read so a replay is many reads."""
    settings = {"TIDINGS_REPLAY_BATCH_SIZE": "4", "TIDINGS_DATABASE_POOL_SIZE": str(POOL_SIZE)}
    workdir = tmp_path_factory.mktemp(f"storm-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            settings = scaled_env(stack.enter_context(PostgresDatabase()), **settings)
        server = ServerProcess(workdir, settings).start()
        try:
            yield server
        finally:
            server.stop()
        # A task left pending is reported when it is collected, which may be at the very end.
        assert_clean(server.log())


def assert_clean(log: str) -> None:
    defects = [defect for defect in LOG_DEFECTS if defect in log]
    assert not defects, f"the server log has {defects}:\n{log}"


def _reset_on_close(sock: socket.socket) -> None:
    """Make close() send a TCP reset, as a client killed mid-request does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def aborted_request(server: ServerProcess, query: str, bearer: str, how: str, rng: random.Random) -> None:
    """POST a GraphQL request and go away before the answer: at once, a moment later, or once it starts coming."""
    body = json.dumps({"query": query}).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {bearer}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        if how == "later":
            await asyncio.sleep(rng.random() * 0.01)
        elif how == "answering":
            await reader.read(1)
    finally:
        if how != "fin":
            _reset_on_close(writer.get_extra_info("socket"))
        writer.close()


async def cut_off(server: ServerProcess, user: str, start: str, how: str, rng: random.Random) -> None:
    """Cut a WebSocket off in the middle of a replay, a query or a mutation, by a close of either side or a reset."""
    client = await WSClient.connected(server.ws_url, token(user))
    try:
        operation = await client.subscribe(EVENTS, {"after": start})
        for query in rng.sample([LIST, UNREAD, MARK_ALL], rng.randrange(3)):
            await client.subscribe(query)
        for _ in range(rng.randrange(EVENTS_PER_USER // 2)):
            await client.receive()
        if how == "complete":
            await client.complete(operation)
        elif how == "rejected":  # the server closes (4429) while the operations run
            await client.send({"type": "connection_init"})
    finally:
        if how == "reset":
            _reset_on_close(client.conn.transport.get_extra_info("socket"))
            client.conn.transport.abort()
        await client.close()


async def metric(server: ServerProcess, name: str) -> dict[str, float]:
    """One metric of the server's /metrics, by its labels as written ("" without labels)."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    values = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            values[series.removeprefix(name)] = float(value)
    return values


async def test_cancelled_requests_and_operations_return_every_connection_and_log_nothing(
    storm_server: ServerProcess,
) -> None:
    server = storm_server
    users = [f"storm-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    starts = {}
    for user in users:
        body = await gql(server.graphql_url, LIST, bearer=token(user))
        starts[user] = body["data"]["notifications"]["feedCursor"]
        for number in range(EVENTS_PER_USER):
            await create(server.graphql_url, user, f"n{number}")
    [idle] = (await metric(server, "tidings_asyncio_tasks")).values()

    rng = random.Random(10)
    for _ in range(4):
        requests = [
            aborted_request(
                server,
                rng.choice([LIST, UNREAD, MARK_ALL]),
                token(rng.choice(users)),
                rng.choice(["fin", "reset", "later", "answering"]),
                rng,
            )
            for _ in range(30)
        ]
        creates = [
            aborted_request(
                server,
                f'mutation {{ createNotification(input: {{userId: "{rng.choice(users)}", title: "t", message: "m"}})'
                " { id } }",
                service_token(),
                rng.choice(["fin", "reset", "later", "answering"]),
                rng,
            )
            for _ in range(10)
        ]
        sockets = [
            cut_off(server, user, starts[user], rng.choice(["close", "reset", "complete", "rejected"]), rng)
            for user in users
            for _ in range(4)
        ]
        await asyncio.gather(*requests, *creates, *sockets)

    # The server is idle again: every connection handler, request and database call has finished...
    try:
        async with asyncio.timeout(WAIT):
            while (tasks := (await metric(server, "tidings_asyncio_tasks"))[""]) > idle:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{tasks} asyncio tasks in the server, {idle} before the storm") from None
    # ...and every pooled database connection has come back.
    connections = await metric(server, "tidings_database_connections")
    in_use = {series: count for series, count in connections.items() if 'state="in_use"' in series}
    assert in_use and set(in_use.values()) == {0}, connections

    # A burst of three times the pool, every request answered: no connection is missing from the pool.
    async def answered(query: str, bearer: str) -> dict[str, Any]:
        body = await gql(server.graphql_url, query, bearer=bearer)
        assert "errors" not in body, body
        return body

    await asyncio.gather(*(answered(LIST, token(user)) for user in users for _ in range(3 * POOL_SIZE // len(users))))
    made = await create(server.graphql_url, users[0], "after the storm")
    async with await WSClient.connected(server.ws_url, token(users[0])) as client:
        operation = await client.subscribe(EVENTS, {"after": starts[users[0]]})
        while ((await client.next_event(operation))["notification"] or {}).get("id") != made["id"]:
            pass

    assert_clean(server.log())


async def test_store_calls_cancelled_twice_give_their_connections_back(
    store: SqlStore, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every store call, cancelled at a random point and then again while it cleans up (as a closing WebSocket's
    operations are): no connection is dropped half-closed, and the pool serves a burst afterwards."""
    caplog.set_level(logging.WARNING)
    for number in range(8):
        await store.create_notification(
            user_id=user, type=NotificationType.INFO, title=f"n{number}", message="m", data=None
        )
    [notification] = (await store.list_notifications(user_id=user, first=1)).items
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "list": lambda: store.list_notifications(user_id=user, first=20),
        "unread": lambda: store.unread_notifications(user_id=user, first=20),
        "get": lambda: store.get_notification(notification.id, owner=user),
        "position": lambda: store.feed_position(user),
        "positions": lambda: store.feed_positions([user, "nobody"]),
        "events": lambda: store.events_after(user, 0, limit=20),
        "create": lambda: store.create_notification(
            user_id=user, type=NotificationType.INFO, title="t", message="m", data=None
        ),
        "create once": lambda: store.create_notification(
            user_id=user, type=NotificationType.INFO, title="t", message="m", data=None, idempotency_key="k"
        ),
        "mark read": lambda: store.mark_read(notification_id=notification.id, owner=user),
        "mark all": lambda: store.mark_all_read(user_id=user, up_to_seq=None),
        "ping": store.ping,
        "purge": lambda: store.purge_before(datetime.now(UTC) - timedelta(days=1)),
    }
    rng = random.Random(3)
    for call in calls.values():
        for _ in range(12):
            task = asyncio.ensure_future(call())
            for _ in range(rng.randrange(30)):
                await asyncio.sleep(0)
            task.cancel()
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task])

    # What the cancelled calls left running finishes: nothing waits forever on a connection closed under it.
    try:
        async with asyncio.timeout(WAIT):
            while len(asyncio.all_tasks()) > 1:
                await asyncio.sleep(0.01)
    except TimeoutError:
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        raise AssertionError(f"still pending: {left}") from None
    pool = store.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    await asyncio.gather(*(call() for call in calls.values() for _ in range(3)))
    gc.collect()  # asyncio logs a task destroyed while pending when it is collected
    problems = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert not problems
