"""graphql-transport-ws exactly per PROTOCOL.md, hardened: every close code and reason, against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests._client import (
    EVENTS,
    WAIT,
    WSClient,
    close_counts,
    create,
    gql,
    introspection,
    small_window_socket,
    socket_send_buffer_max,
    token,
)
from tests._server import TEST_SECRET, PostgresDatabase, ServerProcess, scaled_env
from tests._services import redis_url
from tidings.protocol.messages import MAX_CLOSE_REASON_BYTES, CloseCode

SUBSCRIBER_ID_REASON = "'id' must be a string of 1 to 128 characters"
LOG_DEFECTS = ("Task was destroyed but it is pending", "exception was never retrieved", "Traceback")


def _serve(workdir_factory: pytest.TempPathFactory, name: str, env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(workdir_factory.mktemp(name), env).start()
    try:
        yield server
    finally:
        server.stop()
        log = server.log()
        defects = [defect for defect in LOG_DEFECTS if defect in log]
        assert not defects, f"{name} server log has {defects}:\n{log}"


PROTOCOL_ENV = {"TIDINGS_CONNECTION_INIT_TIMEOUT": "1", "TIDINGS_MAX_CONNECTIONS_PER_USER": "3"}


@pytest.fixture(scope="module")
def protocol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded server with short limits: 1 s to send connection_init, 3 sockets per user."""
    yield from _serve(tmp_path_factory, "protocol", PROTOCOL_ENV)


@pytest.fixture(scope="module")
def scaled_protocol_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The same limits on PostgreSQL and Redis."""
    with PostgresDatabase() as database:
        yield from _serve(tmp_path_factory, "protocol-scaled", scaled_env(database, **PROTOCOL_ENV))


@pytest.fixture(params=["embedded", "postgres-redis"])
def backend(request: pytest.FixtureRequest) -> ServerProcess:
    """The protocol server on each backend, for the tests whose behaviour goes through the store or the broker."""
    name = "protocol_server" if request.param == "embedded" else "scaled_protocol_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def lively_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that pings every second, allows 2 s of token leeway, one socket per user, and gives up fast."""
    env = {
        "TIDINGS_KEEPALIVE_INTERVAL": "1",
        "TIDINGS_JWT_LEEWAY": "2",
        "TIDINGS_MAX_CONNECTIONS_PER_USER": "1",
        "TIDINGS_SEND_QUEUE_SIZE": "16",
        "TIDINGS_SEND_TIMEOUT": "1",
    }
    yield from _serve(tmp_path_factory, "lively", env)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """PostgreSQL and Redis, where PUBSUB NUMSUB shows which users the process is subscribed to; a 2 s send timeout."""
    with PostgresDatabase() as database:
        env = scaled_env(
            database, TIDINGS_SEND_QUEUE_SIZE="64", TIDINGS_SEND_TIMEOUT="2", TIDINGS_MAX_OPERATIONS_PER_CONNECTION="64"
        )
        yield from _serve(tmp_path_factory, "protocol-redis", env)


