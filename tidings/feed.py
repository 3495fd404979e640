"""Following a user's feed: replay from the database, then live from the broadcast, with no gap and no duplicate.

The broadcast is only a wake-up. Every event carries its per-user position; a follower remembers the last one it
yielded, skips what it has seen, and reads from the database whenever something may be missing: a position skipped,
a catch-up marker from the broadcast (overflow, broker reconnect, periodic sync), or a resume cursor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache
from typing import TypeVar

from tidings.broadcast import Broadcast, Subscription
from tidings.cursors import FeedCursor
from tidings.metrics import Metrics
from tidings.store import EventKind, FeedEvent, FeedPosition, SqlStore, database_unavailable

logger = logging.getLogger("tidings")

SYNC_BATCH = 1000  # users per position query of the periodic sync
RETRY_DELAY_MIN = 0.1  # seconds between database attempts of a follower while the database is unreachable
RETRY_DELAY_MAX = 2.0
UNHEALTHY_PUBLISH_TIMEOUT = 0.25  # seconds a mutation waits for a publish while the broker is (partly) down

T = TypeVar("T")


DECODED_WAKEUPS = 256  # decoded wake-ups kept per process (payloads can be up to ~30 KiB)


class _RejectionLog:
    """A warning for the first rejected wake-up of a burst (one per minute), not one per message and socket."""

    interval = 60.0

    def __init__(self) -> None:
        self._last_logged = -self.interval

    def log(self, user_id: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_logged >= self.interval:
            self._last_logged = now
            logger.warning(
                "a broadcast message on the channel of user %r was not an event of that user; read the database "
                "instead (tidings_rejected_wakeups counts them)",
                user_id,
            )


_rejections = _RejectionLog()


def user_channel(user_id: str) -> str:
    """The broadcast channel of one user's events."""
    return f"user:{user_id}"


