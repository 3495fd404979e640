"""The floor: the least a Python server can do for the bench's traffic, to measure how close tidings is to it.

A raw ASGI app on the same server stack as `tidings serve` (uvicorn, uvloop, httptools, the websockets sans-I/O
protocol, no compression) and nothing else: no GraphQL, no database, no broker. It verifies the same HS256 tokens,
acknowledges graphql-transport-ws `connection_init`, remembers each `subscribe` under its user, and on a POST of the
createNotification body sends that user's sockets a `next` frame of the same shape and size as tidings' (same keys,
a UUID id, a cursor of the same format, the user's running unread count). Run:
`python -m bench.floor --port 8001` with TIDINGS_JWT_SECRET set.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

import jwt
import orjson
import uvicorn
from starlette.types import Message, Receive, Scope, Send

SUBPROTOCOL = "graphql-transport-ws"
SERVICE_ROLE = "service"  # tidings.auth.SERVICE_ROLE
MAX_BODY_BYTES = 65536  # tidings' default TIDINGS_MAX_REQUEST_BYTES
# tidings' cursor is base64url("f1:<16 hex feed epoch>:<sequence>"), unpadded.
CURSOR_PREFIX = f"f1:{secrets.token_hex(8)}:"


class CloseCode(IntEnum):
    """The graphql-transport-ws close codes the floor uses."""

    BAD_REQUEST = 4400
    FORBIDDEN = 4403


@dataclass(slots=True, eq=False)
class _Subscription:
    send: Send
    operation_id: str
    frame_head: bytes  # b'{"id":<operation id>,"type":"next","payload":'


@dataclass(slots=True)
class _Feed:
    """One user's live subscriptions and counters. One per user seen, never dropped: a floor lives for one run."""

    subscriptions: list[_Subscription] = field(default_factory=list)
    sequence: int = 0
    unread: int = 0


class FloorApp:
    """The ASGI app: GET /readyz, POST /graphql (createNotification), WebSocket /graphql (notificationEvents)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._feeds: defaultdict[str, _Feed] = defaultdict(_Feed)

    def _subject(self, authorization: object, *, service: bool) -> str | None:
        if not isinstance(authorization, str) or not authorization.startswith("Bearer "):
            return None
        try:
            claims = jwt.decode(authorization[7:], self._secret, algorithms=["HS256"], options={"require": ["sub"]})
        except jwt.InvalidTokenError:
            return None
        if service and claims.get("role") != SERVICE_ROLE:
            return None
        subject = claims["sub"]
        return subject if isinstance(subject, str) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET" and scope["path"] == "/readyz":
            await _respond(send, 200, b'{"status":"ok"}')
            return
        if scope["method"] != "POST" or scope["path"] != "/graphql":
            await _respond(send, 404, b'{"errors":[{"message":"not found"}]}')
            return
        headers = dict(scope["headers"])
        if self._subject(headers.get(b"authorization", b"").decode("latin-1"), service=True) is None:
            await _respond(send, 401, b'{"errors":[{"message":"a service token is required"}]}')
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await _respond(send, 413, b'{"errors":[{"message":"request too large"}]}')
                return
            if not message.get("more_body"):
                break
        try:
            notification = orjson.loads(body)["variables"]["input"]
            user = notification["userId"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            user = None
        if not isinstance(user, str):
            await _respond(send, 400, b'{"errors":[{"message":"expected createNotification(input)"}]}')
            return
        notification_id = str(uuid.uuid4())
        await self._publish(user, notification_id, notification)
        await _respond(send, 200, orjson.dumps({"data": {"createNotification": {"id": notification_id}}}))

    async def _publish(self, user: str, notification_id: str, notification: dict[str, Any]) -> None:
        feed = self._feeds[user]
        feed.sequence += 1
        feed.unread += 1
        event = {
            "kind": "CREATED",
            "cursor": base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{feed.sequence}".encode()).decode().rstrip("="),
            "unreadCount": feed.unread,
            "notification": {
                "id": notification_id,
                "userId": user,
                "type": notification.get("type", "INFO"),
                "title": notification.get("title"),
                "message": notification.get("message"),
                "data": notification.get("data"),
                "createdAt": datetime.now(UTC).isoformat(),
            },
        }
        payload = orjson.dumps({"data": {"notificationEvents": event}}) + b"}"
        for subscription in list(feed.subscriptions):
            frame = (subscription.frame_head + payload).decode()
            try:
                await subscription.send({"type": "websocket.send", "text": frame})
            except OSError:
                pass  # the socket closed meanwhile; its own handler forgets it

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        user: str | None = None
        mine: list[_Subscription] = []
        try:
            while True:
                message: Message = await receive()
                if message["type"] == "websocket.connect":
                    accept = SUBPROTOCOL if SUBPROTOCOL in scope.get("subprotocols", []) else None
                    await send({"type": "websocket.accept", "subprotocol": accept})
                    continue
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    frame = orjson.loads(message.get("text") or message.get("bytes") or b"")
                    kind = frame["type"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    await send({"type": "websocket.close", "code": CloseCode.BAD_REQUEST})
                    return
                if kind == "connection_init" and user is None:
                    payload = frame.get("payload")
                    authorization = payload.get("authorization") if isinstance(payload, dict) else None
                    user = self._subject(authorization, service=False)
                    if user is None:
                        await send({"type": "websocket.close", "code": CloseCode.FORBIDDEN})
                        return
                    await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
                elif kind == "subscribe" and user is not None and isinstance(frame.get("id"), str):
                    head = b'{"id":' + orjson.dumps(frame["id"]) + b',"type":"next","payload":'
                    subscription = _Subscription(send=send, operation_id=frame["id"], frame_head=head)
                    mine.append(subscription)
                    self._feeds[user].subscriptions.append(subscription)
                elif kind == "ping":
                    await send({"type": "websocket.send", "text": '{"type":"pong"}'})
                elif kind == "complete" and user is not None:
                    self._forget(user, [s for s in mine if s.operation_id == frame.get("id")])
                elif kind != "pong":
                    await send({"type": "websocket.close", "code": CloseCode.BAD_REQUEST})
                    return
        finally:
            if user is not None:
                self._forget(user, mine)

    def _forget(self, user: str, subscriptions: list[_Subscription]) -> None:
        feed = self._feeds[user]
        feed.subscriptions = [s for s in feed.subscriptions if s not in subscriptions]


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    """`python -m bench.floor --port N`: serve the floor with uvicorn as `tidings serve` configures it."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    secret = os.environ.get("TIDINGS_JWT_SECRET")
    if not secret:
        parser.error("set TIDINGS_JWT_SECRET (the secret the tokens are signed with)")
    uvicorn.run(
        FloorApp(secret),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=MAX_BODY_BYTES,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