@pytest.fixture(scope="module")
def small_results_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Results of at most 4 KiB on a WebSocket."""
    yield from _serve(tmp_path_factory, "small-results", {"TIDINGS_MAX_RESULT_BYTES": "4096"})


async def feed_cursor(server: ServerProcess, user: str) -> str:
    body = await gql(server.graphql_url, "{ notifications(first: 1) { feedCursor } }", bearer=token(user))
    cursor: str = body["data"]["notifications"]["feedCursor"]
    return cursor


async def subscribed(server: ServerProcess, user: str) -> tuple[WSClient, str]:
    """A connected client of `user` with a subscription from the current feed position."""
    client = await WSClient.connected(server.ws_url, token(user))
    operation = await client.subscribe(EVENTS, {"after": await feed_cursor(server, user)})
    return client, operation


class Bystander:
    """A healthy connection of another user, open alongside a misbehaving one."""

    def __init__(self, server: ServerProcess, client: WSClient, operation: str, user: str) -> None:
        self.server, self.client, self.operation, self.user = server, client, operation, user

    async def assert_live(self) -> None:
        """A notification created now still reaches it."""
        made = await create(self.server.graphql_url, self.user, "still live")
        event = await self.client.next_event(self.operation)
        assert event["notification"]["id"] == made["id"]


async def _bystander(server: ServerProcess) -> AsyncIterator[Bystander]:
    user = f"bystander-{uuid.uuid4().hex[:10]}"
    client, operation = await subscribed(server, user)
    async with client:
        yield Bystander(server, client, operation, user)


@pytest.fixture
async def bystander(protocol_server: ServerProcess) -> AsyncIterator[Bystander]:
    async for bystander in _bystander(protocol_server):
        yield bystander


@pytest.fixture
async def backend_bystander(backend: ServerProcess) -> AsyncIterator[Bystander]:
    async for bystander in _bystander(backend):
        yield bystander


async def acknowledged(server: ServerProcess, user: str, **options: Any) -> WSClient:
    """`WSClient.connected`, with websockets options."""
    client = await WSClient.open(server.ws_url, **options)
    await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
    assert await client.receive() == {"type": "connection_ack"}
    return client


def subscribe_message(operation_id: object = "1", **payload: object) -> dict[str, object]:
    return {"id": operation_id, "type": "subscribe", "payload": {"query": EVENTS, **payload}}


def _frame(message: object) -> str:
    return json.dumps(message)


INVALID_MESSAGE = "Invalid message"
INVALID_SUBSCRIBE = "Invalid subscribe message"
BAD_FRAMES = {
    "not JSON": ("{nope", f"{INVALID_MESSAGE}: not JSON"),
    "array": ("[]", f"{INVALID_MESSAGE}: not a JSON object"),
    "number": ("1", f"{INVALID_MESSAGE}: not a JSON object"),
    "string": ('"x"', f"{INVALID_MESSAGE}: not a JSON object"),
    "null": ("null", f"{INVALID_MESSAGE}: not a JSON object"),
    "too deep": ("[" * 5000 + "]" * 5000, f"{INVALID_MESSAGE}: not JSON"),
    "no type": (_frame({"id": "1"}), f"{INVALID_MESSAGE}: 'type' must be a string"),
    "type not a string": (_frame({"type": 1}), f"{INVALID_MESSAGE}: 'type' must be a string"),
    "unknown type": (_frame({"type": "start"}), f'{INVALID_MESSAGE}: unknown type "start"'),
    "server's type": (_frame({"type": "next", "id": "1", "payload": {}}), f'{INVALID_MESSAGE}: unknown type "next"'),
    "id absent": (
        _frame({"type": "subscribe", "payload": {"query": EVENTS}}),
        f"{INVALID_SUBSCRIBE}: {SUBSCRIBER_ID_REASON}",
    ),
    "id not a string": (_frame(subscribe_message(1)), f"{INVALID_SUBSCRIBE}: {SUBSCRIBER_ID_REASON}"),
    "id empty": (_frame(subscribe_message("")), f"{INVALID_SUBSCRIBE}: {SUBSCRIBER_ID_REASON}"),
    "id too long": (_frame(subscribe_message("x" * 129)), f"{INVALID_SUBSCRIBE}: {SUBSCRIBER_ID_REASON}"),
    "complete without id": (_frame({"type": "complete"}), f"Invalid complete message: {SUBSCRIBER_ID_REASON}"),
    "payload absent": (_frame({"id": "1", "type": "subscribe"}), f"{INVALID_SUBSCRIBE}: 'payload' must be an object"),
    "payload not an object": (
        _frame({"id": "1", "type": "subscribe", "payload": [EVENTS]}),
        f"{INVALID_SUBSCRIBE}: 'payload' must be an object",
    ),
    "query absent": (
        _frame({"id": "1", "type": "subscribe", "payload": {"variables": {}}}),
        f"{INVALID_SUBSCRIBE}: 'query' must be a string",
    ),
    "query not a string": (
        _frame({"id": "1", "type": "subscribe", "payload": {"query": {"kind": "Document"}}}),
        f"{INVALID_SUBSCRIBE}: 'query' must be a string",
    ),
    "variables not an object": (
        _frame(subscribe_message(variables=["after"])),
        f"{INVALID_SUBSCRIBE}: 'variables' must be an object or null",
    ),
    "operationName not a string": (
        _frame(subscribe_message(operationName=1)),
        f"{INVALID_SUBSCRIBE}: 'operationName' must be a string or null",
    ),
    "extensions not an object": (
        _frame(subscribe_message(extensions="x")),
        f"{INVALID_SUBSCRIBE}: 'extensions' must be an object or null",
    ),
    "ping payload not an object": (
        _frame({"type": "ping", "payload": 1}),
        "Invalid ping message: 'payload' must be an object or null",
    ),
}
BAD_INIT_FRAMES = {
    "payload a string": _frame({"type": "connection_init", "payload": "Bearer x"}),
    "payload an array": _frame({"type": "connection_init", "payload": []}),
}


@pytest.mark.parametrize(("frame", "reason"), BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_invalid_message_closes_4400(
    protocol_server: ServerProcess, user: str, bystander: Bystander, frame: str, reason: str
) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.conn.send(frame)
        assert await client.close_frame() == (CloseCode.BAD_REQUEST, reason)
        await bystander.assert_live()


@pytest.mark.parametrize("frame", BAD_INIT_FRAMES.values(), ids=BAD_INIT_FRAMES.keys())
async def test_invalid_connection_init_payload_closes_4400(
    protocol_server: ServerProcess, bystander: Bystander, frame: str
) -> None:
    async with await WSClient.open(protocol_server.ws_url) as client:
        await client.conn.send(frame)
        reason = "Invalid connection_init message: 'payload' must be an object or null"
        assert await client.close_frame() == (CloseCode.BAD_REQUEST, reason)
        await bystander.assert_live()


async def test_invalid_message_before_connection_init_closes_4400(
    protocol_server: ServerProcess, bystander: Bystander
) -> None:
    async with await WSClient.open(protocol_server.ws_url) as client:
        await client.conn.send("[]")
        assert await client.close_frame() == (CloseCode.BAD_REQUEST, f"{INVALID_MESSAGE}: not a JSON object")
        await bystander.assert_live()


async def test_binary_frame_closes_4400(protocol_server: ServerProcess, user: str, bystander: Bystander) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.conn.send(orjson.dumps({"type": "ping"}))  # bytes: a binary frame
        assert await client.close_frame() == (
            CloseCode.BAD_REQUEST,
            f"{INVALID_MESSAGE}: binary frames are not supported",
        )
        await bystander.assert_live()


async def test_close_reasons_fit_the_close_frame(
    protocol_server: ServerProcess, user: str, bystander: Bystander
) -> None:
    """Reasons quoting the client (a type, an id) are cut to 123 bytes of UTF-8, never more."""
    long_id = "é" * 128
    cases = [
        ([_frame({"type": "é" * 1000})], CloseCode.BAD_REQUEST, f'{INVALID_MESSAGE}: unknown type "é'),
        (
            [_frame(subscribe_message(long_id))] * 2,
            CloseCode.SUBSCRIBER_ALREADY_EXISTS,
            f"Subscriber for {long_id[:9]}",
        ),
    ]
    for frames, expected_code, start in cases:
        client = await acknowledged(protocol_server, user)
        for frame in frames:
            await client.conn.send(frame)
        code, reason = await client.close_frame()
        assert code == expected_code
        assert reason.startswith(start) and reason.endswith("…"), reason
        assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    await bystander.assert_live()


REFUSED_DOCUMENTS = {
    "syntax": ({"query": "subscription {"}, "GRAPHQL_PARSE_FAILED", "Syntax Error: Expected Name, found <EOF>."),
    "too many tokens": (
        {"query": "{" + " a" * 2_500 + " }"},
        "GRAPHQL_PARSE_FAILED",
        "Syntax Error: Document contains more than 1000 tokens. Parsing aborted.",
    ),
    "long syntax error": ({"query": "{ x } " + "y" * 1000}, "GRAPHQL_PARSE_FAILED", "Syntax Error: Unexpected Name 'y"),
    "does not validate": (
        {"query": "subscription { notificationEvents { nope } }"},
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot query field 'nope' on type 'NotificationEvent'.",
    ),
    "unknown operation": (
        {"query": EVENTS, "operationName": "Elsewhere"},
        "OPERATION_RESOLUTION_FAILURE",
        'Unknown operation named "Elsewhere".',
    ),
    "variables do not coerce": (
        {"query": EVENTS, "variables": {"after": 5}},
        "BAD_USER_INPUT",
        "Variable '$after' has invalid value: String cannot represent a non string value: 5",
    ),
}


@pytest.mark.parametrize(("payload", "code", "message"), REFUSED_DOCUMENTS.values(), ids=REFUSED_DOCUMENTS.keys())
async def test_a_refused_document_is_an_error_message_with_its_code_and_the_socket_stays(
    backend: ServerProcess, user: str, payload: dict[str, Any], code: str, message: str
) -> None:
    """Before execution, like a validation error: one bad document does not end the connection's other operations."""
    async with await acknowledged(backend, user) as client:
        live = await client.subscribe(EVENTS, {"after": await feed_cursor(backend, user)})
        await client.send({"id": "bad", "type": "subscribe", "payload": payload})
        refused = await client.receive()
        assert refused["type"] == "error" and refused["id"] == "bad", refused
        [error] = refused["payload"]
        assert error["extensions"] == {"code": code} and error["message"].startswith(message), error
        assert "Internal" not in error["message"]
        made = await create(backend.graphql_url, user)
        assert (await client.next_event(live))["notification"]["id"] == made["id"]


