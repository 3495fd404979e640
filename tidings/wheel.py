"""One timer wheel per process for what every socket does periodically (keep-alive), instead of a timer per socket.

One task wakes every `interval / slots` seconds and ticks the next of `slots` buckets. Members join the buckets in
turn, so each bucket holds its share however members arrive: two thousand sockets that connect within a second are
pinged a sixty-fourth at a time, not all at once (which stalled deliveries for tens of milliseconds). A member's first
tick comes within one interval of joining, then one every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

logger = logging.getLogger("tidings.ws")

Tick = Callable[[], None]


class TimerWheel:
    """Calls each member's tick once per `interval`; members come and go at any time."""

    def __init__(self, interval: float, *, slots: int = 64) -> None:
        self.interval = interval
        self._buckets: list[dict[int, Tick]] = [{} for _ in range(slots)]
        self._current = 0  # the bucket ticked next
        self._joining = 0  # the bucket the next member joins
        self._keys = 0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets)

    def loads(self) -> list[int]:
        """Members per bucket: how many are ticked at each step."""
        return [len(bucket) for bucket in self._buckets]

    def start(self) -> None:
        """Start the wheel's task (the application does at start; `add` does if nobody has)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tidings-timer-wheel")

    def add(self, tick: Tick) -> tuple[int, int]:
        """Join the wheel; returns the handle that `remove` takes."""
        self.start()
        bucket = self._joining
        self._joining = (bucket + 1) % len(self._buckets)
        self._keys += 1
        self._buckets[bucket][self._keys] = tick
        return bucket, self._keys

    def remove(self, handle: tuple[int, int]) -> None:
        bucket, key = handle
        self._buckets[bucket].pop(key, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        step = self.interval / len(self._buckets)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += step
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            bucket = self._buckets[self._current]
            self._current = (self._current + 1) % len(self._buckets)
            for tick in list(bucket.values()):
                try:
                    tick()
                except Exception:
                    logger.exception("websocket: keep-alive tick failed")
