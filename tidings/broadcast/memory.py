"""In-process backend: fan-out within one process, for tests and single-worker deployments."""

from __future__ import annotations

import asyncio

from .base import Message

# Publishers wait when the reader falls this far behind; the reader never blocks, so the wait is short.
MAX_PENDING_MESSAGES = 10_000


class MemoryBackend:
    """Delivers each published message to this process's subscribers of its channel."""

    def __init__(self) -> None:
        self._channels: set[str] = set()
        self._messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=MAX_PENDING_MESSAGES)
        self._connected = False

    @property
    def healthy(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish(self, channel: str, message: bytes) -> None:
        # Like Redis, a message nobody subscribed to when it was published is gone.
        if channel in self._channels:
            await self._messages.put(Message(channel, message))

    async def next_message(self) -> Message | None:
        return await self._messages.get()