async def test_null_payloads_are_valid(backend: ServerProcess, user: str) -> None:
    """PROTOCOL.md: payloads, variables and operationName may be null or missing."""
    async with await WSClient.open(backend.ws_url) as client:
        await client.send({"type": "ping", "payload": None})
        assert await client.receive() == {"type": "pong"}
        await client.send({"type": "connection_init", "payload": None})  # valid, but carries no token
        assert await client.close_frame() == (CloseCode.FORBIDDEN, "Forbidden")
    async with await acknowledged(backend, user) as client:
        after = await feed_cursor(backend, user)
        await client.send(subscribe_message("n", variables={"after": after}, operationName=None, extensions=None))
        made = await create(backend.graphql_url, user)
        assert (await client.next_event("n"))["notification"]["id"] == made["id"]
        await client.send(subscribe_message("v", variables=None))  # from now, without a cursor
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_ping_is_answered_at_once_with_its_payload(protocol_server: ServerProcess, user: str) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.send({"type": "ping", "payload": {"sent": 1}})
        assert await client.receive() == {"type": "pong", "payload": {"sent": 1}}
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}
        await client.send({"type": "pong"})  # an unsolicited pong is allowed and answered by nothing
        await client.assert_silent(0.2)


async def test_subscribe_before_ack_closes_4401(protocol_server: ServerProcess, bystander: Bystander) -> None:
    async with await WSClient.open(protocol_server.ws_url) as client:
        await client.send(subscribe_message())
        assert await client.close_frame() == (CloseCode.UNAUTHORIZED, "Unauthorized")
        await bystander.assert_live()


