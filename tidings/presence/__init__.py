"""Presence: how many devices of a user are connected, across every process, and when one last was.

A device is one authenticated WebSocket of a user token. The port is three calls: `connected` and `disconnected`,
synchronous and cheap (they run in the handshake and the close of a socket), and `lookup`. The adapter follows the
broadcast URL: in memory on `memory://` (one process sees every socket), in Redis otherwise (each process vouches for
its own sockets with entries that expire unless refreshed, so a killed process's devices go away on their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["PresenceBackend", "PresenceRecord", "PresenceUnavailable", "create_presence"]


@dataclass(frozen=True, slots=True)
class PresenceRecord:
    """A user's presence: devices connected now, and when one last was (now while one is; None: not known)."""

    devices: int
    last_seen_at: datetime | None


class PresenceUnavailable(Exception):
    """The shared presence store (Redis) cannot be reached: nothing can be said about other processes' devices."""


class PresenceBackend(Protocol):
    """Where the devices of every process are counted."""

    def connected(self, user_id: str) -> str:
        """A device of the user connected to this process; returns the handle `disconnected` takes."""
        ...

    def disconnected(self, user_id: str, handle: str) -> None:
        """That device is gone."""
        ...

    async def lookup(self, user_id: str) -> PresenceRecord:
        """The user's presence over every process; raises `PresenceUnavailable` when that cannot be known."""
        ...

    async def start(self) -> None:
        """Start whatever keeps the shared record fresh (the application's start-up)."""
        ...

    async def close(self) -> None:
        """Withdraw this process's devices and stop (the application's shutdown); calling it again is harmless."""
        ...


def create_presence(url: str, *, prefix: str, interval: float, seen_ttl: float) -> PresenceBackend:
    """The adapter for the broadcast URL, importing only its client library.

    `interval`: seconds between refreshes of this process's entries in Redis (they expire after three); `seen_ttl`:
    how long a last-seen time is kept.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from .memory import MemoryPresence

        return MemoryPresence()
    from .redis import RedisPresence

    return RedisPresence(url, prefix=prefix, interval=interval, seen_ttl=seen_ttl)
