"""The graphql-transport-ws transport: frame validation, close codes, keep-alive, token expiry and a bounded writer.

Strawberry executes the operations; this module decides what may reach it and owns everything the socket sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    Message,
    PingMessage,
    SubscribeMessage,
)
from strawberry.types.execution import PreExecutionError

from tidings.context import Context
from tidings.delivery import Projection
from tidings.documents import CompiledDocuments
from tidings.errors import ErrorCode, UserError, request_error
from tidings.resolvers import event_stream
from tidings.store import FeedEvent
from tidings.wheel import TimerWheel

if TYPE_CHECKING:
    from strawberry.http.async_base_view import AsyncBaseHTTPView
    from strawberry.schema import BaseSchema

    from tidings.composition import TidingsSchema

logger = logging.getLogger("tidings.ws")

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 section 5.5: a control frame payload is at most 125 bytes, 2 of them the code
PING = '{"type":"ping"}'
MAX_OPERATION_ID_LENGTH = 128  # clients use counters or UUIDs; the id is echoed in every message of the operation


class CloseCode(IntEnum):
    """Every close code a tidings WebSocket client can see, and who sends it.

    graphql-ws clients reconnect after 1000, 1001, 1005, 1006, 1012, 1013, 1014, 4403, 4408 and 4499 and give up
    after any other code, so a code here is also a decision about whether the client comes back.
    """

    GOING_AWAY = 1001  # keep-alive timeout: retried, like the dropped connection it most likely is
    MESSAGE_TOO_BIG = 1009  # uvicorn (ws_max_size): a frame over TIDINGS_MAX_REQUEST_BYTES; not retried
    SERVICE_RESTART = 1012  # uvicorn, on shutdown; retried
    TRY_AGAIN_LATER = 1013  # slow consumer: a write did not finish in time; retried, `after` resumes without loss
    BAD_REQUEST = 4400  # invalid message; not retried
    UNAUTHORIZED = 4401  # subscribe before connection_ack; not retried
    FORBIDDEN = 4403  # no valid token, token expired, too many connections; retried with fresh connectionParams
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406  # Strawberry's view: not graphql-transport-ws; not retried
    CONNECTION_INITIALISATION_TIMEOUT = 4408  # Strawberry's timer (TIDINGS_CONNECTION_INIT_TIMEOUT); retried
    SUBSCRIBER_ALREADY_EXISTS = 4409  # Strawberry: subscribe with an id in flight; not retried
    TOO_MANY_INITIALISATION_REQUESTS = 4429  # a second connection_init; not retried
    INTERNAL_SERVER_ERROR = 4500  # a bug in this module (logged); not retried


class InvalidMessage(ValueError):
    """A frame that is not a graphql-transport-ws message a client may send; the text is the close reason."""


def fit_reason(reason: str) -> str:
    """The reason cut to the close frame's limit, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    ellipsis = "…"
    room = MAX_CLOSE_REASON_BYTES - len(ellipsis.encode())
    return encoded[:room].decode(errors="ignore") + ellipsis