@pytest.mark.parametrize("subprotocols", [["graphql-ws"], None, ["graphql-transport-ws-v2"]])
async def test_other_subprotocols_close_4406(
    protocol_server: ServerProcess, bystander: Bystander, subprotocols: list[str] | None
) -> None:
    conn = await connect(protocol_server.ws_url, subprotocols=subprotocols, open_timeout=WAIT)  # type: ignore[arg-type]
    assert conn.subprotocol is None
    assert await WSClient(conn).close_frame() == (CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
    await bystander.assert_live()


async def test_no_connection_init_closes_4408(protocol_server: ServerProcess, bystander: Bystander) -> None:
    async with await WSClient.open(protocol_server.ws_url) as client:
        assert await client.close_frame() == (
            CloseCode.CONNECTION_INITIALISATION_TIMEOUT,
            "Connection initialisation timeout",
        )
        await bystander.assert_live()


async def test_second_subscribe_with_an_id_in_flight_closes_4409(
    protocol_server: ServerProcess, user: str, bystander: Bystander
) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.send(subscribe_message("same"))
        await client.send(subscribe_message("same"))
        assert await client.close_frame() == (CloseCode.SUBSCRIBER_ALREADY_EXISTS, "Subscriber for same already exists")
        await bystander.assert_live()


async def test_second_connection_init_closes_4429(
    protocol_server: ServerProcess, user: str, bystander: Bystander
) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
        assert await client.close_frame() == (
            CloseCode.TOO_MANY_INITIALISATION_REQUESTS,
            "Too many initialisation requests",
        )
        await bystander.assert_live()


async def test_expired_token_closes_4403_on_the_open_socket(
    backend: ServerProcess, user: str, backend_bystander: Bystander
) -> None:
    """At `exp` the socket closes with 4403, which graphql-ws retries with fresh connectionParams; another user's
    socket stays open and keeps receiving.

    The token must outlive subscribe, create and deliver: where it did not (a busy machine), the same again with a
    token twice as long.
    """
    for seconds in (2, 4, 8, 16):
        async with await WSClient.open(backend.ws_url) as client:
            bearer = token(user, ttl=timedelta(seconds=seconds))
            try:
                await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}})
                assert await client.receive() == {"type": "connection_ack"}
                operation = await client.subscribe(EVENTS, {"after": await feed_cursor(backend, user)})
                made = await create(backend.graphql_url, user)
                delivered = await client.next_event(operation)
            except ConnectionClosed as closed:  # expired first
                assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (4403, "Token expired")
                continue
            assert delivered["notification"]["id"] == made["id"]
            assert await client.close_frame(timeout=seconds + WAIT) == (CloseCode.FORBIDDEN, "Token expired")
            break
    else:
        raise AssertionError("no token lived long enough to deliver one notification")
    await backend_bystander.assert_live()


