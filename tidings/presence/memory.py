"""In-process presence, for the embedded default: every socket of the service is in this process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from . import PresenceRecord

MAX_SEEN_USERS = 100_000  # last-seen times kept, the least recently seen forgotten first


class MemoryPresence:
    """Device counts and last-seen times in two dictionaries."""

    def __init__(self, *, clock: Callable[[], float] = time.time, max_seen_users: int = MAX_SEEN_USERS) -> None:
        self._clock = clock
        self._max_seen = max_seen_users
        self._devices: dict[str, int] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()

    def connected(self, user_id: str) -> str:
        self._devices[user_id] = self._devices.get(user_id, 0) + 1
        self._see(user_id)
        return ""

    def disconnected(self, user_id: str, handle: str) -> None:
        count = self._devices.get(user_id, 0) - 1
        if count > 0:
            self._devices[user_id] = count
        else:
            self._devices.pop(user_id, None)
        self._see(user_id)

    async def lookup(self, user_id: str) -> PresenceRecord:
        devices = self._devices.get(user_id, 0)
        seen = self._clock() if devices else self._seen.get(user_id)
        return PresenceRecord(devices, None if seen is None else datetime.fromtimestamp(seen, UTC))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _see(self, user_id: str) -> None:
        self._seen[user_id] = self._clock()
        self._seen.move_to_end(user_id)
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
