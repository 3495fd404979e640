"""Collapse keys and mute in the store, on SQLite and PostgreSQL; migration 0004 with data in it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.test_inbox_store import _create, _fill_at_0001, assert_counts_are_the_recount, database_url
from tidings import migrate
from tidings.store import CategoryCounts, Counts, EventKind, IdempotencyConflict, SqlStore
from tidings.store.models import collapsed_creates

__all__ = ["database_url"]  # the fixture, on both databases


async def test_a_create_with_the_key_of_an_unread_one_updates_it_in_place(store: SqlStore, user: str) -> None:
    first, created = await _create(store, user, "Alice commented", collapse_key="post-1", category="comments")
    other, _ = await _create(store, user, "other")
    await store.mark_all_seen(user_id=user, up_to_seq=None)
    folded, updated = await _create(
        store, user, "Alice and Bob commented", message="2", data={"n": 2}, collapse_key="post-1", category="comments"
    )
    assert updated is not None and updated.kind == EventKind.UPDATED
    assert folded.id == first.id and folded.collapsed_count == 1 and folded.collapse_key == "post-1"
    assert (folded.title, folded.message, folded.data) == ("Alice and Bob commented", "2", {"n": 2})
    assert folded.seen_at is None and folded.read_at is None and folded.updated_at is not None
    assert folded.created_at == first.created_at
    # On top: its position is the event's. One row: unread stays 2, unseen is back to 1.
    assert folded.seq == updated.seq == 4 and updated.notification == folded
    assert (updated.unread_count, updated.unseen_count) == (2, 1)
    assert updated.category_counts == (CategoryCounts("comments", 1, 1),)
    page = await store.list_notifications(user_id=user, first=10)
    assert [item.id for item in page.items] == [first.id, other.id]
    assert page.items[0] == folded
    assert await assert_counts_are_the_recount(store, user) == Counts(2, 1)
    again, _ = await _create(store, user, "and Carol", collapse_key="post-1", category="comments")
    assert again.id == first.id and again.collapsed_count == 2
    assert [event.kind for event in await store.events_after(user, created.seq - 1, limit=10)] == [
        EventKind.CREATED, EventKind.CREATED, EventKind.ALL_SEEN, EventKind.UPDATED, EventKind.UPDATED,
    ]  # fmt: skip


async def test_read_archived_or_deleted_ones_and_other_categories_are_not_collapsed_into(
    store: SqlStore, user: str
) -> None:
    read, _ = await _create(store, user, "a", collapse_key="k")
    await store.mark_read(notification_id=read.id, owner=user)
    fresh, event = await _create(store, user, "b", collapse_key="k")
    assert fresh.id != read.id and event is not None and event.kind == EventKind.CREATED
    archived, _ = await _create(store, user, "c", collapse_key="archived")
    await store.archive(notification_id=archived.id, owner=user)
    assert (await _create(store, user, "d", collapse_key="archived"))[0].id != archived.id
    deleted, _ = await _create(store, user, "e", collapse_key="deleted")
    await store.delete(notification_id=deleted.id, owner=user)
    assert (await _create(store, user, "f", collapse_key="deleted"))[0].id != deleted.id
    in_comments, _ = await _create(store, user, "g", collapse_key="tab", category="comments")
    elsewhere, _ = await _create(store, user, "h", collapse_key="tab", category="billing")
    uncategorized, _ = await _create(store, user, "i", collapse_key="tab")
    assert len({in_comments.id, elsewhere.id, uncategorized.id}) == 3
    assert (await _create(store, user, "j", collapse_key="tab"))[0].id == uncategorized.id
    assert (await _create(store, user, "no key"))[0].collapse_key is None
    await assert_counts_are_the_recount(store, user)


async def test_idempotency_keys_keep_their_meaning_across_a_collapse(store: SqlStore, user: str) -> None:
    first, _ = await _create(store, user, "one", collapse_key="k", idempotency_key="i1")
    folded, event = await _create(store, user, "two", collapse_key="k", idempotency_key="i2")
    assert folded.id == first.id and event is not None
    # A retry of the create that folded in is the same answer, not a second collapse.
    retried, none = await _create(store, user, "two", collapse_key="k", idempotency_key="i2")
    assert none is None and retried == folded and retried.collapsed_count == 1
    original, none = await _create(store, user, "one", collapse_key="k", idempotency_key="i1")
    assert none is None and original == folded
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, "two!", collapse_key="k", idempotency_key="i2")
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, "two", idempotency_key="i2")  # the same key without the collapse key
    with pytest.raises(IdempotencyConflict):
        await _create(store, user, "one", idempotency_key="i1")
    assert (await store.events_after(user, event.seq, limit=10)) == []


async def test_concurrent_collapsing_creates_make_one_row_and_gap_free_events(store: SqlStore, user: str) -> None:
    results = await asyncio.gather(*(_create(store, user, f"n{n}", collapse_key="k") for n in range(20)))
    assert len({record.id for record, _ in results}) == 1
    assert max(record.collapsed_count for record, _ in results) == 19
    events = await store.events_after(user, 0, limit=100)
    assert [event.seq for event in events] == list(range(1, 21))
    assert [event.kind for event in events] == [EventKind.CREATED] + [EventKind.UPDATED] * 19
    assert await assert_counts_are_the_recount(store, user) == Counts(1, 1)


async def test_replayed_update_events_are_the_live_ones_byte_for_byte(store: SqlStore, user: str) -> None:
    live = [(await _create(store, user, "a", data={"z": 1, "a": [None]}, collapse_key="k"))[1]]
    live.append((await _create(store, user, "b", data={"b": {"y": 2, "c": 3}}, collapse_key="k", category=None))[1])
    replayed = await store.events_after(user, 0, limit=10)
    assert [event.to_json() for event in replayed] == [event.to_json() for event in live if event is not None]


async def test_purge_forgets_the_keys_of_collapsed_creates_with_their_tombstone(store: SqlStore, user: str) -> None:
    first, _ = await _create(store, user, "one", collapse_key="k")
    await _create(store, user, "two", collapse_key="k", idempotency_key="i2")
    await store.delete(notification_id=first.id, owner=user)
    await store.purge_before(datetime.now(UTC) + timedelta(seconds=1))
    async with store.engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(collapsed_creates))) == 0
    again, event = await _create(store, user, "two", collapse_key="k", idempotency_key="i2")
    assert again.id != first.id and event is not None and event.kind == EventKind.CREATED


async def test_a_notification_in_a_muted_category_arrives_read_seen_and_uncounted(store: SqlStore, user: str) -> None:
    await _create(store, user, "counted", category="comments")
    muted, position, event = await store.set_muted_categories(user_id=user, categories=["social", "billing", "social"])
    assert muted == ("billing", "social") == await store.muted_categories(user)
    assert event is not None and event.kind == EventKind.PREFERENCES and event.muted_categories == muted
    assert (event.seq, event.unread_count, event.unseen_count, event.category_counts) == (2, 1, 1, ())
    assert position.seq == 2
    assert (await store.set_muted_categories(user_id=user, categories=["social", "billing"]))[2] is None
    quiet, created = await _create(store, user, "quiet", category="social")
    assert quiet.muted and quiet.read_at == quiet.seen_at == quiet.created_at
    assert created is not None and (created.unread_count, created.unseen_count, created.category_counts) == (1, 1, ())
    keyed, _ = await _create(store, user, "keyed", category="billing", idempotency_key="i")  # the general path
    assert keyed.muted and keyed.read_at is not None
    loud, _ = await _create(store, user, "loud", category="comments")
    plain, _ = await _create(store, user, "plain")
    assert not loud.muted and not plain.muted and loud.read_at is None
    assert await assert_counts_are_the_recount(store, user) == Counts(3, 3)
    assert await store.category_counts(user) == [CategoryCounts("comments", 2, 2)]
    _, _, unmuted = await store.set_muted_categories(user_id=user, categories=[])
    assert unmuted is not None and unmuted.muted_categories == () and await store.muted_categories(user) == ()
    assert not (await _create(store, user, "heard", category="social"))[0].muted
    assert await assert_counts_are_the_recount(store, user) == Counts(4, 4)
    live = [event, created, unmuted]
    replayed = {replay.seq: replay for replay in await store.events_after(user, 0, limit=100)}
    assert [replayed[e.seq].to_json() for e in live if e is not None] == [e.to_json() for e in live if e is not None]


async def test_a_muted_create_does_not_collapse_into_an_unread_one(store: SqlStore, user: str) -> None:
    first, _ = await _create(store, user, "one", category="social", collapse_key="k")
    await store.set_muted_categories(user_id=user, categories=["social"])
    second, event = await _create(store, user, "two", category="social", collapse_key="k")
    assert second.id != first.id and second.muted and event is not None and event.kind == EventKind.CREATED
    assert await assert_counts_are_the_recount(store, user) == Counts(1, 1)


async def test_concurrent_mutes_and_creates_keep_the_counts_equal_to_a_recount(store: SqlStore, user: str) -> None:
    async def toggle(n: int) -> None:
        await store.set_muted_categories(user_id=user, categories=["social"] if n % 2 else [])

    await asyncio.gather(
        *(_create(store, user, f"n{n}", category="social") for n in range(16)), *(toggle(n) for n in range(8))
    )
    events = await store.events_after(user, 0, limit=100)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    # Each create counted exactly when the mute it saw (the last PREFERENCES before it) did not hold.
    muted = False
    for event in events:
        if event.kind == EventKind.PREFERENCES:
            muted = event.muted_categories == ("social",)
        elif event.notification is not None:
            assert event.notification.muted is muted
    await assert_counts_are_the_recount(store, user)


async def test_migration_0004_brings_rows_forward_from_0002(database_url: str) -> None:
    from tidings.store import create_engine

    alice, bob = "alice", "bob"
    store = SqlStore(create_engine(database_url))
    try:
        await migrate.upgrade(store.engine, "0001")
        rows = await _fill_at_0001(store.engine, alice, bob)
        await migrate.upgrade(store.engine, "0002")
        await migrate.upgrade(store.engine, "0004")
        assert await migrate.current_revision(store.engine) == "0004"
        await store.start()

        page = await store.list_notifications(user_id=alice, first=10)
        assert [(item.title, item.collapse_key, item.collapsed_count, item.updated_at) for item in page.items] == [
            ("unread", None, 0, None), ("read", None, 0, None),
        ]  # fmt: skip
        replayed = await store.events_after(alice, 0, limit=10)
        assert all(event.notification and event.notification.collapsed_count == 0 for event in replayed)
        keyed: dict[str, Any] = {"message": "keyed!", "data": {"n": 1}, "idempotency_key": "order-1"}
        original, none = await _create(store, bob, "keyed", **keyed)
        assert none is None and original.id == rows["keyed"]["id"]
        # Old rows have no key: a create with one is new, the next folds into it.
        made, _ = await _create(store, alice, "new", collapse_key="k")
        folded, event = await _create(store, alice, "newer", collapse_key="k", idempotency_key="i")
        assert folded.id == made.id and event is not None and (event.seq, event.unread_count) == (7, 2)
        assert await assert_counts_are_the_recount(store, alice) == Counts(2, 2)
        assert await store.muted_categories(alice) == () and not folded.muted
        await store.set_muted_categories(user_id=bob, categories=["social"])
        assert (await _create(store, bob, "quiet", category="social"))[0].muted
    finally:
        await store.close()


async def test_a_collapse_takes_the_new_expiry_and_a_snoozed_one_is_not_folded_into(store: SqlStore, user: str) -> None:
    soon, later = datetime.now(UTC) + timedelta(hours=1), datetime.now(UTC) + timedelta(days=1)
    first, _ = await _create(store, user, "one", collapse_key="k", expires_at=soon)
    folded, _ = await _create(store, user, "two", collapse_key="k", expires_at=later)
    assert folded.id == first.id and folded.expires_at == later
    await store.snooze(notification_id=first.id, owner=user, until=later)
    fresh, event = await _create(store, user, "three", collapse_key="k")
    assert fresh.id != first.id and event is not None and event.kind == EventKind.CREATED
    assert await assert_counts_are_the_recount(store, user) == Counts(1, 1)
