"""Following a user's feed: replay from the database, then live from the broadcast, with no gap and no duplicate.

The broadcast is only a wake-up. Every event carries its per-user position; the follower remembers the last one it
yielded, skips what it has seen, and reads from the database whenever something may be missing: a position skipped,
a catch-up marker from the broadcast (overflow, broker reconnect, periodic sync), or a resume cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tidings.broadcast import Broadcast
from tidings.cursors import FeedCursor
from tidings.store import EventKind, FeedEvent, SqlStore


def user_channel(user_id: str) -> str:
    """The broadcast channel of one user's events."""
    return f"user:{user_id}"


class FeedFollower:
    """Yields one user's events after a starting point, in position order, each exactly once."""

    def __init__(self, store: SqlStore, broadcast: Broadcast, user_id: str, *, batch_size: int) -> None:
        self._store = store
        self._broadcast = broadcast
        self._user_id = user_id
        self._batch_size = batch_size
        self._last = 0

    async def follow(self, start: FeedCursor | None) -> AsyncIterator[FeedEvent]:
        # Subscribe before reading the database: whatever commits after the read is then already on its way to us.
        async with self._broadcast.subscribe(user_channel(self._user_id)) as subscription:
            position = await self._store.feed_position(self._user_id)
            if start is None:
                self._last = position.seq
            elif start.epoch != self._store.epoch or start.seq > position.seq:
                yield await self._resync()
            else:
                self._last = start.seq
                async for event in self._catch_up():
                    yield event
            while True:
                message = await subscription.get()
                if message is None:
                    async for event in self._catch_up():
                        yield event
                    continue
                event = FeedEvent.from_json(message)
                if event.seq <= self._last:
                    continue  # already replayed
                if event.seq > self._last + 1:
                    async for replayed in self._catch_up():  # a wake-up was lost: the database has it
                        yield replayed
                    continue
                self._last = event.seq
                yield event

    async def _catch_up(self) -> AsyncIterator[FeedEvent]:
        """Everything the database holds after the last yielded position; RESYNC if part of it is gone."""
        while True:
            batch = await self._store.events_after(self._user_id, self._last, limit=self._batch_size)
            if not batch:
                position = await self._store.feed_position(self._user_id)
                if position.seq <= self._last:
                    return
                # Read again: every event up to that position had committed before the position was read.
                batch = await self._store.events_after(self._user_id, self._last, limit=self._batch_size)
                if not batch:
                    yield await self._resync()  # retention removed events this client never saw
                    return
            if batch[0].seq != self._last + 1:
                yield await self._resync()
                return
            for event in batch:
                self._last = event.seq
                yield event
            if len(batch) < self._batch_size:
                return

    async def _resync(self) -> FeedEvent:
        position = await self._store.feed_position(self._user_id)
        self._last = position.seq
        return FeedEvent(
            user_id=self._user_id, seq=position.seq, kind=EventKind.RESYNC, unread_count=position.unread_count
        )
