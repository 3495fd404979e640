"""The feed follower on each database: replay then live, no gap, no duplicate, RESYNC when history is gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from tidings.broadcast import Broadcast
from tidings.cursors import FeedCursor
from tidings.feed import FeedFollower, FeedHub
from tidings.store import EventKind, FeedEvent, NotificationType, SqlStore

WAIT = 10.0


async def _create(store: SqlStore, broadcast: Broadcast | None, user: str, title: str = "t") -> FeedEvent:
    _, event = await store.create_notification(
        user_id=user, type=NotificationType.INFO, title=title, message="m", data=None
    )
    assert event is not None
    if broadcast is not None:
        await FeedHub(store, broadcast).publish(event)  # what a mutation does after its commit
    return event


async def _take(events: AsyncIterator[FeedEvent], count: int) -> list[FeedEvent]:
    async with asyncio.timeout(WAIT):
        return [await anext(events) for _ in range(count)]


async def _waiting_live(
    follower: FeedFollower, events: AsyncIterator[FeedEvent], start: FeedEvent
) -> asyncio.Task[FeedEvent]:
    """Start reading from now; return once the follower has taken `start` as its position (it subscribed before)."""
    waiting = asyncio.ensure_future(anext(events))
    async with asyncio.timeout(WAIT):
        while follower.last != start.seq:
            await asyncio.sleep(0.01)
    return waiting


async def _memory_broadcast(queue_size: int = 100) -> Broadcast:
    broadcast = Broadcast("memory://", queue_size=queue_size)
    await broadcast.connect()
    return broadcast


async def test_replays_after_a_cursor_then_continues_live(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast()
    try:
        first = await _create(store, broadcast, user, "seen")
        missed = [await _create(store, broadcast, user, f"missed {i}") for i in range(3)]
        follower = FeedHub(store, broadcast, batch_size=2).follower(user)  # several replay batches
        async with aclosing(follower.follow(FeedCursor(store.epoch, first.seq))) as events:
            assert await _take(events, 3) == missed
            live = await _create(store, broadcast, user, "live")
            assert await _take(events, 1) == [live]
    finally:
        await broadcast.disconnect()


async def test_a_lost_wake_up_is_filled_from_the_database(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast()
    try:
        before = await _create(store, None, user, "before the follower")
        follower = FeedHub(store, broadcast, batch_size=10).follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = await _waiting_live(follower, events, before)
            silent = await _create(store, None, user, "published nowhere")
            loud = await _create(store, broadcast, user, "published")
            assert await asyncio.wait_for(waiting, WAIT) == silent
            assert await _take(events, 1) == [loud]
    finally:
        await broadcast.disconnect()


async def test_overflow_catches_up_from_the_database(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast(queue_size=2)
    try:
        before = await _create(store, None, user, "before the follower")
        follower = FeedHub(store, broadcast, batch_size=3).follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = await _waiting_live(follower, events, before)
            made = [await _create(store, broadcast, user, f"n{i}") for i in range(8)]
            received = [await asyncio.wait_for(waiting, WAIT), *await _take(events, 7)]
            assert received == made
    finally:
        await broadcast.disconnect()


class LiveTaker:
    """A consumer's synchronous side (`follow(live=...)`): takes what it is handed while `accepting`."""

    def __init__(self) -> None:
        self.taken: list[FeedEvent] = []
        self.accepting = True
        self.failing = False

    def __call__(self, event: FeedEvent) -> bool:
        if self.failing:
            raise RuntimeError("the consumer failed")
        if self.accepting:
            self.taken.append(event)
        return self.accepting

    async def until_taken(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.taken) < count:
                await asyncio.sleep(0.01)


async def _parked(follower: FeedFollower, events: AsyncIterator[FeedEvent]) -> asyncio.Task[FeedEvent]:
    """Ask for the next event; return once the follower waits for a wake-up (what arrives now is handed over)."""
    waiting = asyncio.ensure_future(anext(events))
    async with asyncio.timeout(WAIT):
        while follower._subscription is None or follower._subscription._waiter is None:
            await asyncio.sleep(0.01)
    return waiting


async def test_live_events_are_handed_to_a_waiting_consumer_once_each_in_order(store: SqlStore, user: str) -> None:
    """Taken synchronously while the consumer waits; yielded instead when it cannot take one, and everything after
    that one is yielded too until it waits again: each event once, in order, whichever way it goes."""
    broadcast = await _memory_broadcast()
    live = LiveTaker()
    try:
        before = await _create(store, None, user, "before the follower")
        follower = FeedHub(store, broadcast, batch_size=10).follower(user)
        async with aclosing(follower.follow(None, live=live)) as events:
            waiting = await _waiting_live(follower, events, before)
            handed = [await _create(store, broadcast, user, f"live {i}") for i in range(3)]
            await live.until_taken(3)
            assert live.taken == handed and follower.last == handed[-1].seq
            assert not waiting.done()  # none of them was yielded as well
            live.accepting = False
            refused = await _create(store, broadcast, user, "refused")
            assert await asyncio.wait_for(waiting, WAIT) == refused
            live.accepting = True
            # The consumer is busy with `refused` (not waiting): these are queued and yielded, not handed over.
            queued = [await _create(store, broadcast, user, f"queued {i}") for i in range(2)]
            async with asyncio.timeout(WAIT):
                while follower._subscription is None or follower._subscription.qsize() < 2:
                    await asyncio.sleep(0.01)
            assert await _take(events, 2) == queued and len(live.taken) == 3
            waiting = await _parked(follower, events)
            again = await _create(store, broadcast, user, "handed again")
            await live.until_taken(4)
            assert live.taken[-1] == again and not waiting.done()
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    finally:
        await broadcast.disconnect()


