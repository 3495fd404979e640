"""The graphql-transport-ws server (graphql-ws's `server.ts`): connection_init, keep-alive, token expiry, limits,
the delivery fast path; Strawberry executes the operations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from graphql import GraphQLError
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    Message,
    NextMessage,
    PingMessage,
    SubscribeMessage,
)
from strawberry.types.execution import PreExecutionError

from tidings.composition import mask_error
from tidings.context import Context
from tidings.delivery import Projection
from tidings.documents import CompiledDocuments
from tidings.errors import ErrorCode, UserError, request_error
from tidings.limits import ConnectionSlots, SlotKey
from tidings.protocol.messages import CloseCode, InvalidMessage, parse_message
from tidings.protocol.outbound import Outbound
from tidings.resolvers import event_stream
from tidings.store import FeedEvent
from tidings.wheel import TimerWheel

if TYPE_CHECKING:
    from strawberry.http.async_base_view import AsyncBaseHTTPView
    from strawberry.schema import BaseSchema

    from tidings.composition import TidingsSchema

logger = logging.getLogger("tidings.ws")


PING = '{"type":"ping"}'


class TransportHost(Protocol):
    """What the handler needs from the router that runs it (`TidingsGraphQLRouter`)."""

    connection_slots: ConnectionSlots
    projections: CompiledDocuments[Projection] | None  # None: every operation takes Strawberry's standard path
    keepalive: TimerWheel  # ticks every socket's keep-alive once per TIDINGS_KEEPALIVE_INTERVAL


def stream_failed(operation_id: str, error: Exception) -> NextMessage:
    """The `next` an operation whose event stream raised gets: no data, the error as a response shows it (masked,
    unless it is the client's to fix; the log has the cause)."""
    shown = mask_error(error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error))
    return {"id": operation_id, "type": "next", "payload": {"data": None, "errors": [shown.formatted]}}


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
        self._device: tuple[str, str] | None = None  # (user, handle): counted as one of the user's devices

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
        if self._device is not None:
            self.context.services.presence.disconnected(*self._device)
            self._device = None

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
        if not identity.is_service:  # a device of the user's, for presence(userId); a backend's socket is none
            self._device = (identity.subject, self.context.services.presence.connected(identity.subject))
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
        prefix = projection.next_prefix(message["id"])
        metrics = self.context.services.metrics
        outbound = self.outbound

        def deliver_now(event: FeedEvent) -> bool:
            """A live event, handed over by the broadcast's reader while the operation's task waits: False if the
            send queue has no room for it (or the socket is closing), and the task sends it, waiting as it must."""
            if not outbound.put_encoded(prefix + projection.payload(event) + "}"):
                return False
            metrics.deliveries += 1
            return True

        try:
            events = event_stream(self.context, after=after, user_id=user_id, live=deliver_now)
        except GraphQLError:
            return False
        operation = Operation(self, message["id"], query, payload.get("variables"), payload.get("operationName"))
        operation.task = asyncio.create_task(self._run_projected(operation, prefix, projection, events))
        operation.task.add_done_callback(self._task_done)
        self.operations[message["id"]] = operation
        return True

    async def _run_projected(
        self,
        operation: Operation[Context, None],
        prefix: str,
        projection: Projection,
        events: AsyncIterator[FeedEvent],
    ) -> None:
        """The fast path's operation task: what `run_operation` does, with the projection instead of execution.

        Its live events mostly never reach it: the broadcast's reader hands them to `deliver_now` while this task
        waits. It sends the replay, and whatever the send queue had no room for when it arrived.
        """
        try:
            metrics = self.context.services.metrics
            async with aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    await self.outbound.send_encoded(prefix + projection.payload(event) + "}")
                    metrics.deliveries += 1
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                # As the standard path answers a failing event stream: a `next` with the masked error, then
                # `complete` (a bare `complete` would tell the client the stream ended as it should).
                await operation.send_operation_message(stream_failed(operation.id, error))
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
