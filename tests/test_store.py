"""The store contract, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event

from tidings.store import EventKind, FeedEvent, IdempotencyConflict, NotFound, NotificationType, SqlStore


async def _create(store: SqlStore, user: str, title: str = "t", **fields: object) -> tuple:  # type: ignore[type-arg]
    values: dict[str, object] = {"type": NotificationType.INFO, "message": "m", "data": None, **fields}
    return await store.create_notification(user_id=user, title=title, **values)  # type: ignore[arg-type]


async def test_creates_take_consecutive_positions_per_user(store: SqlStore, user: str) -> None:
    other = user + "-other"
    events = [(await _create(store, user, f"n{i}"))[1] for i in range(3)]
    other_event = (await _create(store, other))[1]
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.unread_count for e in events] == [1, 2, 3]
    assert other_event.seq == 1 and other_event.unread_count == 1
    assert (await store.feed_position(user)).seq == 3


async def test_replayed_events_equal_the_live_ones(store: SqlStore, user: str) -> None:
    record, created = await _create(store, user, data={"url": "/x", "n": [1, 2]})
    _, read = await store.mark_read(notification_id=record.id, owner=user)
    deleted_record, deleted = await store.delete(notification_id=record.id, owner=user)
    replayed = await store.events_after(user, 0, limit=10)
    assert replayed == [created, read, deleted]
    assert [FeedEvent.from_json(e.to_json()) for e in replayed] == replayed
    assert replayed[0].notification is not None and replayed[0].notification.read_at is None
    assert deleted_record.read_at is not None


@pytest.mark.parametrize("idempotency_key", [None, "key-1"])
async def test_replayed_events_are_the_live_ones_byte_for_byte(
    store: SqlStore, user: str, idempotency_key: str | None
) -> None:
    """Equal as JSON text, not only as values: PostgreSQL's jsonb reorders object keys, the event must not differ."""
    data = {"zz": 1, "a": {"longer": [1, {"yy": None, "b": "ü"}], "c": True}}
    record, created = await _create(store, user, data=data, idempotency_key=idempotency_key)
    _, read = await store.mark_read(notification_id=record.id, owner=user)
    replayed = await store.events_after(user, 0, limit=10)
    assert created is not None and read is not None
    assert [event.to_json() for event in replayed] == [created.to_json(), read.to_json()]
    assert created.notification == record


async def test_idempotency_key_returns_the_original_and_logs_nothing(store: SqlStore, user: str) -> None:
    first, event = await _create(store, user, idempotency_key="order-1")
    again, no_event = await _create(store, user, idempotency_key="order-1")
    assert event is not None and no_event is None
    assert again == first
    assert len(await store.events_after(user, 0, limit=10)) == 1
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, "a different title", idempotency_key="order-1")
    other, other_event = await _create(store, user + "-b", idempotency_key="order-1")
    assert other.id != first.id and other_event is not None  # keys are per user


async def test_concurrent_creates_with_one_key_make_one_notification(store: SqlStore, user: str) -> None:
    results = await asyncio.gather(*(_create(store, user, idempotency_key="same") for _ in range(10)))
    assert len({record.id for record, _ in results}) == 1
    assert sum(1 for _, event in results if event is not None) == 1


async def test_mark_read_once_makes_one_event(store: SqlStore, user: str) -> None:
    record, _ = await _create(store, user)
    read, event = await store.mark_read(notification_id=record.id, owner=user)
    assert event is not None and event.kind is EventKind.READ and event.unread_count == 0
    assert read.read_at is not None
    again, none = await store.mark_read(notification_id=record.id, owner=None)
    assert none is None and again.read_at == read.read_at


async def test_someone_elses_notification_is_not_found(store: SqlStore, user: str) -> None:
    record, _ = await _create(store, user)
    with pytest.raises(NotFound):
        await store.mark_read(notification_id=record.id, owner="intruder")
    with pytest.raises(NotFound):
        await store.delete(notification_id=record.id, owner="intruder")
    assert await store.get_notification(record.id, owner="intruder") is None
    assert (await store.get_notification(record.id, owner=user)) == record


async def test_delete_keeps_the_last_state_in_its_event(store: SqlStore, user: str) -> None:
    record, _ = await _create(store, user)
    _, event = await store.delete(notification_id=record.id, owner=user)
    assert event.kind is EventKind.DELETED and event.notification == record and event.unread_count == 0
    assert await store.get_notification(record.id, owner=None) is None
    with pytest.raises(NotFound):
        await store.delete(notification_id=record.id, owner=user)
    page = await store.list_notifications(user_id=user, first=10)
    assert page.items == [] and page.position.unread_count == 0