def parse_message(text: str) -> Message:
    """Decode and validate one client frame (graphql-ws's `validateMessage`, client-to-server types only)."""
    try:
        # orjson, not json: it bounds nesting depth, where json.loads raises RecursionError on "[[[[...".
        value: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidMessage("Invalid message: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidMessage("Invalid message: not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("Invalid message: 'type' must be a string")
    if kind in ("connection_init", "ping", "pong"):
        _check_optional(value, "payload", dict, kind, "an object")
    elif kind == "subscribe":
        _check_id(value, kind)
        payload = value.get("payload")
        if not isinstance(payload, dict):
            raise InvalidMessage("Invalid subscribe message: 'payload' must be an object")
        if not isinstance(payload.get("query"), str):
            raise InvalidMessage("Invalid subscribe message: 'query' must be a string")
        _check_optional(payload, "variables", dict, kind, "an object")
        _check_optional(payload, "operationName", str, kind, "a string")
        _check_optional(payload, "extensions", dict, kind, "an object")
    elif kind == "complete":
        _check_id(value, kind)
    else:
        raise InvalidMessage(f'Invalid message: unknown type "{kind}"')
    return cast("Message", value)


def _check_id(message: dict[str, Any], kind: str) -> None:
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not 0 < len(operation_id) <= MAX_OPERATION_ID_LENGTH:
        raise InvalidMessage(
            f"Invalid {kind} message: 'id' must be a string of 1 to {MAX_OPERATION_ID_LENGTH} characters"
        )


def _check_optional(container: dict[str, Any], key: str, kind_of: type, kind: str, described: str) -> None:
    value = container.get(key)
    if value is not None and not isinstance(value, kind_of):
        raise InvalidMessage(f"Invalid {kind} message: '{key}' must be {described} or null")


SlotKey = tuple[str, str]  # (role, subject): a user whose id is a service's `sub` does not share its slots


class ConnectionSlots:
    """Authenticated sockets per caller (role and subject). Counted per process: each worker of
    `tidings serve --workers N` has its own."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._counts: dict[SlotKey, int] = {}

    def acquire(self, user: SlotKey) -> bool:
        """Take a slot for the caller, or return False when all of theirs are taken."""
        count = self._counts.get(user, 0)
        if count >= self._limit:
            return False
        self._counts[user] = count + 1
        return True

    def release(self, user: SlotKey) -> None:
        count = self._counts[user] - 1
        if count:
            self._counts[user] = count
        else:
            del self._counts[user]


class TransportHost(Protocol):
    """What the handler needs from the router that runs it (`TidingsGraphQLRouter`)."""

    connection_slots: ConnectionSlots
    projections: CompiledDocuments[Projection] | None  # None: every operation takes Strawberry's standard path
    keepalive: TimerWheel  # ticks every socket's keep-alive once per TIDINGS_KEEPALIVE_INTERVAL


class Outbound(AsyncWebSocketAdapter):
    """Everything one socket sends: a queue bounded in messages and in bytes, drained in order by one writer, then at
    most one close frame.

    Senders wait while the queue is full (an operation's own bounded queue holds its live events meanwhile, so a
    replay burst never costs a fast client its socket). Every write has `timeout` seconds to finish: uvicorn's send
    waits while the transport's buffer is over its high-water mark, so a write that does not finish means the client
    is not taking what was sent, whatever frames it sends us itself: 1013. A result over `max_result_bytes` is never
    queued: the operation gets a `next` with a RESULT_TOO_LARGE error instead. Strawberry's own sends and closes
    (4401, 4408, 4409...) arrive here too, through the adapter interface, so the bounds, the order and the
    close-reason limit hold for every frame.
    """

    def __init__(
        self,
        view: AsyncBaseHTTPView[Any, Any, Any, Any, Any, Any, Any],
        websocket: WebSocket,
        *,
        size: int,
        max_bytes: int,
        max_result_bytes: int,
        timeout: float,
        on_close: Callable[[], None],
    ) -> None:
        super().__init__(view)
        self.websocket = websocket
        self._size = size
        self._max_bytes = max_bytes
        self._max_result_bytes = max_result_bytes
        self._timeout = timeout
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        # Encoded already (strings are not tracked by the garbage collector); the head stays until it is written.
        # A list, not a deque: nearly always empty or short, and every socket holds one for hours.
        self._pending: list[str] = []
        self._pending_bytes = 0
        # Futures rather than asyncio.Events (each of which holds a deque): the writer's, while it waits for
        # something to send, a close, or the peer gone; and those of senders waiting on a full queue.
        self._writer_waiting: asyncio.Future[None] | None = None
        self._senders_waiting: list[asyncio.Future[None]] = []
        self._deadline: asyncio.Timeout | None = None  # the writer's: the write in progress, or the close frame
        self._peer_gone = False
        self.close_frame: tuple[int, str] | None = None

    @property
    def closing(self) -> bool:
        return self.close_frame is not None

    def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        raise NotImplementedError("the handler reads frames itself, to validate them before Strawberry sees them")

    async def send_json(self, message: Mapping[str, object]) -> None:
        await self.send(message)

    async def close(self, code: int, reason: str) -> None:
        self.request_close(code, reason)

    async def send(self, message: Mapping[str, object]) -> None:
        """Queue a message, waiting while the queue is full; dropped once the socket is closing."""
        await self.send_encoded(self.view.encode_json_string(message))

    async def send_encoded(self, text: str) -> None:
        """`send` for a message encoded already (the delivery fast path shares one encoding across sockets)."""
        text, size = self._bounded(text)
        while not self._has_room(size) and not self.closing:
            waiter = self._loop.create_future()
            self._senders_waiting.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._senders_waiting:
                    self._senders_waiting.remove(waiter)
        self._append(text, size)

    def put(self, message: Mapping[str, object]) -> bool:
        """Queue a message if there is room, without waiting."""
        return self.put_encoded(self.view.encode_json_string(message))

    def put_encoded(self, text: str) -> bool:
        text, size = self._bounded(text)
        return self._has_room(size) and self._append(text, size)

    def request_close(self, code: int, reason: str) -> None:
        """Close after the frame being written, dropping the queue; the first request wins."""
        if self.closing:
            return
        self.close_frame = (code, fit_reason(reason))
        self._pending.clear()
        self._pending_bytes = 0
        if self._deadline is not None:
            self._deadline.reschedule(self._loop.time() + self._timeout)
        self._wake_writer()
        self._wake_senders()
        self._on_close()

    def peer_gone(self) -> None:
        """The client disconnected: there is nobody left to write to."""
        self._peer_gone = True
        self._wake_writer()

    def _bounded(self, text: str) -> tuple[str, int]:
        """The message and its size; a `next` over `max_result_bytes` becomes the RESULT_TOO_LARGE that replaces it."""
        size = _utf8_size(text)
        if size <= self._max_result_bytes:
            return text, size
        message = orjson.loads(text)  # only past the bound: an attacker's introspection, say
        if message.get("type") != "next":
            return text, size
        logger.debug("websocket: a result of %d bytes for operation %r not sent", size, message.get("id"))
        text = self.view.encode_json_string(result_too_large(message["id"], self._max_result_bytes))
        return text, _utf8_size(text)

    def _has_room(self, size: int) -> bool:
        # An empty queue takes any one message, so that nothing waits forever on a bound it can never fit.
        if not self._pending:
            return True
        return len(self._pending) < self._size and self._pending_bytes + size <= self._max_bytes

    def _append(self, text: str, size: int) -> bool:
        if self.closing:
            return False
        self._pending.append(text)
        self._pending_bytes += size
        self._wake_writer()
        return True

    def _wake_writer(self) -> None:
        waiter = self._writer_waiting
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_senders(self) -> None:
        for waiter in self._senders_waiting:
            if not waiter.done():
                waiter.set_result(None)

    async def run(self) -> None:
        """The writer: send queued messages in order until a close is requested or the peer is gone."""
        while True:
            try:
                await self._write()
                return
            except TimeoutError:
                if self.closing:
                    # A client that stopped reading cannot take the close frame either: we stop waiting here, and
                    # tidings' uvicorn protocol (tidings.server) resets the connection if it still does not drain.
                    logger.info("websocket: the client stopped reading; dropped %ss after the close", self._timeout)
                    return
                self.request_close(CloseCode.TRY_AGAIN_LATER, "Try again later")  # then try to send the close
            except WebSocketDisconnect:
                return  # the client went away while we were writing

    async def _write(self) -> None:
        try:
            async with asyncio.timeout(None) as self._deadline:
                if self.closing:
                    self._deadline.reschedule(self._loop.time() + self._timeout)
                await self._drain(self._deadline)
                if self.close_frame is not None and not self._peer_gone:
                    # uvicorn writes the close frame behind what is buffered and keeps the transport open until the
                    # client answers it (or its own close timeout passes): a client that reads gets the code.
                    await self.websocket.close(*self.close_frame)
        finally:
            self._deadline = None  # an exited Timeout cannot be rescheduled

    async def _drain(self, deadline: asyncio.Timeout) -> None:
        while not self.closing and not self._peer_gone:
            if not self._pending:
                self._writer_waiting = self._loop.create_future()
                try:
                    await self._writer_waiting
                finally:
                    self._writer_waiting = None
                continue
            if deadline.when() is None:
                deadline.reschedule(self._loop.time() + self._timeout)
            text = self._pending[0]
            await self.websocket.send_text(text)
            if self.closing:
                return  # the queue is gone, and the deadline is the close frame's now
            del self._pending[0]
            self._pending_bytes -= _utf8_size(text)
            if self._senders_waiting:
                self._wake_senders()
            # Progress: the next write gets `timeout` of its own; with nothing left to write, there is no deadline.
            deadline.reschedule(self._loop.time() + self._timeout if self._pending else None)


def _utf8_size(text: str) -> int:
    """Bytes on the wire: the length of ASCII text, else that of its UTF-8 encoding."""
    return len(text) if text.isascii() else len(text.encode())


def result_too_large(operation_id: str, limit: int) -> Mapping[str, object]:
    """The `next` an operation gets instead of a result over `limit` bytes: no data, one coded error."""
    error = UserError(
        f"The result is larger than {limit} bytes (TIDINGS_MAX_RESULT_BYTES)",
        ErrorCode.RESULT_TOO_LARGE,
        maxBytes=limit,
    )
    return {"id": operation_id, "type": "next", "payload": {"data": None, "errors": [error.formatted]}}


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws exactly per PROTOCOL.md, hardened: validated frames, keep-alive, token expiry, bounds.

    Three kinds of task per connection: the request's own task writes (`Outbound.run`), one reader task validates
    frames and hands them to Strawberry's dispatch, and Strawberry runs each operation in a task of its own.
    """

    def __init__(
        self,
        view: AsyncBaseHTTPView[Any, Any, Any, Any, Any, Context, None],
        websocket: AsyncWebSocketAdapter,
        context: Context,
        root_value: None,
        schema: BaseSchema,
        connection_init_wait_timeout: timedelta,
        max_subscriptions_per_connection: int | None = None,
    ) -> None:
        super().__init__(
            view, websocket, context, root_value, schema, connection_init_wait_timeout, max_subscriptions_per_connection
        )
        assert isinstance(websocket, ASGIWebSocketAdapter)
        settings = context.services.settings
        self._loop = asyncio.get_running_loop()
        host = cast(TransportHost, view)
        self._slots = host.connection_slots
        self._projections = host.projections
        self._wheel = host.keepalive
        self._keepalive_interval = settings.keepalive_interval
        self._leeway = settings.jwt_leeway
        self.outbound = Outbound(
            view,
            websocket.ws,
            size=settings.send_queue_size,
            max_bytes=settings.send_queue_bytes,
            max_result_bytes=settings.max_result_bytes,
            timeout=settings.send_timeout,
            on_close=self._stop,
        )
        self.websocket = self.outbound  # Strawberry's sends and closes go through the writer too
        self._last_frame_at = self._loop.time()
        self._init_timer: asyncio.TimerHandle | None = None
        self._keepalive: tuple[int, int] | None = None  # membership of the process's keep-alive wheel
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # every operation task, until it has finished
        self._user: SlotKey | None = None  # holder of a connection slot
        self._stopped = False

    def on_request_accepted(self) -> None:
        """The connection_init deadline (4408) as a timer: Strawberry's sleeping task would be one more per socket."""
        delay = self.connection_init_wait_timeout.total_seconds()
        self._init_timer = self._loop.call_later(delay, self._init_timed_out)

    def _init_timed_out(self) -> None:
        if not self.connection_init_received:
            self.connection_timed_out = True
            self.close(CloseCode.CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout")

    async def handle(self) -> None:
        self.on_request_accepted()
        self._keepalive = self._wheel.add(self._keepalive_tick)
        reader = asyncio.create_task(self._read(), name="tidings-ws-reader")
        try:
            await self.outbound.run()
        finally:
            reader.cancel()
            await asyncio.wait((reader,))
            await self.shutdown()

    async def shutdown(self) -> None:
        self._stop()
        await super().shutdown()  # cancels the init timer and the operations still registered, and awaits them
        if self._tasks:  # and those the client completed, whose cleanup may still be running
            await asyncio.wait(self._tasks)
        if self._user is not None:
            self._slots.release(self._user)
            self._user = None

    def close(self, code: CloseCode, reason: str) -> None:
        """Stop every operation now and close the socket after the frame being written."""
        self.outbound.request_close(code, reason)

    def _stop(self) -> None:
        """Nothing more to produce: cancel the timers and every operation (their `finally` runs at once).

        Once per socket: at the close request, or at shutdown when the client left first (then nothing is counted).
        """
        if self._stopped:
            return
        self._stopped = True
        if self.outbound.close_frame is not None:
            code = self.outbound.close_frame[0]
            self.context.services.metrics.websocket_closes.labels(code=str(code)).inc()
        if self._keepalive is not None:
            self._wheel.remove(self._keepalive)
            self._keepalive = None
        for timer in (self._init_timer, self._expiry_timer):
            if timer is not None:
                timer.cancel()
        for task in self._tasks:
            task.cancel()

    async def _read(self) -> None:
        """Read frames one at a time, validate each, hand it to Strawberry; stop at the first close."""
        try:
            while not self.outbound.closing:
                event = await self.outbound.websocket.receive()
                if event["type"] == "websocket.disconnect":
                    self.outbound.peer_gone()
                    return
                self._last_frame_at = self._loop.time()
                if self.outbound.closing:
                    return  # a timer or an operation closed the socket while we waited
                text = event.get("text")
                if text is None:
                    self.close(CloseCode.BAD_REQUEST, "Invalid message: binary frames are not supported")
                    return
                try:
                    message = parse_message(text)
                except InvalidMessage as error:
                    self.close(CloseCode.BAD_REQUEST, str(error))
                    return
                await self.handle_message(message)
        except Exception:
            logger.exception("websocket: failed to handle a message")
            self.close(CloseCode.INTERNAL_SERVER_ERROR, "Internal server error")

    def _keepalive_tick(self) -> None:
        """Every interval (the process's wheel): close a client silent for two intervals (it is gone), else ping it.

        A frame shows that the client is there, not that it reads: one that sends pongs and reads nothing is the
        writer's to close (a write that does not finish in `send_timeout`), and the ping is one more such write.
        """
        # 1001 Going Away, not a 44xx: a silent client is most likely a dropped network, and graphql-ws clients
        # reconnect after 1001 (they give up after 4400 and 4500) and resume from their last cursor.
        if self._loop.time() - self._last_frame_at >= 2 * self._keepalive_interval:
            self.close(CloseCode.GOING_AWAY, "Keepalive timeout")
            return
        self.outbound.put_encoded(PING)  # skipped when the queue is full: the client has enough to read

    async def send_message(self, message: Message) -> None:
        await self.outbound.send(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if self.connection_init_received:
            self.close(CloseCode.TOO_MANY_INITIALISATION_REQUESTS, "Too many initialisation requests")
            return
        self.connection_init_received = True
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        self.context.connection_params = message.get("payload") or {}
        try:
            ack_payload = await self.view.on_ws_connect(self.context)  # authenticates (TidingsGraphQLRouter)
        except ConnectionRejectionError as rejection:
            reason = rejection.payload.get("reason")  # on_ws_connect names an expired token
            self.close(CloseCode.FORBIDDEN, reason if isinstance(reason, str) else "Forbidden")
            return
        identity = self.context.identity
        assert identity is not None, "on_ws_connect sets the identity or raises ConnectionRejectionError"
        slot = (identity.role.value, identity.subject)
        if not self._slots.acquire(slot):
            self.close(CloseCode.FORBIDDEN, "Too many connections")
            return
        self._user = slot
        if identity.expires_at is not None:
            # 4403 at expiry, so clients reconnect with fresh connectionParams rather than stay subscribed on a
            # token that would no longer be accepted; the same leeway as when it was verified.
            remaining = (identity.expires_at - datetime.now(UTC)).total_seconds() + self._leeway
            self._expiry_timer = self._loop.call_later(remaining, self.close, CloseCode.FORBIDDEN, "Token expired")
        self.connection_acknowledged = True
        if isinstance(ack_payload, dict):
            await self.send_message({"type": "connection_ack", "payload": ack_payload})
        else:
            await self.send_message({"type": "connection_ack"})

    async def handle_ping(self, message: PingMessage) -> None:
        payload = message.get("payload")
        await self.send_message({"type": "pong", "payload": payload} if payload else {"type": "pong"})

    def forget_id(self, id: str) -> None:
        # Strawberry forgets an operation as it sends the operation's last message, and raises (a KeyError, logged
        # with its traceback) when the socket's close or the client's `complete` forgot it first. Seen under a storm
        # of closes on PostgreSQL: a query's task that ran on to its `complete` after its operation was cleaned up.
        self.operations.pop(id, None)

    async def _handle_pre_execution_error(self, operation: Operation[Context, None], result: PreExecutionError) -> None:
        """A document that does not parse, or names no operation it has: an `error` message with the coded errors.

        Strawberry closes the whole socket with 4400 instead, which graphql-ws clients do not retry: one bad document
        would end every other subscription of the connection, and the close reason has no room for a code.
        """
        await operation.send_initial_errors([request_error(error) for error in result.errors or ()])

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            limit is not None
            and self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            # Strawberry's own answer names neither the limit nor a code: say both.
            error = GraphQLError(
                f"At most {limit} operations at once per connection (TIDINGS_MAX_OPERATIONS_PER_CONNECTION)",
                extensions={"code": ErrorCode.BAD_USER_INPUT.value},
            )
            await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[error.formatted]))
            return
        ready = self.connection_acknowledged and message["id"] not in self.operations
        if ready and self.context.identity is not None:
            try:  # every operation started over a socket spends from the caller's subscribe bucket
                self.context.services.subscribe_limiter.check(self.context.identity)
            except UserError as refused:
                await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[refused.formatted]))
                return
        if ready and self._subscribe_projected(message):
            self.context.services.metrics.subscribes.labels(path="projected").inc()
        else:
            if ready:
                self.context.services.metrics.subscribes.labels(path="standard").inc()
            await super().handle_subscribe(message)
        operation = self.operations.get(message["id"])
        if operation is not None and operation.task is not None:
            self._tasks.add(operation.task)
            operation.task.add_done_callback(self._tasks.discard)

    def _subscribe_projected(self, message: SubscribeMessage) -> bool:
        """Start a `notificationEvents` subscription on the fast path if its document allows; False: standard path.

        Everything that could make the answer differ from the standard path's (a document that does not validate,
        variables that do not coerce, a refusal such as a bad cursor) is left to the standard path to answer.
        """
        if self._projections is None:
            return False
        payload = message["payload"]
        query = payload["query"]
        schema = cast("TidingsSchema", self.schema)
        document, _ = schema.documents.load(query)
        if document is None:
            return False
        projection = self._projections.get(query, payload.get("operationName"), document)
        if projection is None:
            return False
        arguments = projection.coerce(schema._schema, payload.get("variables"))
        if arguments is None:
            return False
        after, user_id = arguments.get("after"), arguments.get("userId")
        if not (after is None or isinstance(after, str)) or not (user_id is None or isinstance(user_id, str)):
            return False
        try:
            events = event_stream(self.context, after=after, user_id=user_id)
        except GraphQLError:
            return False
        operation = Operation(self, message["id"], query, payload.get("variables"), payload.get("operationName"))
        operation.task = asyncio.create_task(self._run_projected(operation, projection, events))
        operation.task.add_done_callback(self._task_done)
        self.operations[message["id"]] = operation
        return True

    async def _run_projected(
        self, operation: Operation[Context, None], projection: Projection, events: AsyncIterator[FeedEvent]
    ) -> None:
        """The fast path's operation task: what `run_operation` does, with the projection instead of execution."""
        try:
            prefix = projection.next_prefix(operation.id)
            async with aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    await self.outbound.send_encoded(prefix + projection.payload(event) + "}")
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
