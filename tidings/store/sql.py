"""The store: one SQLAlchemy implementation for SQLite and PostgreSQL.

Every change of a user's notifications runs in one transaction that first locks that user's feed row, takes the next
per-user sequence number, changes the notifications and appends the event. Sequence order is therefore commit order
for each user, and the event log can be replayed after any position without gaps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import orjson
import sqlalchemy as sa
import sqlalchemy.exc
import sqlalchemy.pool
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tidings.store.changes import (
    ALL_ARCHIVED,
    ALL_READ,
    ALL_SEEN,
    IN_INBOX,
    LIVE,
    UNREAD,
    BulkChange,
    Change,
    archiving,
    counted,
    counts_by_category,
    due,
    due_at,
    expired,
    marking_read,
    marking_unread,
    snoozing,
    unarchiving,
    unsnoozing,
)
from tidings.store.engine import WRITE_OPTION, create_statement_pool
from tidings.store.models import category_counts, collapsed_creates, events, feeds, meta_table, notifications
from tidings.store.records import (
    BulkDeleteResult,
    CategoryCounts,
    Counts,
    DeleteFilter,
    EventKind,
    FeedEvent,
    FeedPosition,
    IdempotencyConflict,
    MarkAllResult,
    NotFound,
    NotificationPage,
    NotificationRecord,
    NotificationType,
    category_counts_from_json,
    category_counts_to_json,
    muted_from_json,
    muted_to_json,
)
from tidings.store.statement_pool import Lease, StatementPool

T = TypeVar("T")
P = ParamSpec("P")

EPOCH_KEY = "feed_epoch"
PURGE_BATCH = 5000  # rows per retention transaction (TIDINGS_RETENTION_BATCH_SIZE)

# createNotification without an idempotency key on PostgreSQL, in one statement and one round trip: the upsert takes
# the feed row's lock and the next position, the notification and its event are written at that position, and the
# statement commits on its own. Same rows, same lock order as the general path below (which SQLite uses).
# The category's counts change after the feed row is locked (that part reads `feed`), the order every writer keeps.
# Whether the category is muted is read from the locked feed row (ON CONFLICT DO UPDATE sees its latest version, so
# a setMutedCategories that committed first is seen): a muted one is stored read and seen, counted nowhere, and its
# event carries the muted snapshot ($10) instead of the plain one ($8).
_CREATE_IN_ONE_STATEMENT = """
WITH feed AS (
    INSERT INTO user_feeds AS f (user_id, last_seq, unread_count, unseen_count) VALUES ($1, 1, 1, 1)
    ON CONFLICT (user_id) DO UPDATE
    SET last_seq = f.last_seq + 1,
        unread_count = f.unread_count + CASE WHEN f.muted_categories @> jsonb_build_array($9::text) THEN 0 ELSE 1 END,
        unseen_count = f.unseen_count + CASE WHEN f.muted_categories @> jsonb_build_array($9::text) THEN 0 ELSE 1 END
    RETURNING last_seq, unread_count, unseen_count,
        COALESCE(muted_categories @> jsonb_build_array($9::text), false) AS muted
), notification AS (
    INSERT INTO notifications (id, user_id, seq, type, title, message, data, created_at, category, read_at, seen_at,
        muted)
    SELECT $2, $1, feed.last_seq, $3, $4, $5, $6::jsonb, $7, $9::text, CASE WHEN feed.muted THEN $7::timestamptz END,
        CASE WHEN feed.muted THEN $7::timestamptz END, feed.muted FROM feed
), category AS (
    INSERT INTO category_counts AS c (user_id, category, unread_count, unseen_count)
    SELECT $1, $9::text, 1, 1 FROM feed WHERE $9::text IS NOT NULL AND NOT feed.muted
    ON CONFLICT (user_id, category) DO UPDATE
    SET unread_count = c.unread_count + 1, unseen_count = c.unseen_count + 1
    RETURNING category, unread_count, unseen_count
)
INSERT INTO notification_events
    (user_id, seq, kind, notification_id, snapshot, unread_count, unseen_count, created_at, category_counts)
SELECT $1, feed.last_seq, 'CREATED', $2,
    jsonb_set(CASE WHEN feed.muted THEN $10::jsonb ELSE $8::jsonb END, '{seq}', to_jsonb(feed.last_seq)),
    feed.unread_count, feed.unseen_count, $7,
    CASE WHEN category.category IS NULL THEN NULL
    ELSE jsonb_build_array(jsonb_build_array(category.category, category.unread_count, category.unseen_count)) END
