"""Snooze and expiry: one server-side timer for both, run by every process, each timer fired exactly once.

Nothing is kept in memory that another process would need: the due times are columns of the notifications. Every
process looks for due rows (`SqlStore.fire_due`) and fires each in its user's feed transaction, which appends the
UNSNOOZED or EXPIRED event; the feed lock and a second look under it make one event per timer however many processes
look at once. A process sleeps until the next due time, at most TIDINGS_TIMER_INTERVAL; a timer set here wakes it
at once (`schedule`), so a timer set in a running process fires on time and the interval bounds only how late one
fires when the process that set it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from tidings.feed import FeedHub
from tidings.store import SqlStore

logger = logging.getLogger("tidings")


class Timers:
    """This process's share of the timers: fire what is due, publish it, sleep until the next."""

    def __init__(self, store: SqlStore, hub: FeedHub, *, interval: float, batch_size: int) -> None:
        self._store = store
        self._hub = hub
        self._interval = interval
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._next_look: datetime | None = None  # when the loop looks next; None while it is looking

    def schedule(self, at: datetime) -> None:
        """A timer was set here for `at`: look then, if that is before the loop's next look."""
        if self._next_look is None or at < self._next_look:
            self._wake.set()

    async def run(self) -> None:
        """Fire due timers until cancelled; a failing database is retried at the interval."""
        while True:
            # Before looking: a timer set while we look (perhaps after `next_due` read) wakes the sleep below.
            self._next_look = None
            self._wake.clear()
            delay = self._interval
            try:
                delay = await self.fire_due()
            except Exception:
                logger.warning("timers: firing snoozes and expiries failed; will retry", exc_info=True)
            self._next_look = datetime.now(UTC) + timedelta(seconds=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def fire_due(self) -> float:
        """Fire everything due now, in batches; returns the seconds until the next look."""
        while True:
            now = datetime.now(UTC)
            fired = await self._store.fire_due(now=now, limit=self._batch_size)
            for event in fired:
                await self._hub.publish(event)
            if len(fired) < self._batch_size:
                break
        upcoming = await self._store.next_due()
        if upcoming is None:
            return self._interval
        return min(self._interval, max(0.0, (upcoming - datetime.now(UTC)).total_seconds()))
