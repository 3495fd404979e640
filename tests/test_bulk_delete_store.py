"""Bulk delete in the store, on SQLite and PostgreSQL: one event naming the range, bounded, the counts kept right."""

from __future__ import annotations

from tests.test_inbox_store import _create, assert_counts_are_the_recount
from tidings.store import CategoryCounts, Counts, DeleteFilter, EventKind, SqlStore

ALL = DeleteFilter()


async def test_read_ones_go_in_one_event_and_the_counts_stay(store: SqlStore, user: str) -> None:
    read, _ = await _create(store, user, "read", category="comments")
    unread, _ = await _create(store, user, "unread", category="comments")
    archived_read, _ = await _create(store, user, "archived read")
    await store.mark_read(notification_id=read.id, owner=user)
    await store.mark_read(notification_id=archived_read.id, owner=user)
    await store.archive(notification_id=archived_read.id, owner=user)
    result = await store.delete_all(user_id=user, which=DeleteFilter(read=True), up_to_seq=None, max_rows=100)
    event = result.event
    assert event is not None and event.kind == EventKind.BULK_DELETED and event.deleted == DeleteFilter(read=True)
    assert (result.count, result.has_more, event.count, event.up_to_seq) == (2, False, 2, archived_read.seq)
    assert (event.unread_count, event.unseen_count, event.category_counts) == (1, 1, ())
    page = await store.list_notifications(user_id=user, first=10, archived=None)
    assert [item.id for item in page.items] == [unread.id]
    assert await store.get_notification(read.id, owner=user) is None
    assert await assert_counts_are_the_recount(store, user) == Counts(1, 1)
    again = await store.delete_all(user_id=user, which=DeleteFilter(read=True), up_to_seq=None, max_rows=100)
    assert (again.count, again.event, again.position.seq) == (0, None, event.seq)


async def test_a_category_or_the_archive_alone_and_their_counts(store: SqlStore, user: str) -> None:
    await _create(store, user, "c1", category="comments")
    await _create(store, user, "c2", category="comments")
    kept, _ = await _create(store, user, "bill", category="billing")
    boxed, _ = await _create(store, user, "boxed", category="billing")
    await store.archive(notification_id=boxed.id, owner=user)
    tab = await store.delete_all(user_id=user, which=DeleteFilter(category="comments"), up_to_seq=None, max_rows=100)
    assert tab.event is not None and tab.count == 2
    assert (tab.event.unread_count, tab.event.unseen_count) == (1, 1)
    assert tab.event.category_counts == (CategoryCounts("comments", 0, 0),)
    archive = await store.delete_all(user_id=user, which=DeleteFilter(archived=True), up_to_seq=None, max_rows=100)
    assert archive.count == 1 and archive.event is not None and archive.event.category_counts == ()
    page = await store.list_notifications(user_id=user, first=10, archived=None)
    assert [item.id for item in page.items] == [kept.id]
    assert await assert_counts_are_the_recount(store, user) == Counts(1, 1)


async def test_past_the_bound_the_oldest_go_first_and_more_remain(store: SqlStore, user: str) -> None:
    made = [(await _create(store, user, f"n{n}"))[0] for n in range(5)]
    first = await store.delete_all(user_id=user, which=ALL, up_to_seq=None, max_rows=2)
    assert (first.count, first.has_more) == (2, True)
    assert first.event is not None and first.event.up_to_seq == made[1].seq
    page = await store.list_notifications(user_id=user, first=10)
    assert [item.id for item in page.items] == [record.id for record in reversed(made[2:])]
    second = await store.delete_all(user_id=user, which=ALL, up_to_seq=None, max_rows=2)
    assert (second.count, second.has_more) == (2, True)
    last = await store.delete_all(user_id=user, which=ALL, up_to_seq=None, max_rows=2)
    assert (last.count, last.has_more) == (1, False) and last.position.unread_count == 0
    assert await assert_counts_are_the_recount(store, user) == Counts()


async def test_up_to_a_position_leaves_later_ones_and_replays_byte_for_byte(store: SqlStore, user: str) -> None:
    await _create(store, user, "early", data={"b": 1, "a": 2})
    _, looked = await _create(store, user, "looked at")
    assert looked is not None
    late, _ = await _create(store, user, "late")
    result = await store.delete_all(
        user_id=user, which=DeleteFilter(read=False, archived=False), up_to_seq=looked.seq, max_rows=100
    )
    assert result.count == 2 and result.event is not None and result.event.up_to_seq == looked.seq
    assert [item.id for item in (await store.list_notifications(user_id=user, first=10)).items] == [late.id]
    replayed = await store.events_after(user, result.event.seq - 1, limit=10)
    assert [event.to_json() for event in replayed] == [result.event.to_json()]
