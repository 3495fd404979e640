"""The WebSocket protocol `tidings serve` gives uvicorn: websockets-sansio, and an end for connections never drained."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger("tidings.ws")

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST and discards unsent data


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio, except that a connection still not drained `close_timeout` after the app is done
    with it is aborted, and that the handshake is not kept once it is done.

    uvicorn closes its transport gracefully, and asyncio then keeps the transport, its write buffer and the socket
    until that buffer drains: never, for a client that keeps its receive window shut while its kernel answers the
    window probes. The websockets library aborts after its close timeout; so does this, with a reset, so that the
    kernel lets go of what it still holds for that client too.
    """

    _abort_timer: asyncio.TimerHandle | None = None
    _handshake_freed = False

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