FROM feed LEFT JOIN category ON true
RETURNING seq, unread_count, unseen_count, snapshot, category_counts
"""
# The reads a subscription makes, on PostgreSQL, as single statements on asyncpg (one round trip each).
_POSITION = "SELECT last_seq, unread_count, unseen_count FROM user_feeds WHERE user_id = $1"
_POSITIONS = "SELECT user_id, last_seq FROM user_feeds WHERE user_id = ANY($1::text[])"
_EVENTS_AFTER = (
    "SELECT user_id, seq, kind, snapshot, unread_count, unseen_count, up_to_seq, count, category_counts, "
    "muted_categories, deleted "
    "FROM notification_events "
    "WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
)

_NOTIFICATION_COLUMNS = (
    notifications.c.id,
    notifications.c.user_id,
    notifications.c.seq,
    notifications.c.type,
    notifications.c.title,
    notifications.c.message,
    notifications.c.data,
    notifications.c.read_at,
    notifications.c.created_at,
    notifications.c.seen_at,
    notifications.c.archived_at,
    notifications.c.category,
    notifications.c.collapse_key,
    notifications.c.collapsed_count,
    notifications.c.updated_at,
    notifications.c.muted,
    notifications.c.snoozed_until,
    notifications.c.expires_at,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _to_the_end(
    call: Callable[Concatenate[SqlStore, P], Awaitable[T]],
) -> Callable[Concatenate[SqlStore, P], Awaitable[T]]:
    """Run a store call on the SQLAlchemy engine to its end even when its caller is cancelled; the caller still sees
    its cancellation at once.

    A cancellation inside SQLAlchemy's async adapters invalidates the connection, and a second one (a closing
    WebSocket cancels its operations more than once) lands in the adapter's graceful close: aiosqlite's is then left
    pending forever ("Task was destroyed but it is pending"), asyncpg's connection is dropped with a future nobody
    reads ("Future exception was never retrieved"). Finishing the call returns the connection to the pool instead.
    The statements on the asyncpg pool need none of this: asyncpg cancels a query and releases its connection itself.
    """

    @functools.wraps(call)
    async def finishing(store: SqlStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(call(store, *args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            store._unfinished.add(task)
            task.add_done_callback(store._forget_unfinished)
            raise

    return finishing


def _new_record(
    user_id: str,
    seq: int,
    type: NotificationType,
    title: str,
    message: str,
    data: dict[str, Any] | None,
    category: str | None,
    collapse_key: str | None = None,
    *,
    expires_at: datetime | None = None,
    muted: bool = False,
) -> NotificationRecord:
    now = _now()
    return NotificationRecord(
        id=str(uuid.uuid4()),
        user_id=user_id,
        seq=seq,
        type=type,
        title=title,
        message=message,
        data=data,
        read_at=now if muted else None,
        created_at=now,
        seen_at=now if muted else None,
        archived_at=None,
        category=category,
        collapse_key=collapse_key,
        muted=muted,
        expires_at=expires_at,
    )


def _muted_draft(draft: NotificationRecord) -> NotificationRecord:
    """The draft of a create as it is stored when its category turns out muted: read and seen as it arrives."""
    return dataclasses.replace(draft, read_at=draft.created_at, seen_at=draft.created_at, muted=True)


def _record(row: Any) -> NotificationRecord:
    return NotificationRecord(
        id=row.id,
        user_id=row.user_id,
        seq=row.seq,
        type=NotificationType(row.type),
        title=row.title,
        message=row.message,
        data=row.data,
        read_at=row.read_at,
        created_at=row.created_at,
        seen_at=row.seen_at,
        archived_at=row.archived_at,
        category=row.category,
        snoozed_until=row.snoozed_until,
        expires_at=row.expires_at,
        collapse_key=row.collapse_key,
        collapsed_count=row.collapsed_count,
        updated_at=row.updated_at,
        muted=row.muted,
    )


def _request_hash(
    type_: NotificationType,
    title: str,
    message: str,
    data: dict[str, Any] | None,
    category: str | None,
    collapse_key: str | None = None,
) -> str:
    # Without a category or collapse key, the hash is the one from before they existed: a retry across the upgrade
    # still matches.
    payload: list[Any] = [type_.value, title, message, data]
    if category is not None or collapse_key is not None:
        payload.append(category)
    if collapse_key is not None:
        payload.append(collapse_key)
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class SqlStore:
    """Notifications, per-user feeds and the event log in one SQL database."""

    def __init__(
        self, engine: AsyncEngine, *, pool_size: int = 10, timeout: float = 5.0, statement_timeout: float = 10.0
    ) -> None:
        self._engine = engine
        # The single-statement hot path on PostgreSQL (creates, the reads of subscriptions) runs on an asyncpg pool
        # of its own: checking out through SQLAlchemy's async engine (a greenlet, pool events, reset) cost more than
        # the statement. The same size, timeouts and statement timeout as the engine's.
        self._statements: StatementPool | None = None
        self._pool_size = pool_size
        self._timeout = timeout
        self._statement_timeout = statement_timeout
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._is_postgres = engine.dialect.name == "postgresql"
        # One snapshot for every read of a request (PostgreSQL's default gives each statement its own).
        self._reader = engine.execution_options(isolation_level="REPEATABLE READ") if self._is_postgres else engine
        self._epoch: str | None = None
        self._unfinished: set[asyncio.Task[Any]] = set()  # calls whose caller was cancelled, until they are done

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def epoch(self) -> str:
        """This database's feed epoch: cursors from another database carry another one."""
        if self._epoch is None:
            raise RuntimeError("SqlStore.start() has not run")
        return self._epoch

    async def start(self) -> None:
        """Load the feed epoch (written by the first migration)."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == EPOCH_KEY))
        if value is None:
            raise RuntimeError("the database has not been migrated: run `tidings migrate`")
        self._epoch = value
        if self._is_postgres and self._statements is None:
            self._statements = await create_statement_pool(
                self._engine.url, size=self._pool_size, timeout=self._timeout, statement_timeout=self._statement_timeout
            )

    async def close(self) -> None:
        if self._unfinished:  # each is bounded by the statement and pool timeouts
            await asyncio.wait(set(self._unfinished), timeout=self._timeout + self._statement_timeout)
        if self._statements is not None:
            statements, self._statements = self._statements, None
            try:
                await asyncio.wait_for(statements.close(), timeout=self._timeout)
            except (TimeoutError, OSError, asyncpg.exceptions.InterfaceError):
                statements.terminate()
        await self._engine.dispose()

    def connections(self) -> dict[tuple[str, str], int]:
        """Pooled connections by pool ("engine": SQLAlchemy's; "statements": the asyncpg pool of the hot path) and
        state ("in_use", "idle")."""
        counts: dict[tuple[str, str], int] = {}
        pool = self._engine.pool
        if isinstance(pool, sa.pool.QueuePool):  # what create_engine makes for a database file or server
            counts["engine", "in_use"] = pool.checkedout()
            counts["engine", "idle"] = pool.checkedin()
        if self._statements is not None:
            idle = self._statements.get_idle_size()
            counts["statements", "in_use"] = self._statements.get_size() - idle
            counts["statements", "idle"] = idle
        return counts

    def _forget_unfinished(self, task: asyncio.Task[Any]) -> None:
        self._unfinished.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody waits for it any more

    @_to_the_end
    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.begin() as conn:
            yield conn

    # -- the per-user lock -------------------------------------------------------------------------------------

    async def _lock_feed(self, conn: AsyncConnection, user_id: str) -> FeedPosition:
        """Create the user's feed row if needed and hold its row lock until commit."""
        insert = pg_insert if self._is_postgres else sqlite_insert
        statement = (
            insert(feeds)
            .values(user_id=user_id, last_seq=0, unread_count=0, unseen_count=0)
            .on_conflict_do_update(index_elements=[feeds.c.user_id], set_={"last_seq": feeds.c.last_seq})
            .returning(feeds.c.last_seq, feeds.c.unread_count, feeds.c.unseen_count)
        )
        row = (await conn.execute(statement)).one()
        return FeedPosition(seq=row.last_seq, unread_count=row.unread_count, unseen_count=row.unseen_count)

    async def _append(
        self,
        conn: AsyncConnection,
        position: FeedPosition,
        *,
        user_id: str,
        kind: EventKind,
        change: Counts,
        notification: NotificationRecord | None,
        by_category: Mapping[str, Counts] | None = None,
        up_to_seq: int | None = None,
        count: int | None = None,
        muted_categories: tuple[str, ...] | None = None,
        deleted: DeleteFilter | None = None,
    ) -> FeedEvent:
        """Take the next position of a locked feed, move its counts by `change`, and log the event there.

        An event of one notification moves that notification's category by the whole change; an event of many
        says how the change splits among categories (`by_category`). The event carries the counts of each category
        it moved, as they are after it.
        """
        if by_category is None:
            category = notification.category if notification is not None else None
            by_category = {category: change} if category is not None else {}
        event = FeedEvent(
            user_id=user_id,
            seq=position.seq + 1,
            kind=kind,
            unread_count=position.unread_count + change.unread,
            unseen_count=position.unseen_count + change.unseen,
            notification=notification,
            up_to_seq=up_to_seq,
            count=count,
            category_counts=await self._count_categories(conn, user_id, by_category),
            muted_categories=muted_categories,
            deleted=deleted,
        )
        await conn.execute(
            feeds.update()
            .where(feeds.c.user_id == user_id)
            .values(last_seq=event.seq, unread_count=event.unread_count, unseen_count=event.unseen_count)
        )
        inserted = await conn.execute(
            events.insert()
            .returning(events.c.snapshot)
            .values(
                user_id=user_id,
                seq=event.seq,
                kind=kind.value,
                notification_id=notification.id if notification else None,
                snapshot=notification.to_dict() if notification else None,
                unread_count=event.unread_count,
                unseen_count=event.unseen_count,
                up_to_seq=up_to_seq,
                count=count,
                created_at=_now(),
                category_counts=category_counts_to_json(event.category_counts),
                muted_categories=muted_to_json(muted_categories),
                deleted=deleted.to_json() if deleted is not None else None,
            )
        )
        stored = inserted.scalar_one()
        if stored is not None and self._is_postgres:
            # As a replay will read it (jsonb orders object keys its own way): live and replayed bytes are the same.
            event = dataclasses.replace(event, notification=NotificationRecord.from_dict(stored))
        return event

    async def _count_categories(
        self, conn: AsyncConnection, user_id: str, by_category: Mapping[str, Counts]
    ) -> tuple[CategoryCounts, ...]:
        """Move the kept counts of each category by its change (a category's row is made by its first notification);
        returns the moved categories' counts afterwards, by name."""
        moved = [
            {"user_id": user_id, "category": category, "unread_count": change.unread, "unseen_count": change.unseen}
            for category, change in sorted(by_category.items())
            if change
        ]
        if not moved:
            return ()
        insert = pg_insert(category_counts) if self._is_postgres else sqlite_insert(category_counts)
        rows = await conn.execute(
            insert.values(moved)
            .on_conflict_do_update(
                index_elements=[category_counts.c.user_id, category_counts.c.category],
                set_={
                    "unread_count": category_counts.c.unread_count + insert.excluded.unread_count,
                    "unseen_count": category_counts.c.unseen_count + insert.excluded.unseen_count,
                },
            )
            .returning(category_counts.c.category, category_counts.c.unread_count, category_counts.c.unseen_count)
        )
        return tuple(sorted((CategoryCounts(*row) for row in rows), key=lambda counts: counts.category))

    # -- writes -------------------------------------------------------------------------------------------------

    async def create_notification(
        self,
        *,
        user_id: str,
        type: NotificationType,
        title: str,
        message: str,
        data: dict[str, Any] | None,
        idempotency_key: str | None = None,
        category: str | None = None,
        collapse_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Create a notification; a repeated idempotency key returns the original and no event.

        With a collapse key, while an unread notification of the user in the inbox has the same key and category,
        the create folds into it instead (`_collapse`, an UPDATED event). `expires_at` is not part of the idempotency
        payload: a retry that computes it afresh is still the same request.
        """
        if self._is_postgres and idempotency_key is None and collapse_key is None and expires_at is None:
            return await self._create_in_one_statement(
                user_id=user_id, type=type, title=title, message=message, data=data, category=category
            )
        item: dict[str, Any] = {"type": type, "title": title, "message": message, "data": data}
        item |= {"idempotency_key": idempotency_key, "category": category, "collapse_key": collapse_key}
        item |= {"expires_at": expires_at}
        return (await self.create_many(user_id=user_id, items=[item], batch=False))[0]

    @_to_the_end
    async def create_many(
        self, *, user_id: str, items: Sequence[Mapping[str, Any]], batch: bool = True
    ) -> list[tuple[NotificationRecord, FeedEvent | None]]:
        """Create a user's notifications in order, in one transaction: all of them or, on any error, none.

        Each item is the keyword arguments of `create_notification` but `user_id`; idempotency and collapse keys
        behave as they would one by one (a key repeated in the batch is the same answer as its first use). In a
        batch, an idempotency conflict names its item.
        """
        results: list[tuple[NotificationRecord, FeedEvent | None]] = []
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            # Nothing changes them while the feed lock is held; a single create without a category needs none.
            muted = await self._muted(conn, user_id) if batch or items[0].get("category") is not None else ()
            for index, item in enumerate(items):
                try:
                    record, event = await self._create_locked(conn, position, muted, user_id=user_id, **item)
                except IdempotencyConflict as error:
                    raise IdempotencyConflict(str(error), item=index if batch else None) from None
                if event is not None:
                    position = FeedPosition(event.seq, event.unread_count, event.unseen_count)
                results.append((record, event))
        return results

    async def _create_locked(
        self,
        conn: AsyncConnection,
        position: FeedPosition,
        muted_categories: tuple[str, ...],
        *,
        user_id: str,
        type: NotificationType,
        title: str,
        message: str,
        data: dict[str, Any] | None,
        idempotency_key: str | None = None,
        category: str | None = None,
        collapse_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """One create at the next position of a feed locked by the caller (the general path of every create)."""
        request_hash = _request_hash(type, title, message, data, category, collapse_key)
        if idempotency_key is not None:
            # Read under the feed lock: a concurrent request with the same key has committed or not started.
            existing = await self._created_with_key(conn, user_id, idempotency_key, request_hash)
            if existing is not None:
                return existing, None
        muted = category is not None and category in muted_categories
        if collapse_key is not None and not muted:  # a muted create must not make an unread one unseen again
            collapsed = await self._collapse(
                conn,
                position,
                user_id=user_id,
                fields={"type": type, "title": title, "message": message, "data": data, "expires_at": expires_at},
                category=category,
                collapse_key=collapse_key,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
            if collapsed is not None:
                return collapsed
        record = _new_record(
            user_id,
            position.seq + 1,
            type,
            title,
            message,
            data,
            category,
            collapse_key,
            expires_at=expires_at,
            muted=muted,
        )
        await conn.execute(
            notifications.insert().values(
                id=record.id,
                user_id=user_id,
                seq=record.seq,
                type=type.value,
                title=title,
                message=message,
                data=data,
                created_at=record.created_at,
                read_at=record.read_at,
                seen_at=record.seen_at,
                muted=muted,
                category=category,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                collapse_key=collapse_key,
            )
        )
        event = await self._append(
            conn, position, user_id=user_id, kind=EventKind.CREATED, change=counted(record), notification=record
        )
        assert event.notification is not None
        return event.notification, event

    async def _created_with_key(
        self, conn: AsyncConnection, user_id: str, idempotency_key: str, request_hash: str
    ) -> NotificationRecord | None:
        """The notification a create with this key made or folded into (as it is now), or None for a new key."""
        existing = (
            await conn.execute(
                sa.select(*_NOTIFICATION_COLUMNS, notifications.c.request_hash).where(
                    notifications.c.user_id == user_id, notifications.c.idempotency_key == idempotency_key
                )
            )
        ).one_or_none()
        if existing is None:
            existing = (
                await conn.execute(
                    sa.select(*_NOTIFICATION_COLUMNS, collapsed_creates.c.request_hash)
                    .join(collapsed_creates, collapsed_creates.c.notification_id == notifications.c.id)
                    .where(
                        collapsed_creates.c.user_id == user_id, collapsed_creates.c.idempotency_key == idempotency_key
                    )
                )
            ).one_or_none()
        if existing is None:
            return None
        if existing.request_hash != request_hash:
            raise IdempotencyConflict("idempotencyKey was already used with a different payload")
        return _record(existing)

    # -- collapse keys ------------------------------------------------------------------------------------------

    async def _collapse(
        self,
        conn: AsyncConnection,
        position: FeedPosition,
        *,
        user_id: str,
        fields: dict[str, Any],
        category: str | None,
        collapse_key: str,
        idempotency_key: str | None,
        request_hash: str,
    ) -> tuple[NotificationRecord, FeedEvent] | None:
        """Fold a create into the user's unread notification with the same collapse key and category, if any.

        It takes the new content, counts one more collapsed create, becomes unseen again and moves to the top: its
        `seq` becomes the position of its UPDATED event, so lists (newest first by `seq`) show it first and a later
        mark-all `upTo` an earlier cursor leaves it alone, as it would a new one. Still one row: unread stays 1.
        """
        row = (
            await conn.execute(
                sa.select(*_NOTIFICATION_COLUMNS)
                .where(
                    notifications.c.user_id == user_id,
                    notifications.c.collapse_key == collapse_key,
                    UNREAD,
                    notifications.c.category.is_(None) if category is None else notifications.c.category == category,
                )
                .order_by(notifications.c.seq.desc())
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            return None
        current = _record(row)
        values = {
            **fields,
            "seq": position.seq + 1,
            "seen_at": None,
            "collapsed_count": current.collapsed_count + 1,
            "updated_at": _now(),
        }
        await conn.execute(
            notifications.update()
            .where(notifications.c.id == current.id)
            .values(**{**values, "type": fields["type"].value})
        )
        if idempotency_key is not None:
            await conn.execute(
                collapsed_creates.insert().values(
                    user_id=user_id,
                    idempotency_key=idempotency_key,
                    notification_id=current.id,
                    request_hash=request_hash,
                )
            )
        record = dataclasses.replace(current, **values)
        event = await self._append(
            conn,
            position,
            user_id=user_id,
            kind=EventKind.UPDATED,
            change=counted(record) - counted(current),
            notification=record,
        )
        assert event.notification is not None
        return event.notification, event

    async def _create_in_one_statement(
        self,
        *,
        user_id: str,
        type: NotificationType,
        title: str,
        message: str,
        data: dict[str, Any] | None,
        category: str | None,
    ) -> tuple[NotificationRecord, FeedEvent]:
        draft = _new_record(user_id, 0, type, title, message, data, category)  # its position: inside the statement
        async with self._driver() as driver:
            row = await driver.fetchrow(
                _CREATE_IN_ONE_STATEMENT,
                user_id,
                draft.id,
                type.value,
                title,
                message,
                # JSON parameters as text: the pool's codec sends them as they are.
                None if data is None else orjson.dumps(data).decode(),
                draft.created_at,
                orjson.dumps(draft.to_dict()).decode(),
                category,
                None if category is None else orjson.dumps(_muted_draft(draft).to_dict()).decode(),
            )
        assert row is not None
        # The record as stored: PostgreSQL's jsonb orders object keys its own way, and a replay reads it back so;
        # building the live event from the same snapshot makes live and replayed events the same bytes.
        record = NotificationRecord.from_dict(row["snapshot"])
        event = FeedEvent(
            user_id,
            row["seq"],
            EventKind.CREATED,
            row["unread_count"],
            row["unseen_count"],
            notification=record,
            category_counts=category_counts_from_json(row["category_counts"]),
        )
        return record, event

    def _driver(self) -> Lease:
        """An asyncpg connection of the statement pool, outside any transaction (each statement commits)."""
        pool = self._statements
        if pool is None:
            raise RuntimeError("SqlStore.start() has not run")
        return pool.lease()

    async def _owner_of(self, notification_id: str, owner: str | None) -> str:
        async with self._engine.connect() as conn:
            query = sa.select(notifications.c.user_id).where(notifications.c.id == notification_id, LIVE)
            if owner is not None:
                query = query.where(notifications.c.user_id == owner)
            user_id = await conn.scalar(query)
        if user_id is None:
            raise NotFound
        return str(user_id)

    async def _locked_notification(
        self, conn: AsyncConnection, notification_id: str, user_id: str
    ) -> NotificationRecord:
        row = (
            await conn.execute(
                sa.select(*_NOTIFICATION_COLUMNS).where(
                    notifications.c.id == notification_id, notifications.c.user_id == user_id, LIVE
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound  # deleted between the lookup and the lock
        return _record(row)

    @_to_the_end
    async def _change(
        self, *, notification_id: str, owner: str | None, kind: EventKind, change: Change
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Change one notification under its user's feed lock; `owner` None means any user's (a service).

        A change that changes nothing (marking read what is read) makes no event and returns the notification as is.
        """
        user_id = await self._owner_of(notification_id, owner)
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            current = await self._locked_notification(conn, notification_id, user_id)
            values = change(current, _now())
            if not values:
                return current, None
            await conn.execute(notifications.update().where(notifications.c.id == notification_id).values(**values))
            record = dataclasses.replace(current, **values)
            event = await self._append(
                conn,
                position,
                user_id=user_id,
                kind=kind,
                change=counted(record) - counted(current),
                notification=record,
            )
        return record, event

    async def mark_read(
        self, *, notification_id: str, owner: str | None
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Mark one notification read (and seen). Already read: no event."""
        return await self._change(
            notification_id=notification_id, owner=owner, kind=EventKind.READ, change=marking_read
        )

    async def mark_unread(
        self, *, notification_id: str, owner: str | None
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Mark one notification unread again (it stays seen). Already unread: no event."""
        return await self._change(
            notification_id=notification_id, owner=owner, kind=EventKind.UNREAD, change=marking_unread
        )

    async def archive(self, *, notification_id: str, owner: str | None) -> tuple[NotificationRecord, FeedEvent | None]:
        """Move one notification out of the inbox and its counts. Already archived: no event."""
        return await self._change(
            notification_id=notification_id, owner=owner, kind=EventKind.ARCHIVED, change=archiving
        )

    async def unarchive(
        self, *, notification_id: str, owner: str | None
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Bring one archived notification back to the inbox, counted as it is. Not archived: no event."""
        return await self._change(
            notification_id=notification_id, owner=owner, kind=EventKind.UNARCHIVED, change=unarchiving
        )

    @_to_the_end
    async def delete(self, *, notification_id: str, owner: str | None) -> tuple[NotificationRecord, FeedEvent]:
        """Delete one notification (kept as a tombstone); the event carries its last state."""
        user_id = await self._owner_of(notification_id, owner)
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            current = await self._locked_notification(conn, notification_id, user_id)
            await conn.execute(
                notifications.update().where(notifications.c.id == notification_id).values(deleted_at=_now())
            )
            event = await self._append(
                conn,
                position,
                user_id=user_id,
                kind=EventKind.DELETED,
                change=Counts() - counted(current),
                notification=current,
            )
        return current, event

    # -- the timers: snooze and expiry ----------------------------------------------------------------------------

    async def snooze(
        self, *, notification_id: str, owner: str | None, until: datetime
    ) -> tuple[NotificationRecord, FeedEvent | None]:
        """Take one notification out of the inbox and its counts until `until` (fire_due brings it back)."""
        return await self._change(
            notification_id=notification_id, owner=owner, kind=EventKind.SNOOZED, change=snoozing(until)
        )

    @_to_the_end
    async def unsnooze(self, *, notification_id: str, owner: str | None) -> tuple[NotificationRecord, FeedEvent | None]:
        """End one notification's snooze now, exactly as its timer would (fire_due). Not snoozed: no event."""
        user_id = await self._owner_of(notification_id, owner)
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            current = await self._locked_notification(conn, notification_id, user_id)
            if current.snoozed_until is None:
                return current, None
            return await self._end_snooze(conn, position, user_id, current)

    async def _end_snooze(
        self, conn: AsyncConnection, position: FeedPosition, user_id: str, current: NotificationRecord
    ) -> tuple[NotificationRecord, FeedEvent]:
        """Bring a snoozed notification of a locked feed back on top, unread and unseen, with its UNSNOOZED event."""
        values = unsnoozing(position.seq + 1)
        record = dataclasses.replace(current, **values)
        await conn.execute(notifications.update().where(notifications.c.id == current.id).values(**values))
        event = await self._append(
            conn,
            position,
            user_id=user_id,
            kind=EventKind.UNSNOOZED,
            change=counted(record) - counted(current),
            notification=record,
        )
        return record, event

    async def fire_due(self, *, now: datetime, limit: int) -> list[FeedEvent]:
        """End the snoozes and expiries due at `now`, at most `limit`: one UNSNOOZED or EXPIRED event each.

        Exactly once however many processes call it: the rows found due are read again under their user's feed
        lock, and one that another process fired meanwhile (its snooze cleared, or deleted) is no longer due.
        """
        by_user: dict[str, list[str]] = {}
        for user_id, notification_id in await self._due(now, limit):
            by_user.setdefault(user_id, []).append(notification_id)
        fired: list[FeedEvent] = []
        for user_id, ids in sorted(by_user.items()):
            fired.extend(await self._fire_for(user_id, ids, now))
        return fired

    @_to_the_end
    async def _due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(user, notification) of at most `limit` timers due at `now`, read outside any lock."""
        async with self._engine.connect() as conn:
            query = sa.select(notifications.c.user_id, notifications.c.id).where(due(now)).limit(limit)
            return [(row.user_id, row.id) for row in await conn.execute(query)]

    @_to_the_end
    async def _fire_for(self, user_id: str, ids: list[str], now: datetime) -> list[FeedEvent]:
        """One user's due timers in one transaction, in the order they came due."""
        fired: list[FeedEvent] = []
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            rows = (
                await conn.execute(
                    sa.select(*_NOTIFICATION_COLUMNS).where(
                        notifications.c.user_id == user_id, notifications.c.id.in_(ids), due(now)
                    )
                )
            ).all()
            for current in sorted((_record(row) for row in rows), key=lambda record: (due_at(record), record.seq)):
                if expired(current, now):
                    await conn.execute(
                        notifications.update().where(notifications.c.id == current.id).values(deleted_at=now)
                    )
                    event = await self._append(
                        conn,
                        position,
                        user_id=user_id,
                        kind=EventKind.EXPIRED,
                        change=Counts() - counted(current),
                        notification=current,
                    )
                else:
                    _, event = await self._end_snooze(conn, position, user_id, current)
                position = FeedPosition(event.seq, event.unread_count, event.unseen_count)
                fired.append(event)
        return fired

    @_to_the_end
    async def next_due(self) -> datetime | None:
        """When the next snooze ends or expiry comes, of any user; None when no timer is set."""
        column = notifications.c
        snoozes = sa.select(sa.func.min(column.snoozed_until)).where(column.snoozed_until.is_not(None), LIVE)
        expiries = sa.select(sa.func.min(column.expires_at)).where(column.expires_at.is_not(None), LIVE)
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(snoozes.scalar_subquery().label("snooze"), expiries.scalar_subquery().label("expiry"))
                )
            ).one()
        times = [time for time in (row.snooze, row.expiry) if time is not None]  # UTCDateTime's, as the columns
        return min(times) if times else None

    async def mark_all_read(self, *, user_id: str, up_to_seq: int | None) -> MarkAllResult:
        """Mark read (and seen) every unread notification created at or before `up_to_seq` (all when None)."""
        return await self._change_all(ALL_READ, user_id=user_id, up_to_seq=up_to_seq)

    async def mark_all_seen(self, *, user_id: str, up_to_seq: int | None) -> MarkAllResult:
        """Mark seen every unseen notification created at or before `up_to_seq` (all when None)."""
        return await self._change_all(ALL_SEEN, user_id=user_id, up_to_seq=up_to_seq)

    async def archive_all_read(self, *, user_id: str, up_to_seq: int | None) -> MarkAllResult:
        """Archive every read notification of the inbox created at or before `up_to_seq` (all when None)."""
        return await self._change_all(ALL_ARCHIVED, user_id=user_id, up_to_seq=up_to_seq)

    @_to_the_end
    async def _change_all(self, bulk: BulkChange, *, user_id: str, up_to_seq: int | None) -> MarkAllResult:
        """One bulk action in one event; nothing to change: no event."""
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            limit = position.seq if up_to_seq is None else min(up_to_seq, position.seq)
            which = sa.and_(notifications.c.user_id == user_id, bulk.which, notifications.c.seq <= limit)
            # What the rows count before the change, read under the feed lock: nothing else changes them meanwhile.
            # Both statements walk the rows of `which` only (mark all read and seen: by their partial indexes).
            before = (await conn.execute(counts_by_category(which))).all()
            count = (await conn.execute(notifications.update().where(which).values(**bulk.values(_now())))).rowcount
            if count == 0:
                return MarkAllResult(count=0, position=position, event=None)
            moved = {category: bulk.effect(Counts(unread, unseen)) for category, unread, unseen in before}
            by_category = {category: change for category, change in moved.items() if category is not None}
            event = await self._append(
                conn,
                position,
                user_id=user_id,
                kind=bulk.kind,
                change=sum(moved.values(), Counts()),
                notification=None,
                by_category=by_category,
                up_to_seq=limit,
                count=count,
            )
        return MarkAllResult(
            count=count, position=FeedPosition(event.seq, event.unread_count, event.unseen_count), event=event
        )

    # -- bulk delete ------------------------------------------------------------------------------------------

    @_to_the_end
    async def delete_all(
        self, *, user_id: str, which: DeleteFilter, up_to_seq: int | None, max_rows: int
    ) -> BulkDeleteResult:
        """Delete (as tombstones) the user's notifications matching `which` at or before `up_to_seq`, in one event.

        At most `max_rows`, the oldest first: the event's `up_to_seq` is then the position of the last one deleted, so
        "what matched, at or before it" names exactly the deleted rows, and `has_more` says that others remain. One
        transaction: all of them or none. Nothing matched: no event.
        """
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            limit = position.seq if up_to_seq is None else min(up_to_seq, position.seq)
            matching = [notifications.c.user_id == user_id, LIVE, notifications.c.seq <= limit]
            if which.read is not None:
                matching.append(
                    notifications.c.read_at.is_not(None) if which.read else notifications.c.read_at.is_(None)
                )
            if which.archived is not None:
                archived = notifications.c.archived_at
                matching.append(archived.is_not(None) if which.archived else archived.is_(None))
            if which.category is not None:
                matching.append(notifications.c.category == which.category)
            positions = (
                (
                    await conn.execute(
                        sa.select(notifications.c.seq)
                        .where(*matching)
                        .order_by(notifications.c.seq)
                        .limit(max_rows + 1)
                    )
                )
                .scalars()
                .all()
            )
            if not positions:
                return BulkDeleteResult(count=0, has_more=False, position=position, event=None)
            has_more = len(positions) > max_rows
            cut = positions[min(len(positions), max_rows) - 1]
            rows = sa.and_(*matching, notifications.c.seq <= cut)
            # What the rows count before they go, read under the feed lock (archived and snoozed ones count nothing).
            before = (await conn.execute(counts_by_category(sa.and_(rows, IN_INBOX)))).all()
            count = (await conn.execute(notifications.update().where(rows).values(deleted_at=_now()))).rowcount
            moved = {category: Counts() - Counts(unread, unseen) for category, unread, unseen in before}
            event = await self._append(
                conn,
                position,
                user_id=user_id,
                kind=EventKind.BULK_DELETED,
                change=sum(moved.values(), Counts()),
                notification=None,
                by_category={category: change for category, change in moved.items() if category is not None},
                up_to_seq=cut,
                count=count,
                deleted=which,
            )
        return BulkDeleteResult(
            count=count,
            has_more=has_more,
            position=FeedPosition(event.seq, event.unread_count, event.unseen_count),
            event=event,
        )

    # -- mute -------------------------------------------------------------------------------------------------

    async def _muted(self, conn: AsyncConnection, user_id: str) -> tuple[str, ...]:
        """The user's muted categories (read under the feed lock when a create asks)."""
        raw = await conn.scalar(sa.select(feeds.c.muted_categories).where(feeds.c.user_id == user_id))
        return tuple(raw or ())

    @_to_the_end
    async def set_muted_categories(
        self, *, user_id: str, categories: Sequence[str]
    ) -> tuple[tuple[str, ...], FeedPosition, FeedEvent | None]:
        """Replace the user's muted categories (kept sorted, without repeats); the same set again: no event.

        Only later creates are muted: what has arrived stays as it is, and so do the counts.
        """
        muted = tuple(sorted(set(categories)))
        async with self._write() as conn:
            position = await self._lock_feed(conn, user_id)
            if await self._muted(conn, user_id) == muted:
                return muted, position, None
            await conn.execute(
                feeds.update()
                .where(feeds.c.user_id == user_id)
                .values(muted_categories=list(muted) if muted else sa.null())
            )
            event = await self._append(
                conn,
                position,
                user_id=user_id,
                kind=EventKind.PREFERENCES,
                change=Counts(),
                notification=None,
                muted_categories=muted,
            )
        return muted, FeedPosition(event.seq, event.unread_count, event.unseen_count), event

    @_to_the_end
    async def muted_categories(self, user_id: str) -> tuple[str, ...]:
        async with self._read() as conn:
            return await self._muted(conn, user_id)

    # -- reads --------------------------------------------------------------------------------------------------

    async def _position(self, conn: AsyncConnection, user_id: str) -> FeedPosition:
        row = (
            await conn.execute(
                sa.select(feeds.c.last_seq, feeds.c.unread_count, feeds.c.unseen_count).where(
                    feeds.c.user_id == user_id
                )
            )
        ).one_or_none()
        return _feed_position(row._mapping if row else None)

    async def feed_position(self, user_id: str) -> FeedPosition:
        if self._is_postgres:  # one statement is its own snapshot: no transaction needed
            async with self._driver() as driver:
                row = await driver.fetchrow(_POSITION, user_id)
            return _feed_position(row)
        return await self._sqlite_position(user_id)

    @_to_the_end
    async def _sqlite_position(self, user_id: str) -> FeedPosition:
        async with self._read() as conn:
            return await self._position(conn, user_id)

    @_to_the_end
    async def get_notification(self, notification_id: str, *, owner: str | None) -> NotificationRecord | None:
        query = sa.select(*_NOTIFICATION_COLUMNS).where(notifications.c.id == notification_id, LIVE)
        if owner is not None:
            query = query.where(notifications.c.user_id == owner)
        async with self._read() as conn:
            row = (await conn.execute(query)).one_or_none()
        return _record(row) if row else None

    @_to_the_end
    async def list_notifications(
        self,
        *,
        user_id: str,
        first: int,
        before_seq: int | None = None,
        read: bool | None = None,
        type: NotificationType | None = None,
        archived: bool | None = False,
        category: str | None = None,
        snoozed: bool | None = False,
    ) -> NotificationPage:
        """Newest first, keyset-paginated by position; counts and feed position from the same snapshot.

        `archived` False (the inbox) leaves archived notifications out, True lists only them, None both; `snoozed`
        likewise for snoozed ones.
        """
        query = sa.select(*_NOTIFICATION_COLUMNS).where(notifications.c.user_id == user_id, LIVE)
        if archived is True:
            query = query.where(notifications.c.archived_at.is_not(None))
        elif archived is False:
            query = query.where(notifications.c.archived_at.is_(None))
        if snoozed is True:
            query = query.where(notifications.c.snoozed_until.is_not(None))
        elif snoozed is False:
            query = query.where(notifications.c.snoozed_until.is_(None))
        if category is not None:
            query = query.where(notifications.c.category == category)
        if before_seq is not None:
            query = query.where(notifications.c.seq < before_seq)
        if read is True:
            query = query.where(notifications.c.read_at.is_not(None))
        elif read is False:
            query = query.where(notifications.c.read_at.is_(None))
        if type is not None:
            query = query.where(notifications.c.type == type.value)
        query = query.order_by(notifications.c.seq.desc()).limit(first + 1)
        async with self._read() as conn:
            position = await self._position(conn, user_id)
            rows = (await conn.execute(query)).all()
        return NotificationPage(
            items=[_record(row) for row in rows[:first]], has_next_page=len(rows) > first, position=position
        )

    @_to_the_end
    async def unread_notifications(self, *, user_id: str, first: int) -> list[NotificationRecord]:
        query = (
            sa.select(*_NOTIFICATION_COLUMNS)
            .where(notifications.c.user_id == user_id, UNREAD)
            .order_by(notifications.c.seq.desc())
            .limit(first)
        )
        async with self._read() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    @_to_the_end
    async def category_counts(self, user_id: str) -> list[CategoryCounts]:
        """The user's counts in every category it has had a notification in, by category name."""
        query = (
            sa.select(category_counts.c.category, category_counts.c.unread_count, category_counts.c.unseen_count)
            .where(category_counts.c.user_id == user_id)
            .order_by(category_counts.c.category)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [CategoryCounts(row.category, row.unread_count, row.unseen_count) for row in rows]

    async def counts(self, user_id: str, *, category: str | None = None) -> Counts:
        """Unread and unseen in the user's inbox, or in one category of it: kept counts, one row read."""
        if category is None:
            position = await self.feed_position(user_id)
            return Counts(position.unread_count, position.unseen_count)
        return await self._category_counts(user_id, category)

    @_to_the_end
    async def _category_counts(self, user_id: str, category: str) -> Counts:
        query = sa.select(category_counts.c.unread_count, category_counts.c.unseen_count).where(
            category_counts.c.user_id == user_id, category_counts.c.category == category
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).one_or_none()
        return Counts(row.unread_count, row.unseen_count) if row else Counts()

    async def events_after(self, user_id: str, after_seq: int, *, limit: int) -> list[FeedEvent]:
        """The user's logged events after a position, in order (at most `limit`)."""
        if self._is_postgres:
            async with self._driver() as driver:
                records = await driver.fetch(_EVENTS_AFTER, user_id, after_seq, limit)
            # The statement pool's JSON codecs decode snapshots (tidings.store.engine.create_statement_pool).
            return [_event(record, snapshot=record["snapshot"]) for record in records]
        return await self._sqlite_events_after(user_id, after_seq, limit)

    @_to_the_end
    async def _sqlite_events_after(self, user_id: str, after_seq: int, limit: int) -> list[FeedEvent]:
        query = (
            sa.select(events)
            .where(events.c.user_id == user_id, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_event(row._mapping, snapshot=row._mapping["snapshot"]) for row in rows]  # not Row.count: tuple's

    async def feed_positions(self, user_ids: Sequence[str]) -> dict[str, int]:
        """Last positions of many users in one query (for periodic catch-up of local subscribers)."""
        if not user_ids:
            return {}
        if self._is_postgres:  # one array parameter: no statement of a thousand placeholders to build every sync
            async with self._driver() as driver:
                records = await driver.fetch(_POSITIONS, list(user_ids))
            return {record["user_id"]: record["last_seq"] for record in records}
        return await self._sqlite_positions(user_ids)

    @_to_the_end
    async def _sqlite_positions(self, user_ids: Sequence[str]) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(feeds.c.user_id, feeds.c.last_seq).where(feeds.c.user_id.in_(user_ids)))
            ).all()
        return {row.user_id: row.last_seq for row in rows}

    # -- retention ----------------------------------------------------------------------------------------------

    async def purge_before(self, cutoff: datetime, *, batch_size: int = PURGE_BATCH) -> tuple[int, int]:
        """Forget events and tombstones older than `cutoff`; returns (events, tombstones) removed.

        In batches of `batch_size` rows, each its own transaction: a backlog of any size never runs into the
        statement timeout, and on SQLite writers wait for one batch, not for the whole purge. A cursor from before
        the purge then finds its next event missing and gets RESYNC.
        """
        old_events = sa.tuple_(events.c.user_id, events.c.seq).in_(
            sa.select(events.c.user_id, events.c.seq).where(events.c.created_at < cutoff).limit(batch_size)
        )
        removed_events = await self._delete_in_batches(events.delete().where(old_events), batch_size)
        removed_tombstones = 0
        while True:
            batch = await self._purge_tombstones(cutoff, batch_size)
            removed_tombstones += batch
            if batch < batch_size:
                return removed_events, removed_tombstones
            await asyncio.sleep(0)

    @_to_the_end
    async def _purge_tombstones(self, cutoff: datetime, batch_size: int) -> int:
        """One batch of tombstones, with the keys of the creates that folded into them (a retry with one of those
        keys then makes a new notification, as a retry with the tombstone's own key does)."""
        async with self._write() as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(notifications.c.id).where(notifications.c.deleted_at < cutoff).limit(batch_size)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0
            await conn.execute(collapsed_creates.delete().where(collapsed_creates.c.notification_id.in_(ids)))
            return int((await conn.execute(notifications.delete().where(notifications.c.id.in_(ids)))).rowcount)

    async def _delete_in_batches(self, statement: sa.Delete, batch_size: int) -> int:
        removed = 0
        while True:
            batch = await self._delete_batch(statement)
            removed += batch
            if batch < batch_size:
                return removed
            await asyncio.sleep(0)  # let the writers that waited for this batch go first

    @_to_the_end
    async def _delete_batch(self, statement: sa.Delete) -> int:
        async with self._write() as conn:
            return int((await conn.execute(statement)).rowcount)


def _feed_position(values: Any) -> FeedPosition:
    if values is None:
        return FeedPosition(0, 0, 0)
    return FeedPosition(
        seq=values["last_seq"], unread_count=values["unread_count"], unseen_count=values["unseen_count"]
    )


def _event(values: Any, *, snapshot: dict[str, Any] | None) -> FeedEvent:
    return FeedEvent(
        user_id=values["user_id"],
        seq=values["seq"],
        kind=EventKind(values["kind"]),
        unread_count=values["unread_count"],
        unseen_count=values["unseen_count"],
        notification=NotificationRecord.from_dict(snapshot) if snapshot else None,
        up_to_seq=values["up_to_seq"],
        count=values["count"],
        category_counts=category_counts_from_json(values["category_counts"]),
        muted_categories=muted_from_json(values["muted_categories"]),
        deleted=DeleteFilter.from_json(values["deleted"]),
    )
