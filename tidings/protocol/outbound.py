"""Everything one socket sends: the bounded, ordered writer of a graphql-transport-ws connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.http.async_base_view import AsyncWebSocketAdapter

from tidings.errors import ErrorCode, UserError
from tidings.protocol.messages import CloseCode, fit_reason
from tidings.server import SEND_TEXT_NOW

if TYPE_CHECKING:
    from strawberry.http.async_base_view import AsyncBaseHTTPView


logger = logging.getLogger("tidings.ws")


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

    A message that finds the queue empty is written by its sender at once when the server offers a synchronous write
    (`tidings.server.SEND_TEXT_NOW`) and the transport takes it without waiting: the usual case, a frame or two to a
    socket that reads. Everything else waits in the queue for the writer, in order behind what is already there.
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
        extensions = websocket.scope.get("extensions") or {}
        self._send_now: Callable[[str], bool] | None = extensions.get(SEND_TEXT_NOW)
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
        if not self._pending and self._send_now is not None and not self._peer_gone and self._send_now(text):
            return True  # written: nothing was queued before it, and the writer is not in the middle of a write
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
