"""Batch create in the store, on SQLite and PostgreSQL: one transaction per user, in order, all or none."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_inbox_store import assert_counts_are_the_recount
from tidings.store import Counts, EventKind, IdempotencyConflict, NotificationType, SqlStore


def _item(title: str, **fields: Any) -> dict[str, Any]:
    return {"type": NotificationType.INFO, "title": title, "message": "m", "data": None, **fields}


async def test_a_users_batch_takes_consecutive_positions_in_input_order(store: SqlStore, user: str) -> None:
    await store.set_muted_categories(user_id=user, categories=["social"])
    made = await store.create_many(
        user_id=user,
        items=[
            _item("a", collapse_key="k"),
            _item("b", idempotency_key="i"),
            _item("a again", collapse_key="k"),
            _item("b", idempotency_key="i"),  # the same key in the same batch: the same answer
            _item("quiet", category="social"),
        ],
    )
    kinds = [event.kind if event else None for _, event in made]
    assert kinds == [EventKind.CREATED, EventKind.CREATED, EventKind.UPDATED, None, EventKind.CREATED]
    assert [event.seq for _, event in made if event] == [2, 3, 4, 5]
    assert made[2][0].id == made[0][0].id and made[2][0].collapsed_count == 1
    assert made[3][0] == made[1][0] and made[4][0].muted
    replayed = await store.events_after(user, 1, limit=10)
    assert [event.to_json() for event in replayed] == [event.to_json() for _, event in made if event]
    assert await assert_counts_are_the_recount(store, user) == Counts(2, 2)


async def test_one_refused_item_writes_none_of_the_users_batch(store: SqlStore, user: str) -> None:
    await store.create_notification(user_id=user, **_item("first", idempotency_key="i"))
    before = await store.feed_position(user)
    with pytest.raises(IdempotencyConflict) as refused:
        await store.create_many(
            user_id=user, items=[_item("new"), _item("other payload", idempotency_key="i"), _item("newer")]
        )
    assert refused.value.item == 1
    assert await store.feed_position(user) == before
    assert [item.title for item in (await store.list_notifications(user_id=user, first=10)).items] == ["first"]