async def test_mark_all_read_up_to_a_position_leaves_later_ones_unread(store: SqlStore, user: str) -> None:
    for i in range(3):
        await _create(store, user, f"n{i}")
    seen = (await store.feed_position(user)).seq
    late, _ = await _create(store, user, "arrived after the user looked")
    result = await store.mark_all_read(user_id=user, up_to_seq=seen)
    assert result.count == 3 and result.position.unread_count == 1
    assert result.event is not None and result.event.kind is EventKind.ALL_READ and result.event.up_to_seq == seen
    assert [n.id for n in await store.unread_notifications(user_id=user, first=10)] == [late.id]
    nothing = await store.mark_all_read(user_id=user, up_to_seq=seen)
    assert nothing.count == 0 and nothing.event is None
    everything = await store.mark_all_read(user_id=user, up_to_seq=None)
    assert everything.count == 1 and everything.position.unread_count == 0
    kinds = [e.kind for e in await store.events_after(user, 0, limit=20)]
    assert kinds.count(EventKind.ALL_READ) == 2


async def test_pages_are_newest_first_with_filters(store: SqlStore, user: str) -> None:
    made = [
        (await _create(store, user, f"n{i}", type=NotificationType.WARNING if i % 2 else NotificationType.INFO))[0]
        for i in range(5)
    ]
    await store.mark_read(notification_id=made[0].id, owner=user)
    first = await store.list_notifications(user_id=user, first=2)
    assert [n.title for n in first.items] == ["n4", "n3"] and first.has_next_page
    assert first.position.seq == 6 and first.position.unread_count == 4
    rest = await store.list_notifications(user_id=user, first=10, before_seq=first.items[-1].seq)
    assert [n.title for n in rest.items] == ["n2", "n1", "n0"] and not rest.has_next_page
    unread = await store.list_notifications(user_id=user, first=10, read=False)
    assert [n.title for n in unread.items] == ["n4", "n3", "n2", "n1"]
    read = await store.list_notifications(user_id=user, first=10, read=True)
    assert [n.title for n in read.items] == ["n0"]
    warnings = await store.list_notifications(user_id=user, first=10, type=NotificationType.WARNING)
    assert [n.title for n in warnings.items] == ["n3", "n1"]


async def test_fifty_concurrent_creates_are_gap_free_and_ordered(store: SqlStore, user: str) -> None:
    results = await asyncio.gather(*(_create(store, user, f"n{i}") for i in range(50)))
    seqs = sorted(event.seq for _, event in results)
    assert seqs == list(range(1, 51))
    replay = await store.events_after(user, 0, limit=100)
    assert [e.seq for e in replay] == seqs
    assert [e.unread_count for e in replay] == seqs


async def test_purge_forgets_old_events(store: SqlStore, user: str) -> None:
    for i in range(3):
        await _create(store, user, f"n{i}")
    removed, _ = await store.purge_before(datetime.now(UTC) + timedelta(seconds=1))
    assert removed >= 3
    assert await store.events_after(user, 0, limit=10) == []
    assert (await store.feed_position(user)).seq == 3  # positions never go back


async def test_events_after_pages_in_batches(store: SqlStore, user: str) -> None:
    for i in range(7):
        await _create(store, user, f"n{i}")
    assert [e.seq for e in await store.events_after(user, 2, limit=3)] == [3, 4, 5]
    assert [e.seq for e in await store.events_after(user, 5, limit=3)] == [6, 7]


async def test_purge_of_a_large_backlog_commits_in_batches(store: SqlStore, user: str) -> None:
    """Retention deletes in bounded batches, each its own transaction, and removes the whole backlog."""
    for i in range(7):
        created = await _create(store, user, f"n{i}")
    await store.delete(notification_id=created[0].id, owner=user)
    commits: list[None] = []

    def on_commit(_: object) -> None:
        commits.append(None)

    sync_engine = store.engine.sync_engine
    sa_event.listen(sync_engine, "commit", on_commit)
    try:
        removed = await store.purge_before(datetime.now(UTC) + timedelta(seconds=1), batch_size=3)
    finally:
        sa_event.remove(sync_engine, "commit", on_commit)
    assert removed == (8, 1)  # seven creates and one delete; one tombstone
    assert len(commits) == 3 + 1  # events: 3, 3, then 2 (a short batch ends it); tombstones: 1 (short too)
    assert await store.events_after(user, 0, limit=10) == []
    assert (await store.feed_position(user)).seq == 8


async def test_a_deleted_notifications_key_matches_until_retention_forgets_it(store: SqlStore, user: str) -> None:
    """The idempotency window the README states: as long as the row or its tombstone is kept, then free again."""
    original, _ = await _create(store, user, "once", idempotency_key="k-1")
    await store.delete(notification_id=original.id, owner=user)
    retried, event = await _create(store, user, "once", idempotency_key="k-1")
    assert retried.id == original.id and event is None  # still the original: nothing new, nothing delivered
    await store.purge_before(datetime.now(UTC) + timedelta(seconds=1))
    after_retention, event = await _create(store, user, "once", idempotency_key="k-1")
    assert after_retention.id != original.id and event is not None
