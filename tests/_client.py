"""Test clients: GraphQL over HTTP and graphql-transport-ws over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from graphql import get_introspection_query
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests._server import TEST_SECRET, ServerProcess
from tidings.auth import TokenVerifier
from tidings.config import Settings

SUBPROTOCOL = "graphql-transport-ws"
WAIT = 10.0  # bound on any single wait: a bug fails the test instead of hanging it

_verifier = TokenVerifier(Settings(jwt_secret=TEST_SECRET), TEST_SECRET)


def token(user: str, *, service: bool = False, ttl: timedelta = timedelta(hours=1)) -> str:
    return _verifier.mint(user, service=service, ttl=ttl)


def service_token() -> str:
    return token("backend", service=True)


async def gql(
    url: str, query: str, variables: dict[str, Any] | None = None, *, bearer: str | None = None
) -> dict[str, Any]:
    """POST a GraphQL request; returns the whole response body ({data, errors})."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        response = await client.post(url, json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


CREATE = """
mutation Create($input: CreateNotificationInput!) {
  createNotification(input: $input) { id userId type title message data read readAt createdAt sequence }
}"""

EVENTS = """
subscription Events($after: String, $userId: ID) {
  notificationEvents(after: $after, userId: $userId) {
    kind cursor unreadCount sequence upToSequence count
    notification { id userId type title message data read readAt createdAt sequence }
  }
}"""


def introspection(copies: int = 1) -> str:
    """GraphiQL's introspection query with its `__schema` selection aliased `copies` times (~38 KB of result each)."""
    full = get_introspection_query(descriptions=True)
    schema = full[full.index("__schema") : full.index("fragment FullType")].rstrip().removesuffix("}")
    fragments = full[full.index("fragment FullType") :]
    return "query IntrospectionQuery { " + " ".join(f"s{i}: {schema}" for i in range(copies)) + " }\n" + fragments


def small_window_socket(port: int) -> socket.socket:
    """A connected TCP socket with a tiny receive buffer: what the client side can absorb once it stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the advertised window
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def socket_send_buffer_max() -> int:
    """How far Linux lets a TCP socket's send buffer grow (tcp_wmem's maximum)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 4 * 1024 * 1024


async def create(url: str, user: str, title: str = "hello", **fields: Any) -> dict[str, Any]:
    body = await gql(
        url, CREATE, {"input": {"userId": user, "title": title, "message": "m", **fields}}, bearer=service_token()
    )
    assert "errors" not in body, body
    notification: dict[str, Any] = body["data"]["createNotification"]
    return notification


@contextlib.asynccontextmanager
async def two_devices(server: ServerProcess, user: str, events: str) -> AsyncIterator[tuple[str, WSClient, WSClient]]:
    """Two sockets of one user, a phone and a laptop, each subscribed to `events` (a `notificationEvents` document)
    after the feed's position now; that position comes too, for a resume from it."""
    me = token(user)
    body = await gql(server.graphql_url, "{ notifications(first: 1) { feedCursor } }", bearer=me)
    start: str = body["data"]["notifications"]["feedCursor"]
    async with (
        await WSClient.connected(server.ws_url, me) as phone,
        await WSClient.connected(server.ws_url, me) as laptop,
    ):
        for device in (phone, laptop):
            await device.subscribe(events, {"after": start})
        yield start, phone, laptop


async def close_counts(server: ServerProcess) -> dict[str, float]:
    """The server's `tidings_websocket_closes_total` by close code (0 for a code it never closed with)."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        metrics = (await client.get(f"{server.url}/metrics")).text
    prefix = 'tidings_websocket_closes_total{code="'
    counts: dict[str, float] = defaultdict(float)
    for line in metrics.splitlines():
        if line.startswith(prefix):
            labels, value = line.split()
            counts[labels.removeprefix(prefix).removesuffix('"}')] = float(value)
    return counts


class WSClient:
    """A graphql-transport-ws client that keeps every message, so tests can assert on exact sequences."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, ws_url: str, *, subprotocols: list[str] | None = None, **options: Any) -> WSClient:
        """Open a socket; `options` go to websockets' `connect` (e.g. `compression=None`, `sock=`, `max_queue=`)."""
        conn = await connect(ws_url, subprotocols=subprotocols or [SUBPROTOCOL], open_timeout=WAIT, **options)  # type: ignore[list-item]
        return cls(conn)

    @classmethod
    async def connected(cls, ws_url: str, bearer: str) -> WSClient:
        client = await cls.open(ws_url)
        await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}})
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message: dict[str, Any] = orjson.loads(await self.conn.recv())
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                    continue
                return message

    async def subscribe(self, query: str = EVENTS, variables: dict[str, Any] | None = None) -> str:
        operation_id = str(next(self._ids))
        await self.send(
            {"id": operation_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
        )
        return operation_id

    async def next_event(self, operation_id: str, timeout: float = WAIT) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message.get("id") == operation_id and message["type"] == "next", message
        assert "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"]["notificationEvents"]
        return event

    async def events(self, operation_id: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next_event(operation_id, timeout) for _ in range(count)]

    async def assert_silent(self, seconds: float = 0.5) -> None:
        """Nothing arrives for a while (used to show that nothing extra or foreign is delivered)."""
        try:
            message = await self.receive(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")

    async def close_frame(self, timeout: float = WAIT) -> tuple[int, str]:
        """The code and reason of the server's close frame, which must come next (pings aside)."""
        try:
            message = await self.receive(timeout)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, f"closed without a close frame: {closed}"
            return closed.rcvd.code, closed.rcvd.reason
        raise AssertionError(f"expected the server to close, got: {message}")

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> WSClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