async def test_leeway_applies_at_connection_init_and_at_expiry(
    protocol_server: ServerProcess, lively_server: ServerProcess, user: str
) -> None:
    """A token that expired under a second ago: refused without leeway; with 2 s, accepted, then closed."""
    expired_just_now = jwt.encode({"sub": user, "exp": int(time.time())}, TEST_SECRET, algorithm="HS256")
    async with await WSClient.open(protocol_server.ws_url) as strict:
        await strict.send({"type": "connection_init", "payload": {"authorization": f"Bearer {expired_just_now}"}})
        assert await strict.close_frame() == (CloseCode.FORBIDDEN, "Token expired")
        async with await WSClient.connected(lively_server.ws_url, expired_just_now) as lenient:
            assert await lenient.close_frame() == (CloseCode.FORBIDDEN, "Token expired")


async def test_connections_per_user_are_limited(protocol_server: ServerProcess, user: str) -> None:
    """TIDINGS_MAX_CONNECTIONS_PER_USER (3 here) authenticated sockets; the next is refused; closing one frees it."""
    clients = [await acknowledged(protocol_server, user) for _ in range(3)]
    async with await WSClient.open(protocol_server.ws_url) as refused:
        await refused.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
        assert await refused.close_frame() == (CloseCode.FORBIDDEN, "Too many connections")
        async with await acknowledged(protocol_server, user + "-other"):
            pass  # other users are not affected
        await clients.pop().close()
        clients.append(await _connect_when_a_slot_frees(protocol_server, user))
        for client in clients:
            await client.close()


async def test_a_user_named_like_a_service_does_not_take_its_slots(protocol_server: ServerProcess, user: str) -> None:
    """Slots are per role and subject: a user whose id is a service's `sub` fills only the user's own slots."""
    namesake = [await acknowledged(protocol_server, user) for _ in range(3)]
    service = await WSClient.open(protocol_server.ws_url)
    try:
        await service.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token(user, service=True)}"}}
        )
        assert await service.receive() == {"type": "connection_ack"}
        refused = await WSClient.open(protocol_server.ws_url)  # positive control: the user's own slots are full
        await refused.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
        assert await refused.close_frame() == (CloseCode.FORBIDDEN, "Too many connections")
    finally:
        await service.close()
        for client in namesake:
            await client.close()


async def _connect_when_a_slot_frees(server: ServerProcess, user: str) -> WSClient:
    """The server frees a slot when it has finished with the socket, just after the client saw it close."""
    async with asyncio.timeout(WAIT):
        while True:
            client = await WSClient.open(server.ws_url)
            await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
            try:
                if await client.receive() == {"type": "connection_ack"}:
                    return client
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.reason == "Too many connections", closed
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("compression", "reason"),
    [
        (None, "frame with 66044 bytes exceeds limit of 65536 bytes"),
        # A client offering deflate gets none (TIDINGS_WS_COMPRESSION is off), so the size is known up front.
        ("deflate", "frame with 66044 bytes exceeds limit of 65536 bytes"),
    ],
)
async def test_frame_over_max_request_bytes_closes_1009(
    protocol_server: ServerProcess, user: str, bystander: Bystander, compression: str | None, reason: str
) -> None:
    """uvicorn's ws_max_size (TIDINGS_MAX_REQUEST_BYTES) refuses the frame before buffering it."""
    async with await acknowledged(protocol_server, user, compression=compression) as client:
        await client.send({"type": "ping", "payload": {"padding": secrets.token_hex(33_000)}})  # 66,044 bytes of JSON
        assert await client.close_frame() == (CloseCode.MESSAGE_TOO_BIG, reason)
        await bystander.assert_live()