class FeedHub:
    """This process's feed followers: creates them, bounds their database reads, and syncs them periodically.

    Pub/Sub is at most once: a lost *last* message is followed by no gap that a follower could notice. The periodic
    sync reads the feed positions of every user with a local follower, in batched queries, and wakes each follower
    that is behind. It also keeps delivery going, with a bounded delay, while the broker is down.
    """

    def __init__(
        self,
        store: SqlStore,
        broadcast: Broadcast,
        *,
        batch_size: int = 500,
        replay_concurrency: int = 16,
        replay_concurrency_per_user: int = 2,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.broadcast = broadcast
        self.batch_size = batch_size
        self.metrics = metrics or Metrics()
        # A reconnect storm must not become a storm of concurrent replays: the database sees at most this many.
        self.replay_slots = asyncio.Semaphore(replay_concurrency)
        # ...and one user's many subscriptions queue behind each other, not in front of everyone else's.
        self._per_user = replay_concurrency_per_user
        self._user_slots: dict[str, _UserSlots] = {}
        self._followers: dict[str, set[FeedFollower]] = {}
        # One wake-up reaches every local follower of its user (each device, each tab) as the same bytes: decode it
        # once. Records are immutable, so followers share the result.
        self.decode = lru_cache(maxsize=DECODED_WAKEUPS)(self._decode)

    def _decode(self, message: bytes) -> FeedEvent:
        """A wake-up's event, decoded by the first local follower, which queues it to its socket next: its latency."""
        event = FeedEvent.from_json(message)
        if event.committed_at is not None:
            self.metrics.delivery_latency.observe(max(0.0, time.time() - event.committed_at))
        return event

    def replay_slot(self, user_id: str) -> _ReplaySlot:
        """Held for each database read of a follower: one of the user's slots, then one of the process's."""
        return _ReplaySlot(self, user_id)

    async def publish(self, event: FeedEvent) -> None:
        """Wake the subscribers of the event's user, in every process, after its commit.

        The one place that names a user's channel and encodes what travels on it (`FeedFollower` decodes it). Losing
        a wake-up loses nothing: followers read the database. While the broker is down, or part of it (a cluster
        shard), the publish is tried briefly, so users on healthy shards keep live wake-ups without holding the
        mutation for long; the loss itself is logged once by the broadcast.
        """
        healthy = self.broadcast.healthy
        try:
            # Stamped with the time of commit (just passed) for the delivery latency in each process that delivers it.
            stamped = dataclasses.replace(event, committed_at=time.time())
            publishing = self.broadcast.publish(user_channel(event.user_id), stamped.to_json())
            if healthy:
                await publishing
            else:
                await asyncio.wait_for(publishing, UNHEALTHY_PUBLISH_TIMEOUT)
            self.metrics.events_published.inc()
        except Exception as error:
            self.metrics.publish_failures.inc()
            (logger.warning if healthy else logger.debug)(
                "broadcast: publish failed (%s); subscribers will catch up from the database", error
            )

    def follower(self, user_id: str) -> FeedFollower:
        return FeedFollower(self, user_id)

    def _add(self, follower: FeedFollower) -> None:
        self._followers.setdefault(follower.user_id, set()).add(follower)
        self.metrics.subscriptions.inc()

    def _discard(self, follower: FeedFollower) -> None:
        followers = self._followers.get(follower.user_id)
        if followers is not None and follower in followers:
            followers.discard(follower)
            self.metrics.subscriptions.dec()
            if not followers:
                del self._followers[follower.user_id]

    def users(self) -> list[str]:
        return list(self._followers)

    async def sync_once(self) -> int:
        """Wake every follower whose user's feed has moved past it; returns how many were woken."""
        users = self.users()
        woken = 0
        for start in range(0, len(users), SYNC_BATCH):
            positions = await self.store.feed_positions(users[start : start + SYNC_BATCH])
            for user_id, position in positions.items():
                for follower in list(self._followers.get(user_id, ())):
                    if follower.last < position:
                        follower.request_catch_up()
                        woken += 1
        self.metrics.sync_wakeups.inc(woken)
        return woken

    async def run(self, interval: float) -> None:
        """Sync forever, every `interval` seconds; a database outage is logged once, and its end once."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_once()
            except Exception as error:
                if not database_unavailable(error):
                    logger.exception("feed sync failed")
                    continue
                if not failing:
                    logger.warning("feed sync: database unreachable (%s); retrying", type(error).__name__)
                failing = True
                continue
            if failing:
                logger.info("feed sync: database reachable again")
                failing = False


class _UserSlots:
    __slots__ = ("holders", "semaphore")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.holders = 0  # waiting or reading; the entry goes when the last one leaves


class _ReplaySlot:
    """`async with hub.replay_slot(user)`: the user's bound first, so their queue never holds a process slot."""

    __slots__ = ("_hub", "_slots", "_user_id")

    def __init__(self, hub: FeedHub, user_id: str) -> None:
        self._hub = hub
        self._user_id = user_id

    async def __aenter__(self) -> None:
        hub = self._hub
        slots = hub._user_slots.get(self._user_id)
        if slots is None:
            slots = hub._user_slots[self._user_id] = _UserSlots(hub._per_user)
        slots.holders += 1
        self._slots = slots
        try:
            await slots.semaphore.acquire()
            try:
                await hub.replay_slots.acquire()
            except BaseException:
                slots.semaphore.release()
                raise
        except BaseException:
            self._leave()
            raise
        hub.metrics.replay_started()

    async def __aexit__(self, *_: object) -> None:
        self._hub.metrics.replay_finished()
        self._hub.replay_slots.release()
        self._slots.semaphore.release()
        self._leave()

    def _leave(self) -> None:
        self._slots.holders -= 1
        if not self._slots.holders:
            del self._hub._user_slots[self._user_id]


class FeedFollower:
    """Yields one user's events after a starting point, in position order, each exactly once."""

    def __init__(self, hub: FeedHub, user_id: str) -> None:
        self._hub = hub
        self._store = hub.store
        self.user_id = user_id
        self._last = 0
        self._subscription: Subscription | None = None
        self._live: Callable[[FeedEvent], bool] | None = None

    @property
    def last(self) -> int:
        """Position of the last event yielded (or the starting position)."""
        return self._last

    def request_catch_up(self) -> None:
        """Make the follower re-read the database at its next wait (something may not have reached it)."""
        if self._subscription is not None:
            self._subscription.request_catch_up()

    async def follow(
        self, start: FeedCursor | None, *, live: Callable[[FeedEvent], bool] | None = None
    ) -> AsyncIterator[FeedEvent]:
        """Events after `start` (or from now, without one), replayed then live, until the consumer stops.

        With `live`, the next event in order that arrives while the consumer waits for one is handed to `live`
        synchronously, from the broadcast's reader, instead of being yielded: True means the consumer has taken it
        (its position moves on); False, or an exception, that it could not take it now, and it is yielded as usual.
        Either way every event reaches the consumer once, in order.
        """
        # Subscribe before reading the database: whatever commits after the read is then already on its way to us.
        async with self._hub.broadcast.subscribe(user_channel(self.user_id)) as subscription:
            self._subscription = subscription
            self._hub._add(self)
            if live is not None:
                self._live = live
                subscription.take_while_waiting(self._take)
            try:
                async for event in self._follow(subscription, start):
                    yield event
            finally:
                subscription.take_while_waiting(None)
                self._live = None
                self._hub._discard(self)
                self._subscription = None

    def _take(self, message: bytes) -> bool:
        """A wake-up that arrived while `_follow` waits for one: hand it to `live` if it is the next event in order.

        Anything else (a gap, a message to distrust, a `live` that cannot take it) goes to `_follow`, which reads
        the database or yields it; one already seen is dropped here, as `_follow` would.
        """
        live = self._live
        event = self._event_of(message)
        if live is None or event is None or event.seq > self._last + 1:
            return False
        if event.seq <= self._last:
            return True  # already replayed
        try:
            if not live(event):
                return False
        except Exception:
            return False  # `_follow` yields it, and the consumer meets the failure in its own task
        self._last = event.seq
        return True

    async def _follow(self, subscription: Subscription, start: FeedCursor | None) -> AsyncIterator[FeedEvent]:
        resync = await _waiting_out_outages(lambda: self._begin(start))
        if resync is not None:
            yield resync
        elif start is not None:
            async for event in self._catch_up():
                yield event
        while True:
            message = await subscription.get()
            if message is None:
                async for event in self._catch_up():
                    yield event
                continue
            live = self._trusted(message)
            if live is not None and live.seq <= self._last:
                continue  # already replayed
            if live is None or live.seq > self._last + 1:
                # A wake-up was lost, or this one is not to be trusted: the database has what happened.
                async for replayed in self._catch_up():
                    yield replayed
                continue
            self._last = live.seq
            yield live

    def _trusted(self, message: bytes) -> FeedEvent | None:
        """The event a wake-up carries, if it is one of this follower's user; otherwise None (read the database).

        The broker is trusted infrastructure, but what reaches a socket is checked here anyway: a message that does
        not decode, or that names another user, never reaches the client and ends nothing.
        """
        event = self._event_of(message)
        if event is None:
            self._hub.metrics.rejected_wakeups.inc()
            _rejections.log(self.user_id)
        return event

    def _event_of(self, message: bytes) -> FeedEvent | None:
        """The event of this follower's user that a wake-up carries; None if it does not decode or names another."""
        try:
            event = self._hub.decode(message)
        except Exception:
            return None
        if event.user_id != self.user_id or (
            event.notification is not None and event.notification.user_id != self.user_id
        ):
            return None
        return event

    async def _begin(self, start: FeedCursor | None) -> FeedEvent | None:
        """Set the starting position; a cursor of another database, or ahead of this feed, gets RESYNC."""
        position = await self._position()
        if start is None:
            self._last = position.seq
            return None
        if start.epoch != self._store.epoch or start.seq > position.seq:
            return self._resync_at(position)
        self._last = start.seq
        return None

    async def _catch_up(self) -> AsyncIterator[FeedEvent]:
        """Everything the database holds after the last yielded position, waiting out database outages.

        The subscription stays open while the database is unreachable: the read is retried, and since it resumes
        from the last yielded position, a retry never yields an event twice.
        """
        delay = RETRY_DELAY_MIN
        while True:
            try:
                async for event in self._read_after_last():
                    yield event
                return
            except Exception as error:
                if not database_unavailable(error):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)

    async def _read_after_last(self) -> AsyncIterator[FeedEvent]:
        """One pass over the database after the last yielded position; RESYNC if part of it is gone."""
        while True:
            batch = await self._events_after_last()
            if not batch:
                position = await self._position()
                if position.seq <= self._last:
                    return
                # Read again: every event up to that position had committed before the position was read.
                batch = await self._events_after_last()
                if not batch:
                    yield self._resync_at(await self._position())  # retention removed events never seen here
                    return
            if batch[0].seq != self._last + 1:
                yield self._resync_at(await self._position())
                return
            self._hub.metrics.replayed_events.inc(len(batch))
            for event in batch:
                self._last = event.seq
                yield event
            if len(batch) < self._hub.batch_size:
                return

    # Every database read of a follower takes a replay slot: a reconnect storm queues here, not in the pool.

    async def _position(self) -> FeedPosition:
        async with self._hub.replay_slot(self.user_id):
            return await self._store.feed_position(self.user_id)

    async def _events_after_last(self) -> list[FeedEvent]:
        async with self._hub.replay_slot(self.user_id):
            return await self._store.events_after(self.user_id, self._last, limit=self._hub.batch_size)

    def _resync_at(self, position: FeedPosition) -> FeedEvent:
        self._last = position.seq
        self._hub.metrics.resyncs.inc()
        return FeedEvent(
            user_id=self.user_id,
            seq=position.seq,
            kind=EventKind.RESYNC,
            unread_count=position.unread_count,
            unseen_count=position.unseen_count,
        )


async def _waiting_out_outages(call: Callable[[], Awaitable[T]]) -> T:
    """Retry a database read until the database answers (errors other than unavailability propagate)."""
    delay = RETRY_DELAY_MIN
    while True:
        try:
            return await call()
        except Exception as error:
            if not database_unavailable(error):
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_DELAY_MAX)
