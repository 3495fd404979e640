"""What `tidings serve` adds to uvicorn: its protocols, and the banner once it serves.

HTTP: uvicorn's httptools protocol with the limits it lacks (a deadline for the whole request, a bound on its head, a
bound on open connections). WebSocket: websockets-sansio, and an end for connections never drained. Both read their
limits from the TIDINGS_* environment, as the app does, so that every worker process applies them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from tidings.config import Settings

logger = logging.getLogger("tidings.ws")
http_logger = logging.getLogger("tidings.http")

# File descriptors kept for what is not a client: the database and Redis pools, the log, the listening sockets.
FD_RESERVE = 64

_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
    b"retry-after: 1\r\nconnection: close\r\n\r\nToo many connections\n"
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 28\r\nconnection: close\r\n\r\nRequest header is too large\n"
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    request_timeout: float  # seconds for a whole request (head and body) from connect or from the last response
    max_head_bytes: int  # request line and headers
    max_connections: int  # open sockets, HTTP and WebSocket, per process

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        max_connections = settings.max_connections
        if max_connections is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            reserve = FD_RESERVE + 2 * settings.database_pool_size
            max_connections = max(16, soft - reserve) if soft != resource.RLIM_INFINITY else 65536
        return cls(settings.request_timeout, settings.max_header_bytes, max_connections)


@functools.cache
def connection_limits() -> ConnectionLimits:
    """The limits of this process, from its environment (each uvicorn worker process reads its own)."""
    return ConnectionLimits.from_settings(Settings())


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and the connection gets a 431."""


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for the request, a bound on its head and on open connections.

    uvicorn drops an idle keep-alive connection after `timeout_keep_alive`, but stops that clock at the first byte
    and has none before the first request: a client that connects and sends nothing, or half a request line, or one
    header byte a minute, holds its socket forever; httptools accepts a head of any size. Here a request must arrive
    whole within TIDINGS_REQUEST_TIMEOUT of the connection or of the previous response, its head within
    TIDINGS_MAX_HEADER_BYTES (431), and a connection beyond TIDINGS_MAX_CONNECTIONS is answered 503 and closed at
    once, before it can use up the process's file descriptors.
    """

    _deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _head_too_large = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = connection_limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            http_logger.warning(
                "connection from %s refused: TIDINGS_MAX_CONNECTIONS (%d) are open",
                self.client,
                self._limits.max_connections,
            )
            transport.write(_TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(self._limits.request_timeout, self._request_timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            http_logger.info(
                "connection from %s closed: no whole request in %ss", self.client, self._limits.request_timeout
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._deadline is None:  # a pipelined request: its clock starts when it does
            self._arm_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._limits.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self._disarm_deadline()
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def on_message_complete(self) -> None:
        self._disarm_deadline()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm_deadline()  # the handshake is the WebSocket protocol's from here (and the app's init timeout)
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_deadline()


# ASGI scope extension of a WebSocket: a `(text: str) -> bool` that writes a text frame at once when nothing stands in
# the way (the transport takes writes, the handshake is done, no close sent) and says False otherwise; the caller then
# sends through ASGI as usual. It spares every frame of an idle socket's writer the ASGI send path and a task wake-up.
SEND_TEXT_NOW = "tidings.websocket.send_text_now"

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and discards unsent data
ANNOUNCE_POLL_INTERVAL = 0.1  # seconds between the banner's checks that the server answers


def announce_when_serving(url: str, banner: str, *, say: Callable[[str], None] | None = None) -> threading.Thread:
    """Print `banner` on stderr (or `say` each line) once `url`/healthz answers: a link printed earlier may mislead.

    Asked over HTTP, as the reader of the banner will: with several workers it is they, not this process, that
    answer. A thread that asks until then; if the server never comes up, the process exits and the thread with it.
    """
    # Never through a proxy from the environment: this is the server on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def wait_then_print() -> None:
        while True:
            try:
                with opener.open(f"{url}/healthz", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(ANNOUNCE_POLL_INTERVAL)
        if say is None:
            print(banner, file=sys.stderr, flush=True)
            return
        for line in banner.splitlines():
            say(line.removeprefix("tidings: "))

    thread = threading.Thread(target=wait_then_print, name="tidings-banner", daemon=True)
    thread.start()
    return thread


async def _wait_on(waiters: list[asyncio.Future[None]]) -> None:
    """Wait until woken by `_wake_all(waiters)`."""
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        waiters.remove(waiter)


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class _Inbox:
    """What uvicorn uses of its per-connection `asyncio.Queue`, without its three deques (about 2 KiB per socket)."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        _wake_all(self._waiters)  # every getter re-checks; there is one, the app's receive

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            await _wait_on(self._waiters)
        return self._items.pop(0)


