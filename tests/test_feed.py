"""The feed follower on each database: replay then live, no gap, no duplicate, RESYNC when history is gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from tidings.broadcast import Broadcast
from tidings.cursors import FeedCursor
from tidings.feed import FeedHub, user_channel
from tidings.store import EventKind, FeedEvent, NotificationType, SqlStore

WAIT = 10.0


async def _create(store: SqlStore, broadcast: Broadcast | None, user: str, title: str = "t") -> FeedEvent:
    _, event = await store.create_notification(
        user_id=user, type=NotificationType.INFO, title=title, message="m", data=None
    )
    assert event is not None
    if broadcast is not None:
        await broadcast.publish(user_channel(user), event.to_json())
    return event


async def _take(events: AsyncIterator[FeedEvent], count: int) -> list[FeedEvent]:
    async with asyncio.timeout(WAIT):
        return [await anext(events) for _ in range(count)]


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
        follower = FeedHub(store, broadcast, batch_size=10).follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)  # the follower is subscribed and waiting live
            silent = await _create(store, None, user, "published nowhere")
            loud = await _create(store, broadcast, user, "published")
            assert await asyncio.wait_for(waiting, WAIT) == silent
            assert await _take(events, 1) == [loud]
    finally:
        await broadcast.disconnect()


async def test_overflow_catches_up_from_the_database(store: SqlStore, user: str) -> None:
    broadcast = await _memory_broadcast(queue_size=2)
    try:
        follower = FeedHub(store, broadcast, batch_size=3).follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            made = [await _create(store, broadcast, user, f"n{i}") for i in range(8)]
            received = [await asyncio.wait_for(waiting, WAIT), *await _take(events, 7)]
            assert received == made
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
        follower = hub.follower(user)
        async with aclosing(follower.follow(None)) as events:
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            assert hub.users() == [user]
            lost = await _create(store, None, user, "its wake-up was lost, and nothing follows it")
            await asyncio.sleep(0.05)
            assert not waiting.done()  # no gap to notice: only the sync can find it
            assert await hub.sync_once() == 1
            assert await asyncio.wait_for(waiting, WAIT) == lost
            assert await hub.sync_once() == 0
        assert hub.users() == []
    finally:
        await broadcast.disconnect()
