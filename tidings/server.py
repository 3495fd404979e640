"""The WebSocket protocol `tidings serve` gives uvicorn: websockets-sansio, and an end for connections never drained."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger("tidings.ws")

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and discards unsent data


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


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio, except that a connection still not drained `close_timeout` after the app is done
    with it is aborted, that the handshake is not kept once it is done, and that its per-connection queue and
    writable flag are lighter than asyncio's.

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

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and not self._handshake_freed:
            # uvicorn keeps the handshake's request and response (their headers: a few KiB) for the connection's
            # life, and reads neither again once the handshake is done.
            self._handshake_freed = True
            self.request = self.response = None  # type: ignore[assignment]

    async def run_asgi(self) -> None:
        try:
            await super().run_asgi()
        finally:
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
