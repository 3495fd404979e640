"""Seen, unread again, archive and categories in the store, on SQLite and PostgreSQL; migration 0002 with data in it."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tests._server import PostgresDatabase
from tidings import migrate
from tidings.store import CategoryCounts, Counts, EventKind, IdempotencyConflict, NotificationType, SqlStore
from tidings.store.models import JSONType, UTCDateTime, category_counts, feeds, notifications


async def _create(store: SqlStore, user: str, title: str = "t", **fields: Any) -> Any:
    values: dict[str, Any] = {"type": NotificationType.INFO, "message": "m", "data": None, **fields}
    return await store.create_notification(user_id=user, title=title, **values)


async def assert_counts_are_the_recount(store: SqlStore, user: str) -> Counts:
    """The kept counts (feed row, category rows) equal a count of the rows, by the rule of what is counted."""
    inbox = sa.and_(
        notifications.c.user_id == user,
        notifications.c.deleted_at.is_(None),
        notifications.c.archived_at.is_(None),
        notifications.c.snoozed_until.is_(None),
    )
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(notifications.c.category, notifications.c.read_at, notifications.c.seen_at).where(inbox)
            )
        ).all()
        feed = (
            await conn.execute(sa.select(feeds.c.unread_count, feeds.c.unseen_count).where(feeds.c.user_id == user))
        ).one()
        kept = {
            row.category: Counts(row.unread_count, row.unseen_count)
            for row in await conn.execute(sa.select(category_counts).where(category_counts.c.user_id == user))
        }
    recounted: dict[str | None, Counts] = {}
    for row in rows:
        counted = Counts(int(row.read_at is None), int(row.seen_at is None))
        recounted[row.category] = recounted.get(row.category, Counts()) + counted
    total = sum(recounted.values(), Counts())
    assert Counts(feed.unread_count, feed.unseen_count) == total
    assert {c: n for c, n in kept.items() if n} == {c: n for c, n in recounted.items() if c is not None and n}
    return total


async def test_read_implies_seen_and_unread_again_stays_seen(store: SqlStore, user: str) -> None:
    record, created = await _create(store, user, category="comments")
    assert created.unread_count == 1 and created.unseen_count == 1 and created.category == "comments"
    assert created.category_counts == (CategoryCounts("comments", 1, 1),)
    read, event = await store.mark_read(notification_id=record.id, owner=user)
    assert event is not None and (event.unread_count, event.unseen_count) == (0, 0)
    assert read.read_at is not None and read.seen_at == read.read_at
    unread, event = await store.mark_unread(notification_id=record.id, owner=user)
    assert event is not None and event.kind is EventKind.UNREAD and event.category == "comments"
    assert (event.unread_count, event.unseen_count) == (1, 0)
    assert event.category_counts == (CategoryCounts("comments", 1, 0),)
    assert unread.read_at is None and unread.seen_at == read.seen_at
    again, none = await store.mark_unread(notification_id=record.id, owner=None)
    assert none is None and again == unread
    assert await store.counts(user, category="comments") == Counts(1, 0)
    await assert_counts_are_the_recount(store, user)


async def test_mark_all_seen_clears_the_badge_up_to_a_position_and_leaves_unread(store: SqlStore, user: str) -> None:
    for index in range(3):
        await _create(store, user, f"n{index}", category="comments" if index else None)
    looked = (await store.feed_position(user)).seq
    await _create(store, user, "arrived after the user looked", category="comments")
    result = await store.mark_all_seen(user_id=user, up_to_seq=looked)
    assert result.count == 3 and result.event is not None and result.event.kind is EventKind.ALL_SEEN
    assert result.event.up_to_seq == looked and result.event.count == 3 and result.event.category is None
    assert (result.position.unread_count, result.position.unseen_count) == (4, 1)
    assert result.event.category_counts == (CategoryCounts("comments", 3, 1),)  # the uncategorized one: no entry
    assert await store.counts(user, category="comments") == Counts(3, 1)
    nothing = await store.mark_all_seen(user_id=user, up_to_seq=looked)
    assert nothing.count == 0 and nothing.event is None
    page = await store.list_notifications(user_id=user, first=10)
    assert [item.seen_at is not None for item in page.items] == [False, True, True, True]
    assert all(item.read_at is None for item in page.items)
    await assert_counts_are_the_recount(store, user)


async def test_mark_all_read_marks_seen_too(store: SqlStore, user: str) -> None:
    first, _ = await _create(store, user, category="billing")
    await _create(store, user, category="comments")
    await store.mark_all_seen(user_id=user, up_to_seq=1)
    result = await store.mark_all_read(user_id=user, up_to_seq=None)
    assert result.count == 2 and (result.position.unread_count, result.position.unseen_count) == (0, 0)
    assert result.event is not None
    assert result.event.category_counts == (CategoryCounts("billing", 0, 0), CategoryCounts("comments", 0, 0))
    assert await store.category_counts(user) == [CategoryCounts("billing", 0, 0), CategoryCounts("comments", 0, 0)]
    seen_first = await store.get_notification(first.id, owner=user)
    assert seen_first is not None and seen_first.seen_at is not None and seen_first.read_at is not None
    assert seen_first.seen_at < seen_first.read_at  # seen when the inbox was opened, read later
    await assert_counts_are_the_recount(store, user)


async def test_archived_ones_leave_the_inbox_and_its_counts(store: SqlStore, user: str) -> None:
    unread, _ = await _create(store, user, "unread", category="comments")
    read, _ = await _create(store, user, "read", category="comments")
    await store.mark_read(notification_id=read.id, owner=user)
    archived, event = await store.archive(notification_id=unread.id, owner=user)
    assert event is not None and event.kind is EventKind.ARCHIVED and archived.archived_at is not None
    assert (event.unread_count, event.unseen_count) == (0, 0)
    assert await store.counts(user, category="comments") == Counts(0, 0)
    assert (await store.archive(notification_id=unread.id, owner=user))[1] is None
    # Read, unread again and delete while archived: the counts do not move.
    assert (await store.mark_read(notification_id=unread.id, owner=user))[1].unread_count == 0  # type: ignore[union-attr]
    assert (await store.mark_unread(notification_id=unread.id, owner=user))[1].unread_count == 0  # type: ignore[union-attr]
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["read"]
    only = await store.list_notifications(user_id=user, first=10, archived=True)
    assert [item.title for item in only.items] == ["unread"]
    both = await store.list_notifications(user_id=user, first=10, archived=None, category="comments")
    assert [item.title for item in both.items] == ["read", "unread"]
    assert await store.unread_notifications(user_id=user, first=10) == []
    back, event = await store.unarchive(notification_id=unread.id, owner=user)
    assert event is not None and event.kind is EventKind.UNARCHIVED and back.archived_at is None
    assert (event.unread_count, event.unseen_count) == (1, 0)  # seen when it was read while archived
    assert (await store.unarchive(notification_id=unread.id, owner=user))[1] is None
    await assert_counts_are_the_recount(store, user)
    _, deleted = await store.delete(notification_id=unread.id, owner=user)
    assert deleted.unread_count == 0
    await assert_counts_are_the_recount(store, user)


async def test_archive_all_read_is_one_event_up_to_a_position(store: SqlStore, user: str) -> None:
    made = [(await _create(store, user, f"n{index}", category=f"c{index % 2}"))[0] for index in range(4)]
    for record in made[:3]:
        await store.mark_read(notification_id=record.id, owner=user)
    looked = (await store.feed_position(user)).seq
    late, _ = await _create(store, user, "late")
    await store.mark_read(notification_id=late.id, owner=user)
    result = await store.archive_all_read(user_id=user, up_to_seq=looked)
    assert result.count == 3 and result.event is not None and result.event.kind is EventKind.ALL_ARCHIVED
    assert (result.position.unread_count, result.position.unseen_count) == (1, 1)
    assert result.event.category_counts == ()  # read ones count nothing: no category moved
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["late", "n3"]
    assert (await store.archive_all_read(user_id=user, up_to_seq=looked)).event is None
    await assert_counts_are_the_recount(store, user)


async def test_replayed_inbox_events_are_the_live_ones_byte_for_byte(store: SqlStore, user: str) -> None:
    data = {"zz": 1, "a": {"b": [1, None]}}
    live = []
    record, event = await _create(store, user, data=data, category="comments")
    live.append(event)
    live.append((await store.mark_all_seen(user_id=user, up_to_seq=None)).event)
    live.append((await store.mark_read(notification_id=record.id, owner=user))[1])
    live.append((await store.mark_unread(notification_id=record.id, owner=user))[1])
    live.append((await store.archive(notification_id=record.id, owner=user))[1])
    live.append((await store.unarchive(notification_id=record.id, owner=user))[1])
    live.append((await store.mark_read(notification_id=record.id, owner=user))[1])
    live.append((await store.archive_all_read(user_id=user, up_to_seq=None)).event)
    replayed = await store.events_after(user, 0, limit=20)
    assert [event.to_json() for event in replayed] == [event.to_json() for event in live]  # type: ignore[union-attr]
    assert [event.kind for event in replayed] == [
        EventKind.CREATED, EventKind.ALL_SEEN, EventKind.READ, EventKind.UNREAD, EventKind.ARCHIVED,
        EventKind.UNARCHIVED, EventKind.READ, EventKind.ALL_ARCHIVED,
    ]  # fmt: skip
    assert [event.category for event in replayed] == ["comments", None, *["comments"] * 5, None]


async def test_concurrent_changes_keep_the_counts_equal_to_a_recount(store: SqlStore, user: str) -> None:
    """Creates (PostgreSQL's one-statement path among them), reads, unreads, archives and bulk actions at once."""
    made = [(await _create(store, user, f"n{index}", category=f"c{index % 3}"))[0] for index in range(9)]
    actions = [store.mark_read, store.mark_unread, store.archive, store.unarchive]
    changes = [
        actions[index % len(actions)](notification_id=made[(index * 5) % len(made)].id, owner=user)
        for index in range(24)
    ]
    bulk = [store.mark_all_seen(user_id=user, up_to_seq=None), store.archive_all_read(user_id=user, up_to_seq=None)]
    creates = [_create(store, user, f"late{index}", category=f"c{index % 2}") for index in range(6)]
    await asyncio.gather(*changes, *bulk, *creates, store.mark_all_read(user_id=user, up_to_seq=12))
    total = await assert_counts_are_the_recount(store, user)
    replayed = await store.events_after(user, 0, limit=100)
    assert [event.seq for event in replayed] == list(range(1, len(replayed) + 1))
    assert (replayed[-1].unread_count, replayed[-1].unseen_count) == (total.unread, total.unseen)


async def test_idempotency_keys_tell_categories_apart(store: SqlStore, user: str) -> None:
    first, _ = await _create(store, user, idempotency_key="k", category="comments")
    again, no_event = await _create(store, user, idempotency_key="k", category="comments")
    assert again == first and no_event is None
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, idempotency_key="k", category="billing")
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, idempotency_key="k")