async def test_a_result_over_max_result_bytes_is_a_coded_error_for_its_operation(
    protocol_server: ServerProcess, user: str
) -> None:
    """A result over TIDINGS_MAX_RESULT_BYTES (256 KiB) is never queued: its operation gets a `next` with
    RESULT_TOO_LARGE instead, then `complete`; the other operations and the socket carry on."""
    async with await acknowledged(protocol_server, user) as client:
        await client.send(subscribe_message("large", query=introspection(15)))  # some 570 KB of result
        await client.send(subscribe_message("small", query=introspection(1)))
        messages = [await client.receive() for _ in range(4)]
        large = [message for message in messages if message["id"] == "large"]
        small = [message for message in messages if message["id"] == "small"]
        assert large == [
            {
                "id": "large",
                "type": "next",
                "payload": {
                    "data": None,
                    "errors": [
                        {
                            "message": "The result is larger than 262144 bytes (TIDINGS_MAX_RESULT_BYTES)",
                            "extensions": {"code": "RESULT_TOO_LARGE", "maxBytes": 262144},
                        }
                    ],
                },
            },
            {"id": "large", "type": "complete"},
        ]
        assert [message["type"] for message in small] == ["next", "complete"]
        assert small[0]["payload"]["data"]["s0"]["queryType"]["name"] == "Query"
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


@pytest.mark.parametrize(
    ("character", "message_characters", "data_characters"),
    [
        ("\N{GRINNING FACE}", 10_000, 4_094),  # the message limit; data of 16 KiB as orjson measures it
        ("\x01", 7_000, 2_729),  # escaped in the request too: as many as TIDINGS_MAX_REQUEST_BYTES lets through
    ],
    ids=["astral (4 bytes, or 12 escaped as ASCII)", "control (6 bytes escaped)"],
)
async def test_the_largest_notification_is_delivered_whole(
    backend: ServerProcess, user: str, character: str, message_characters: int, data_characters: int
) -> None:
    """Title, message and data at their limits, in the characters that encode longest: the event stays under the
    default TIDINGS_MAX_RESULT_BYTES."""
    largest = {
        "title": character * 200,
        "message": character * message_characters,
        "data": {"d": character * data_characters},
    }
    async with await acknowledged(backend, user) as client:
        await client.send(subscribe_message("n", variables={"after": await feed_cursor(backend, user)}))
        made = await create(backend.graphql_url, user, **largest)
        notification = (await client.next_event("n"))["notification"]
        assert notification["id"] == made["id"]
        assert {field: notification[field] for field in largest} == largest


async def test_both_delivery_paths_answer_a_result_over_the_bound_alike(
    small_results_server: ServerProcess, user: str
) -> None:
    """An event over TIDINGS_MAX_RESULT_BYTES gets the same RESULT_TOO_LARGE `next` on the delivery fast path (plain
    fields) as on the standard path (a fragment), and the next event that fits arrives on both."""
    plain = EVENTS
    with_fragment = "subscription($after: String) { notificationEvents(after: $after) { ...E } } " + (
        "fragment E on NotificationEvent { kind cursor unreadCount sequence upToSequence count "
        "notification { id userId type title message data read readAt createdAt sequence } }"
    )
    after = await feed_cursor(small_results_server, user)
    async with await acknowledged(small_results_server, user) as client:
        await client.send(subscribe_message("fast", query=plain, variables={"after": after}))
        await client.send(subscribe_message("standard", query=with_fragment, variables={"after": after}))
        await create(small_results_server.graphql_url, user, "large", message="m" * 5_000)
        small = await create(small_results_server.graphql_url, user, "small")
        received: dict[str, list[str]] = {"fast": [], "standard": []}
        async with asyncio.timeout(WAIT):
            while sum(map(len, received.values())) < 4:
                text = await client.conn.recv()
                assert isinstance(text, str)
                message = orjson.loads(text)
                if message["type"] == "ping":
                    continue  # the keep-alive wheel may reach a new socket at any moment of its interval
                received[message["id"]].append(text.replace(f'"id":"{message["id"]}"', '"id":"*"'))
        assert received["fast"] == received["standard"]
        too_large, fitting = (orjson.loads(text) for text in received["fast"])
        assert too_large["payload"]["errors"][0]["extensions"] == {"code": "RESULT_TOO_LARGE", "maxBytes": 4096}
        assert fitting["payload"]["data"]["notificationEvents"]["notification"]["id"] == small["id"]
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{small_results_server.url}/metrics")).text
    for path in ("projected", "standard"):
        assert f'tidings_subscribes_total{{path="{path}"}} 1.0' in metrics, path


