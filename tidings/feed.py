"""Following a user's feed: replay from the database, then live from the broadcast, with no gap and no duplicate.

The broadcast is only a wake-up. Every event carries its per-user position; the follower remembers the last one it
yielded, skips what it has seen, and reads from the database whenever something may be missing: a position skipped,
a catch-up marker from the broadcast (overflow, broker reconnect, periodic sync), or a resume cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from tidings.broadcast import Broadcast, Subscription
from tidings.cursors import FeedCursor
from tidings.store import EventKind, FeedEvent, SqlStore

logger = logging.getLogger("tidings")

SYNC_BATCH = 1000  # users per position query of the periodic sync


def user_channel(user_id: str) -> str:
    """The broadcast channel of one user's events."""
    return f"user:{user_id}"


class FeedFollower:
    """Yields one user's events after a starting point, in position order, each exactly once."""

    def __init__(
        self, store: SqlStore, broadcast: Broadcast, user_id: str, *, batch_size: int, hub: FeedHub | None = None
    ) -> None:
        self._store = store
        self._broadcast = broadcast
        self.user_id = user_id
        self._batch_size = batch_size
        self._hub = hub
        self._last = 0
        self._subscription: Subscription | None = None

    @property
    def last(self) -> int:
        """Position of the last event yielded (or the starting position)."""
        return self._last

    def request_catch_up(self) -> None:
        """Make the follower re-read the database at its next wait (something may not have reached it)."""
        if self._subscription is not None:
            self._subscription.request_catch_up()

    async def follow(self, start: FeedCursor | None) -> AsyncIterator[FeedEvent]:
        # Subscribe before reading the database: whatever commits after the read is then already on its way to us.
        async with self._broadcast.subscribe(user_channel(self.user_id)) as subscription:
            self._subscription = subscription
            if self._hub is not None:
                self._hub.add(self)
            try:
                async for event in self._follow(subscription, start):
                    yield event
            finally:
                if self._hub is not None:
                    self._hub.discard(self)
                self._subscription = None

    async def _follow(self, subscription: Subscription, start: FeedCursor | None) -> AsyncIterator[FeedEvent]:
        position = await self._store.feed_position(self.user_id)
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
            batch = await self._store.events_after(self.user_id, self._last, limit=self._batch_size)
            if not batch:
                position = await self._store.feed_position(self.user_id)
                if position.seq <= self._last:
                    return
                # Read again: every event up to that position had committed before the position was read.
                batch = await self._store.events_after(self.user_id, self._last, limit=self._batch_size)
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
        position = await self._store.feed_position(self.user_id)
        self._last = position.seq
        return FeedEvent(
            user_id=self.user_id, seq=position.seq, kind=EventKind.RESYNC, unread_count=position.unread_count
        )


class FeedHub:
    """This process's followers by user, for the periodic sync that catches up what a lost wake-up left behind.

    Pub/Sub is at most once: a lost *last* message is followed by no gap that a follower could notice. The sync reads
    the feed positions of every user with a local follower, in batched queries, and wakes each follower that is behind.
    It also keeps delivery going, with a bounded delay, while the broker is down.
    """

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._followers: dict[str, set[FeedFollower]] = {}

    def add(self, follower: FeedFollower) -> None:
        self._followers.setdefault(follower.user_id, set()).add(follower)

    def discard(self, follower: FeedFollower) -> None:
        followers = self._followers.get(follower.user_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.user_id]

    def users(self) -> list[str]:
        return list(self._followers)

    async def sync_once(self) -> int:
        """Wake every follower whose user's feed has moved past it; returns how many were woken."""
        users = self.users()
        woken = 0
        for start in range(0, len(users), SYNC_BATCH):
            positions = await self._store.feed_positions(users[start : start + SYNC_BATCH])
            for user_id, position in positions.items():
                for follower in list(self._followers.get(user_id, ())):
                    if follower.last < position:
                        follower.request_catch_up()
                        woken += 1
        return woken

    async def run(self, interval: float) -> None:
        """Sync forever, every `interval` seconds; database errors are logged once per outage."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_once()
            except Exception as error:
                if not failing:
                    logger.warning("feed sync: cannot read feed positions (%s); retrying", type(error).__name__)
                failing = True
                continue
            if failing:
                logger.info("feed sync: reading feed positions again")
                failing = False
