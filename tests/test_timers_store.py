"""Snooze and expiry in the store, on SQLite and PostgreSQL: counts, lists, one event per timer however many
processes fire them, and migration 0003 from 0002 with rows in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.test_inbox_store import _create, _fill_at_0001, assert_counts_are_the_recount, database_url
from tidings import migrate
from tidings.store import CategoryCounts, Counts, EventKind, NotFound, SqlStore, create_engine
from tidings.store.models import notifications

__all__ = ["database_url"]  # the fixture, shared with the migration test of 0002

HOUR = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_snoozed_notification_leaves_lists_and_counts_and_comes_back_on_top_unread(
    store: SqlStore, user: str
) -> None:
    a, _ = await _create(store, user, "a", category="comments")
    await _create(store, user, "b")
    await store.mark_read(notification_id=a.id, owner=user)  # read and seen: it will come back unread and unseen
    until = _now() + HOUR
    snoozed, event = await store.snooze(notification_id=a.id, owner=user, until=until)
    assert event is not None and event.kind is EventKind.SNOOZED and snoozed.snoozed_until == until
    assert (event.unread_count, event.unseen_count) == (1, 1) and event.category_counts == ()  # a counted nothing
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["b"]
    listed = await store.list_notifications(user_id=user, first=10, snoozed=True)
    assert [item.title for item in listed.items] == ["a"]
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10, snoozed=None)).items] == [
        "b",
        "a",
    ]
    assert await store.unread_notifications(user_id=user, first=10) != []
    same, none = await store.snooze(notification_id=a.id, owner=None, until=until)
    assert none is None and same == snoozed
    assert await store.next_due() == until

    assert await store.fire_due(now=until - timedelta(seconds=1), limit=10) == []
    [back] = await store.fire_due(now=until, limit=10)
    assert back.kind is EventKind.UNSNOOZED and back.notification is not None
    record = back.notification
    assert (record.read_at, record.seen_at, record.snoozed_until, record.seq) == (None, None, None, back.seq)
    assert (back.unread_count, back.unseen_count) == (2, 2)
    assert back.category_counts == (CategoryCounts("comments", 1, 1),)
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["a", "b"]
    assert await store.fire_due(now=until + HOUR, limit=10) == []  # once
    assert await store.next_due() is None
    assert await assert_counts_are_the_recount(store, user) == Counts(2, 2)
    # Marking all read up to a position taken before it came back leaves it unread: it is newer than that.
    result = await store.mark_all_read(user_id=user, up_to_seq=back.seq - 1)
    assert result.count == 1 and result.position.unread_count == 1


async def test_unsnoozing_brings_it_back_at_once_as_the_timer_would(store: SqlStore, user: str) -> None:
    a, _ = await _create(store, user, "a", category="comments")
    b, _ = await _create(store, user, "b", category="comments")
    await store.mark_read(notification_id=a.id, owner=user)
    until = _now() + HOUR
    await store.snooze(notification_id=a.id, owner=user, until=until)
    record, event = await store.unsnooze(notification_id=a.id, owner=user)
    assert event is not None and event.kind is EventKind.UNSNOOZED and event.notification == record
    assert (record.read_at, record.seen_at, record.snoozed_until, record.seq) == (None, None, None, event.seq)
    assert (event.unread_count, event.unseen_count) == (2, 2)
    assert event.category_counts == (CategoryCounts("comments", 2, 2),)
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["a", "b"]
    assert await store.next_due() is None
    assert await store.fire_due(now=until, limit=10) == []  # the timer it had does not fire too
    # Not snoozed (any more, or ever): returned as it is, no event; a service may unsnooze any user's.
    for notification in (a, b):
        same, none = await store.unsnooze(notification_id=notification.id, owner=None)
        assert none is None and same == await store.get_notification(notification.id, owner=None)
    assert [event.kind for event in await store.events_after(user, 0, limit=10)][-2:] == [
        EventKind.SNOOZED,
        EventKind.UNSNOOZED,
    ]
    assert await assert_counts_are_the_recount(store, user) == Counts(2, 2)
    with pytest.raises(NotFound):
        await store.unsnooze(notification_id=a.id, owner=f"{user}-other")
    await store.delete(notification_id=a.id, owner=user)
    with pytest.raises(NotFound):
        await store.unsnooze(notification_id=a.id, owner=user)


async def test_archive_ends_a_snooze_and_snoozing_an_archived_one_brings_it_back_to_the_inbox(
    store: SqlStore, user: str
) -> None:
    a, _ = await _create(store, user, "a", category="comments")
    await store.archive(notification_id=a.id, owner=user)
    snoozed, event = await store.snooze(notification_id=a.id, owner=user, until=_now() + HOUR)
    assert event is not None and snoozed.archived_at is None and event.unread_count == 0
    archived, event = await store.archive(notification_id=a.id, owner=user)
    assert event is not None and archived.snoozed_until is None and archived.archived_at is not None
    assert await store.next_due() is None
    await store.snooze(notification_id=a.id, owner=user, until=_now() + HOUR)
    [back] = await store.fire_due(now=_now() + 2 * HOUR, limit=10)
    assert back.notification is not None and back.notification.archived_at is None
    assert back.category_counts == (CategoryCounts("comments", 1, 1),)
    await assert_counts_are_the_recount(store, user)


async def test_an_expired_notification_leaves_lists_and_counts_with_one_expired_event(
    store: SqlStore, user: str
) -> None:
    expires = _now() + HOUR
    made, created = await _create(store, user, "short-lived", category="billing", expires_at=expires)
    assert made.expires_at == expires and created is not None and created.notification == made
    snoozed, _ = await _create(store, user, "snoozed and expiring", expires_at=expires)
    await store.snooze(notification_id=snoozed.id, owner=user, until=expires - timedelta(minutes=1))
    assert await store.next_due() == expires - timedelta(minutes=1)
    fired = await store.fire_due(now=expires, limit=10)
    # Both due at once: in the order they came due; the one whose expiry came too expires without coming back.
    assert [(event.kind, event.notification.title if event.notification else None) for event in fired] == [
        (EventKind.EXPIRED, "snoozed and expiring"),
        (EventKind.EXPIRED, "short-lived"),
    ]
    assert [(event.unread_count, event.unseen_count) for event in fired] == [(1, 1), (0, 0)]
    assert fired[1].category_counts == (CategoryCounts("billing", 0, 0),)
    assert (await store.list_notifications(user_id=user, first=10, archived=None, snoozed=None)).items == []
    assert await store.get_notification(made.id, owner=None) is None
    assert await store.fire_due(now=expires + HOUR, limit=10) == []
    assert await store.next_due() is None
    await assert_counts_are_the_recount(store, user)


async def test_several_processes_firing_at_once_make_one_event_per_timer(store: SqlStore, user: str) -> None:
    users = [f"{user}-{index}" for index in range(3)]
    soon = _now() + HOUR
    ids = set()
    for index in range(24):
        owner = users[index % 3]
        if index % 2:
            made, _ = await _create(store, owner, f"n{index}", expires_at=soon)
        else:
            made, _ = await _create(store, owner, f"n{index}", category="comments")
            await store.snooze(notification_id=made.id, owner=owner, until=soon)
        ids.add(made.id)
    others = [SqlStore(create_engine(store.engine.url.render_as_string(hide_password=False))) for _ in range(2)]
    try:
        for other in others:
            await other.start()
        batches = await asyncio.gather(
            *(process.fire_due(now=soon, limit=5) for process in [store, *others] for _ in range(3))
        )
        # Whatever each found due, every timer fired once (a batch of 5 per call may leave some: fire the rest).
        rest = await store.fire_due(now=soon, limit=100)
        fired = [event for batch in [*batches, rest] for event in batch]
        assert sorted(event.notification.id for event in fired if event.notification) == sorted(ids)
        assert await store.fire_due(now=soon, limit=100) == []
    finally:
        for other in others:
            await other.close()
    for owner in users:
        log = await store.events_after(owner, 0, limit=100)
        assert [event.seq for event in log] == list(range(1, len(log) + 1))
        kinds = [event.kind for event in log]
        assert kinds.count(EventKind.UNSNOOZED) == 4 and kinds.count(EventKind.EXPIRED) == 4
        assert await assert_counts_are_the_recount(store, owner) == Counts(4, 4)


async def test_migration_0003_brings_rows_and_counts_forward(database_url: str) -> None:
    store = SqlStore(create_engine(database_url))
    try:
        await migrate.upgrade(store.engine, "0001")
        rows = await _fill_at_0001(store.engine, "alice", "bob")
        await migrate.upgrade(store.engine, "0002")
        await migrate.upgrade(store.engine)
        assert await migrate.current_revision(store.engine) == migrate.head_revision()  # through 0003 and later ones
        await store.start()

        page = await store.list_notifications(user_id="alice", first=10)
        assert [(item.title, item.snoozed_until, item.expires_at) for item in page.items] == [
            ("unread", None, None),
            ("read", None, None),
        ]
        assert await store.next_due() is None
        assert [event.kind.value for event in await store.events_after("alice", 0, limit=10)] == [
            "CREATED", "CREATED", "CREATED", "READ", "DELETED",
        ]  # fmt: skip
        # The timers work on the old rows.
        until = _now() + HOUR
        await store.snooze(notification_id=rows["unread"]["id"], owner="alice", until=until)
        assert await store.counts("alice") == Counts(0, 0)
        [back] = await store.fire_due(now=until, limit=10)
        assert back.kind is EventKind.UNSNOOZED and back.seq == 7
        assert await assert_counts_are_the_recount(store, "alice") == Counts(1, 1)
        column = notifications.c
        async with store.engine.connect() as conn:
            seqs = (await conn.execute(sa.select(column.title, column.seq).where(column.user_id == "alice"))).all()
        assert sorted(seqs, key=lambda row: row.seq) == [("read", 1), ("deleted", 3), ("unread", 7)]
    finally:
        await store.close()