# -- migration 0002 -----------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
        return
    database = PostgresDatabase()
    await database.create()
    try:
        yield database.url.replace("postgresql://", "postgresql+asyncpg://")
    finally:
        await database.drop()


# The tables as revision 0001 made them: what a database of the previous release holds.
_FEEDS_0001 = sa.table("user_feeds", sa.column("user_id"), sa.column("last_seq"), sa.column("unread_count"))
_NOTIFICATIONS_0001 = sa.table(
    "notifications",
    *(sa.column(name) for name in ("id", "user_id", "seq", "type", "title", "message", "idempotency_key")),
    sa.column("request_hash"),
    sa.column("data", JSONType),
    *(sa.column(name, UTCDateTime()) for name in ("read_at", "created_at", "deleted_at")),
)
_EVENTS_0001 = sa.table(
    "notification_events",
    *(sa.column(name) for name in ("user_id", "seq", "kind", "notification_id", "unread_count")),
    sa.column("snapshot", JSONType),
    sa.column("created_at", UTCDateTime()),
)


def _hash_0001(type_: str, title: str, message: str, data: dict[str, Any] | None) -> str:
    return hashlib.sha256(orjson.dumps([type_, title, message, data], option=orjson.OPT_SORT_KEYS)).hexdigest()


def _snapshot_0001(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as the previous release wrote it: no seen, archive or category keys."""
    return {
        "id": row["id"], "user_id": row["user_id"], "seq": row["seq"], "type": row["type"], "title": row["title"],
        "message": row["message"], "data": row["data"], "created_at": row["created_at"].isoformat(),
        "read_at": row["read_at"].isoformat() if row["read_at"] else None,
    }  # fmt: skip


async def _fill_at_0001(engine: Any, alice: str, bob: str) -> dict[str, dict[str, Any]]:
    """Alice: one read, one unread, one deleted while unread (five events); Bob: one unread with an idempotency key."""
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def row(user: str, seq: int, title: str, **fields: Any) -> dict[str, Any]:
        values = {
            **{"id": str(uuid.uuid4()), "user_id": user, "seq": seq, "type": "INFO", "title": title},
            **{"message": f"{title}!", "data": {"n": seq}, "created_at": start + timedelta(minutes=seq)},
            **{"read_at": None, "deleted_at": None, "idempotency_key": None, "request_hash": None},
        }
        return {**values, **fields}

    keyed_hash = _hash_0001("INFO", "keyed", "keyed!", {"n": 1})
    rows = {
        "read": row(alice, 1, "read", read_at=start + timedelta(minutes=4)),
        "unread": row(alice, 2, "unread"),
        "deleted": row(alice, 3, "deleted", deleted_at=start + timedelta(minutes=5)),
        "keyed": row(bob, 1, "keyed", idempotency_key="order-1", request_hash=keyed_hash),
    }
    created = {**rows["read"], "read_at": None}
    log = [
        (alice, 1, "CREATED", created, 1),
        (alice, 2, "CREATED", rows["unread"], 2),
        (alice, 3, "CREATED", rows["deleted"], 3),
        (alice, 4, "READ", rows["read"], 2),
        (alice, 5, "DELETED", rows["deleted"], 1),
        (bob, 1, "CREATED", rows["keyed"], 1),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            _FEEDS_0001.insert(),
            [{"user_id": alice, "last_seq": 5, "unread_count": 1}, {"user_id": bob, "last_seq": 1, "unread_count": 1}],
        )
        await conn.execute(_NOTIFICATIONS_0001.insert(), list(rows.values()))
        logged = [
            {"user_id": user, "seq": seq, "kind": kind, "notification_id": snapshot["id"],
             "snapshot": _snapshot_0001(snapshot), "unread_count": unread, "created_at": start}
            for user, seq, kind, snapshot, unread in log
        ]  # fmt: skip
        await conn.execute(_EVENTS_0001.insert(), logged)
    return rows


async def test_migration_0002_brings_rows_and_counts_forward(database_url: str) -> None:
    from tidings.store import create_engine

    alice, bob = "alice", "bob"
    store = SqlStore(create_engine(database_url))
    try:
        await migrate.upgrade(store.engine, "0001")
        rows = await _fill_at_0001(store.engine, alice, bob)
        await migrate.upgrade(store.engine)  # through 0002 and every later revision: the store is the head's
        assert await migrate.current_revision(store.engine) == migrate.head_revision()
        await store.start()

        # Seen was read; nothing is archived or categorized; every unseen count is the unread count of its moment.
        assert await store.counts(alice) == Counts(1, 1) and await store.counts(bob) == Counts(1, 1)
        assert await assert_counts_are_the_recount(store, alice) == Counts(1, 1)
        page = await store.list_notifications(user_id=alice, first=10)
        assert [item.title for item in page.items] == ["unread", "read"]
        assert [(item.seen_at, item.archived_at, item.category) for item in page.items] == [
            (None, None, None),
            (rows["read"]["read_at"], None, None),
        ]
        assert (page.position.seq, page.position.unread_count, page.position.unseen_count) == (5, 1, 1)
        replayed = await store.events_after(alice, 0, limit=10)
        assert [(event.kind.value, event.unread_count, event.unseen_count) for event in replayed] == [
            ("CREATED", 1, 1), ("CREATED", 2, 2), ("CREATED", 3, 3), ("READ", 2, 2), ("DELETED", 1, 1),
        ]  # fmt: skip
        read_event = replayed[3].notification
        assert read_event is not None and read_event.seen_at == read_event.read_at == rows["read"]["read_at"]
        assert store.epoch  # the epoch of revision 0001 stays: old cursors keep working

        # A retry across the upgrade still finds its key; the new actions work on the old rows.
        original, none = await _create(store, bob, "keyed", message="keyed!", data={"n": 1}, idempotency_key="order-1")
        assert none is None and original.id == rows["keyed"]["id"]
        seen = await store.mark_all_seen(user_id=alice, up_to_seq=None)
        assert seen.count == 1 and seen.event is not None and seen.event.seq == 6
        archived = await store.archive_all_read(user_id=alice, up_to_seq=None)
        assert archived.count == 1 and (archived.position.unread_count, archived.position.unseen_count) == (1, 0)
        await _create(store, alice, "new", category="comments")
        assert await store.category_counts(alice) == [CategoryCounts("comments", 1, 1)]
        assert await assert_counts_are_the_recount(store, alice) == Counts(2, 1)
    finally:
        await store.close()