async def test_error_message_ends_the_operation_without_complete(backend: ServerProcess, user: str) -> None:
    async with await acknowledged(backend, user) as client:
        await client.send(subscribe_message("op", variables={"userId": user + "-someone-else"}))
        message = await client.receive()
        assert message["type"] == "error" and message["id"] == "op", message
        assert message["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        await client.assert_silent(0.3)  # no `complete` follows an `error`
        await client.send(subscribe_message("op", variables={"after": await feed_cursor(backend, user)}))
        made = await create(backend.graphql_url, user)
        assert (await client.next_event("op"))["notification"]["id"] == made["id"]


async def test_complete_for_an_unknown_id_is_ignored(protocol_server: ServerProcess, user: str) -> None:
    async with await acknowledged(protocol_server, user) as client:
        await client.complete("never-subscribed")
        await client.send({"type": "ping"})
        assert await client.receive() == {"type": "pong"}


async def test_complete_stops_the_operation_and_frees_its_subscription(redis_server: ServerProcess, user: str) -> None:
    """After `complete`, the server has left the user's Redis channel (the generator's `finally` ran)."""
    channel = f"{redis_server.env['TIDINGS_CHANNEL_PREFIX']}:user:{user}"
    redis = Redis.from_url(redis_url())
    try:
        async with await acknowledged(redis_server, user) as client:
            await client.send(subscribe_message("op", variables={"after": await feed_cursor(redis_server, user)}))
            first = await create(redis_server.graphql_url, user)
            # Live, so past its Redis SUBSCRIBE: a cancellation landing during that handshake can be lost (redis-py's
            # asyncio.wait_for on Python 3.11), which is the broadcast layer's to fix, not what this test is about.
            event = await client.next_event("op")
            assert event["notification"]["id"] == first["id"]
            assert await _subscribers(redis, channel) == 1
            await client.complete("op")
            await _wait_for_subscribers(redis, channel, 0)
            second = await create(redis_server.graphql_url, user)
            await client.assert_silent(0.3)  # nothing more for a completed operation, and no `complete` either
            await client.send(subscribe_message("op", variables={"after": event["cursor"]}))  # its id is free again
            assert (await client.next_event("op"))["notification"]["id"] == second["id"]
    finally:
        await redis.aclose()


async def _subscribers(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def _wait_for_subscribers(redis: Redis, channel: str, expected: int) -> None:
    async with asyncio.timeout(WAIT):
        while await _subscribers(redis, channel) != expected:
            await asyncio.sleep(0.02)


async def test_slow_consumer_is_closed_1013_and_resumes_without_loss(redis_server: ServerProcess, user: str) -> None:
    """A client that stops reading gets 1013 once it reads again; it resumes from its cursors with nothing lost.

    Linux lets the server's socket buffer MiBs, so the slow client holds 32 subscriptions and each notification
    carries a 10 KB message: about 330 KB per notification for that one socket.
    """
    subscriptions, event_bytes = 32, 10_500
    closes_before = (await close_counts(redis_server))[str(CloseCode.TRY_AGAIN_LATER)]
    channel = f"{redis_server.env['TIDINGS_CHANNEL_PREFIX']}:user:{user}"
    start = await feed_cursor(redis_server, user)
    other = user + "-other"
    healthy, healthy_operation = await subscribed(redis_server, other)
    # max_queue=1: websockets stops reading the socket as soon as one frame waits for recv().
    slow = await acknowledged(
        redis_server, user, sock=small_window_socket(redis_server.port), compression=None, max_queue=1
    )
    for number in range(subscriptions):
        await slow.send(subscribe_message(str(number), variables={"after": start}))
    redis = Redis.from_url(redis_url())
    try:
        await _wait_for_subscribers(redis, channel, 1)
        # Twice what the server's socket buffer, uvicorn's write buffer and the send queue (64) can hold.
        backlog = 2 * (socket_send_buffer_max() + 65_536 + 64 * event_bytes)
        created = -(-backlog // (subscriptions * event_bytes))
        for number in range(created):
            await create(redis_server.graphql_url, user, f"n{number}", message=secrets.token_hex(5_000))
            if number % 8 == 0:  # meanwhile, another user's connection keeps receiving
                made = await create(redis_server.graphql_url, other)
                assert (await healthy.next_event(healthy_operation))["notification"]["id"] == made["id"]
        # A write has not finished for TIDINGS_SEND_TIMEOUT (2 s): the server stops the slow client's operations.
        await _wait_for_subscribers(redis, channel, 0)
    finally:
        await redis.aclose()

    received: dict[str, list[dict[str, Any]]] = {str(number): [] for number in range(subscriptions)}
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(WAIT):
            while True:
                message = orjson.loads(await slow.conn.recv())
                if message["type"] == "next":
                    received[message["id"]].append(message["payload"]["data"]["notificationEvents"])
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (CloseCode.TRY_AGAIN_LATER, "Try again later")
    assert sum(map(len, received.values())) < subscriptions * created  # it really was cut short
    made = await create(redis_server.graphql_url, other)  # the other user's socket stays open and keeps receiving
    assert (await healthy.next_event(healthy_operation))["notification"]["id"] == made["id"]

    # Resuming replays up to 32 x 40 events at once through the same 64-message queue: a burst, not a slow client.
    async with await acknowledged(redis_server, user) as resumed:
        for operation, events in received.items():
            after = events[-1]["cursor"] if events else start
            await resumed.send(subscribe_message(operation, variables={"after": after}))
        missing = {operation: created - len(events) for operation, events in received.items()}
        async with asyncio.timeout(WAIT):
            while any(missing.values()):
                message = await resumed.receive()
                assert message["type"] == "next", message
                received[message["id"]].append(message["payload"]["data"]["notificationEvents"])
                missing[message["id"]] -= 1
        await resumed.assert_silent(0.3)
    for events in received.values():  # 0 lost, 0 duplicates, in order
        assert [event["sequence"] for event in events] == list(range(1, created + 1))
    await healthy.close()
    # Operators see the slow consumer's close, once.
    assert (await close_counts(redis_server))[str(CloseCode.TRY_AGAIN_LATER)] == closes_before + 1


async def test_keepalive_pings_and_closes_silent_clients_1001(lively_server: ServerProcess, user: str) -> None:
    """The server pings every interval; a client that answers, or sends anything, stays; a silent one is closed after
    two intervals without a frame. The others are watched until then, however long the silent one takes."""
    silent_closed = asyncio.Event()
    clients: list[WSClient] = []
    try:
        answering, answering_operation = await subscribed(lively_server, user + "-answers")  # another user's socket
        clients.append(answering)
        talking = await acknowledged(lively_server, user + "-talks")
        clients.append(talking)
        silent = await acknowledged(lively_server, user + "-silent")
        clients.append(silent)

        async def talk_without_answering() -> None:
            """Pings of its own, never a pong."""
            while not silent_closed.is_set():
                await talking.send({"type": "ping"})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):  # pace: a few pings per interval
                        while True:
                            assert orjson.loads(await talking.conn.recv())["type"] in ("ping", "pong")

        async def answer_pings() -> None:
            """WSClient.receive answers pings; nothing else may arrive."""
            while not silent_closed.is_set():
                with contextlib.suppress(TimeoutError):
                    raise AssertionError(f"unexpected message: {await answering.receive(timeout=0.2)}")

        async def stay_silent() -> tuple[list[dict[str, Any]], tuple[int, str]]:
            seen = []
            try:
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(WAIT):
                        while True:
                            seen.append(orjson.loads(await silent.conn.recv()))
            finally:
                silent_closed.set()
            assert closed.value.rcvd is not None
            return seen, (closed.value.rcvd.code, closed.value.rcvd.reason)

        _, _, (silent_seen, silent_close) = await asyncio.gather(
            talk_without_answering(), answer_pings(), stay_silent()
        )
        assert {"type": "ping"} in silent_seen
        assert silent_close == (CloseCode.GOING_AWAY, "Keepalive timeout")
        await talking.send({"type": "ping"})
        assert await talking.receive() == {"type": "pong"}
        made = await create(lively_server.graphql_url, user + "-answers")
        assert (await answering.next_event(answering_operation))["notification"]["id"] == made["id"]
    finally:
        for client in clients:
            await client.close()


async def test_stuck_client_is_dropped_and_frees_its_slot(lively_server: ServerProcess, user: str) -> None:
    """A client that never reads cannot take the close frame: after TIDINGS_SEND_TIMEOUT the server lets go of it."""
    stuck = await acknowledged(
        lively_server, user, sock=small_window_socket(lively_server.port), compression=None, max_queue=1
    )
    refused = await WSClient.open(lively_server.ws_url)
    await refused.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
    assert await refused.close_frame() == (CloseCode.FORBIDDEN, "Too many connections")

    async def ping_without_reading() -> None:
        # Pongs echo the payload: they fill the server's socket buffers, then its send queue. Once the server has
        # stopped reading, these sends block: the task is cancelled below.
        while True:
            await stuck.send({"type": "ping", "payload": {"padding": "p" * 60_000}})

    pinging = asyncio.create_task(ping_without_reading())
    try:
        replacement = await _connect_when_a_slot_frees(lively_server, user)
        await replacement.close()
    finally:
        pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinging
        stuck.conn.transport.abort()
