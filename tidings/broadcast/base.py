"""The backend port: the few operations the fan-out core needs from a transport."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Message(NamedTuple):
    """A message read from the backend, on its full (prefixed) channel name."""

    channel: str
    data: bytes


class BroadcastBackend(Protocol):
    """A transport that carries messages between processes; channel names here already carry the prefix.

    `Broadcast` subscribes a channel at most once at a time and reads `next_message` from a single task.
    """

    @property
    def healthy(self) -> bool:
        """Whether the backend is connected right now."""
        ...

    async def connect(self) -> None:
        """Open the connections; raise if the backend cannot be reached."""
        ...

    async def disconnect(self) -> None:
        """Close the connections; calling it again is harmless."""
        ...

    async def subscribe(self, channel: str) -> None:
        """Return once the backend confirmed the subscription: later messages on `channel` will be read."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`; never raises for a lost connection (it is not resubscribed on reconnect)."""
        ...

    async def publish(self, channel: str, message: bytes) -> None:
        """Send `message` to every subscriber of `channel` in every process; raises if the backend is unreachable."""
        ...

    async def next_message(self) -> Message | None:
        """Wait for the next message; None means messages may have been lost (the connection was re-established)."""
        ...