class _Flag:
    """What uvicorn uses of its `writable` `asyncio.Event`, without the Event's deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        _wake_all(self._waiters)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            await _wait_on(self._waiters)


class _WithoutInfo(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that drops info records: uvicorn's and websockets' lines per WebSocket (accepted, open, closed) are
    access-log lines, written only when TIDINGS_ACCESS_LOG asks for them; warnings and errors still go through."""

    @property
    def level(self) -> int:  # uvicorn compares it with its TRACE level before tracing
        return int(self.logger.level)

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio, except that a connection still not drained `close_timeout` after the app is done
    with it is aborted, that the handshake is not kept once it is done, that its per-connection queue and writable
    flag are lighter than asyncio's, that it offers the app a synchronous write (`SEND_TEXT_NOW`), and that its lines
    per connection follow the access-log setting.

    uvicorn closes its transport gracefully, and asyncio then keeps the transport, its write buffer and the socket
    until that buffer drains: never, for a client that keeps its receive window shut while its kernel answers the
    window probes. The websockets library aborts after its close timeout; so does this, with a reset, so that the
    kernel lets go of what it still holds for that client too.
    """

    _abort_timer: asyncio.TimerHandle | None = None
    _handshake_freed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Held by every socket for hours: the same behaviour in less memory.
        self.queue = _Inbox()  # type: ignore[assignment]
        writable = _Flag()
        writable.set()
        self.writable = writable  # type: ignore[assignment]
        if not self.config.access_log:
            self.logger = self.conn.logger = _WithoutInfo(self.logger, {})  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # the upgrade was accepted: the app is called with this scope
            extensions = cast(dict[str, Any], self.scope["extensions"])
            extensions[SEND_TEXT_NOW] = self.send_text_now

    def send_text_now(self, text: str) -> bool:
        """Write a text frame now if uvicorn's `send` would without waiting; False: nothing written, use `send`."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        self._free_handshake()
        return True

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete:
            self._free_handshake()

    def _free_handshake(self) -> None:
        if not self._handshake_freed:
            # uvicorn keeps the handshake's request and response (their headers: a few KiB) for the connection's
            # life, and reads neither again once the handshake is done.
            self._handshake_freed = True
            self.request = self.response = None  # type: ignore[assignment]

    async def run_asgi(self) -> None:
        try:
            await super().run_asgi()
        finally:
            # The app is done with the connection: no reference cycle through the scope keeps the protocol alive.
            scope = getattr(self, "scope", None)
            if scope is not None:
                cast(dict[str, Any], scope["extensions"]).pop(SEND_TEXT_NOW, None)
            # By now uvicorn has closed the transport or started its own `close_timeout` for the client's close reply.
            if not self.disconnected:
                self._abort_timer = self.loop.call_later(self.close_timeout, self._abort_undrained)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)

    def _abort_undrained(self) -> None:
        self._abort_timer = None
        if self.disconnected or not self.transport.get_write_buffer_size():
            return  # gone, or all handed to the kernel, which sends it and the FIN on its own
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        logger.debug(
            "websocket: %s has not read for %ss since the app finished; reset", self.client, self.close_timeout
        )
        self.transport.abort()