async def test_a_gap_or_a_failing_consumer_is_not_handed_over(store: SqlStore, user: str) -> None:
    """A wake-up after a lost one goes to the database read, which yields both; one whose hand-over raises is
    yielded, so that the consumer meets the failure in its own task."""
    broadcast = await _memory_broadcast()
    live = LiveTaker()
    try:
        before = await _create(store, None, user, "before the follower")
        follower = FeedHub(store, broadcast, batch_size=10).follower(user)
        async with aclosing(follower.follow(None, live=live)) as events:
            waiting = await _waiting_live(follower, events, before)
            silent = await _create(store, None, user, "published nowhere")
            loud = await _create(store, broadcast, user, "published")
            assert await asyncio.wait_for(waiting, WAIT) == silent
            assert await _take(events, 1) == [loud]
            assert live.taken == []
            live.failing = True
            waiting = await _parked(follower, events)
            failed = await _create(store, broadcast, user, "its consumer fails")
            assert await asyncio.wait_for(waiting, WAIT) == failed
            assert live.taken == [] and follower.last == failed.seq
    finally:
        await broadcast.disconnect()


async def test_cursor_whose_events_were_purged_gets_resync(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast()
    try:
        first = await _create(store, broadcast, user)
        await _create(store, broadcast, user)
        await store.purge_before(datetime.now(UTC) + timedelta(seconds=1))
        follower = FeedHub(store, broadcast, batch_size=10).follower(user)
        async with aclosing(follower.follow(FeedCursor(store.epoch, first.seq))) as events:
            (resync,) = await _take(events, 1)
            assert resync.kind is EventKind.RESYNC and resync.seq == 2 and resync.unread_count == 2
            live = await _create(store, broadcast, user)
            assert await _take(events, 1) == [live]
    finally:
        await broadcast.disconnect()


async def test_cursor_ahead_of_the_feed_or_from_another_epoch_gets_resync(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast()
    try:
        await _create(store, broadcast, user)
        for cursor in (FeedCursor(store.epoch, 99), FeedCursor("otherdatabase", 1)):
            follower = FeedHub(store, broadcast, batch_size=10).follower(user)
            async with aclosing(follower.follow(cursor)) as events:
                (resync,) = await _take(events, 1)
                assert resync.kind is EventKind.RESYNC and resync.seq == 1
    finally:
        await broadcast.disconnect()


async def test_periodic_sync_delivers_a_lost_last_message(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast()
    hub = FeedHub(store, broadcast, batch_size=10)
    try:
        before = await _create(store, None, user, "before the follower")
        follower = hub.follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = await _waiting_live(follower, events, before)
            assert hub.users() == [user]
            lost = await _create(store, None, user, "its wake-up was lost, and nothing follows it")
            for _ in range(10):  # the follower runs: it waits for a wake-up that never comes
                await asyncio.sleep(0)
            assert not waiting.done()  # no gap to notice: only the sync can find it
            assert await hub.sync_once() == 1
            assert await asyncio.wait_for(waiting, WAIT) == lost
            assert await hub.sync_once() == 0
        assert hub.users() == []
    finally:
        await broadcast.disconnect()


class _GatedStore:
    """The store, with every read of the event log held until the test opens the gate; counts reads in flight."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.reading: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def events_after(self, user_id: str, after_seq: int, *, limit: int) -> list[FeedEvent]:
        self.reading[user_id] = self.reading.get(user_id, 0) + 1
        self.most[user_id] = max(self.most.get(user_id, 0), self.reading[user_id])
        try:
            await self.gate.wait()
            return await self._store.events_after(user_id, after_seq, limit=limit)
        finally:
            self.reading[user_id] -= 1


async def test_one_users_many_replays_do_not_queue_everyone_elses(store: SqlStore, user: str) -> None:
    """Twenty replays of one user take at most their own two slots of four: another user's replay still runs."""
    hog, other = user + "-hog", user + "-other"
    hog_start = await _create(store, None, hog, "start")
    for i in range(3):
        await _create(store, None, hog, f"backlog {i}")
    other_start = await _create(store, None, other, "start")
    missed = await _create(store, None, other, "missed")
    broadcast = await _memory_broadcast()
    gated = _GatedStore(store)
    hub = FeedHub(gated, broadcast, batch_size=10, replay_concurrency=4, replay_concurrency_per_user=2)  # type: ignore[arg-type]
    try:
        async with contextlib.AsyncExitStack() as stack:
            hog_streams = [
                await stack.enter_async_context(
                    aclosing(hub.follower(hog).follow(FeedCursor(store.epoch, hog_start.seq)))
                )
                for _ in range(20)
            ]
            hog_reads = [asyncio.ensure_future(anext(stream)) for stream in hog_streams]
            async with asyncio.timeout(WAIT):
                while gated.reading.get(hog, 0) < 2:
                    await asyncio.sleep(0.01)
            other_stream = await stack.enter_async_context(
                aclosing(hub.follower(other).follow(FeedCursor(store.epoch, other_start.seq)))
            )
            other_read = asyncio.ensure_future(anext(other_stream))
            async with asyncio.timeout(WAIT):
                while gated.reading.get(other, 0) < 1:  # it got a process slot while the hog's twenty wait
                    await asyncio.sleep(0.01)
            assert gated.reading[hog] == 2
            gated.gate.set()
            assert await asyncio.wait_for(other_read, WAIT) == missed
            for read in hog_reads:
                assert (await asyncio.wait_for(read, WAIT)).seq == hog_start.seq + 1
            assert gated.most[hog] == 2  # never more than the user's bound, across all twenty
    finally:
        await broadcast.disconnect()
