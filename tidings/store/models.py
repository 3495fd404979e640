"""Tables. The per-user feed row is the lock that orders every change of that user's notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
MAX_CATEGORY = 64
MAX_KEY = 200  # idempotency and collapse keys
# Deleted and archived notifications are out of the inbox: the unseen index's predicate. Snoozed ones are out too
# (tidings.store.changes.IN_INBOX); the queries that add that term still use the index.
IN_INBOX = "deleted_at IS NULL AND archived_at IS NULL"
# Live notifications with a timer set: a snooze to end, an expiry to come.
SNOOZED = "snoozed_until IS NOT NULL AND deleted_at IS NULL"
EXPIRING = "expires_at IS NOT NULL AND deleted_at IS NULL"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Meta(SQLModel, table=True):
    """Facts about this database, such as the feed epoch that cursors carry."""

    __tablename__: ClassVar[str] = "tidings_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)


class UserFeed(SQLModel, table=True):
    """One row per user: the last feed position and the counts after it, changed only under its row lock."""

    __tablename__: ClassVar[str] = "user_feeds"

    user_id: str = Field(primary_key=True, max_length=200)
    last_seq: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    unread_count: int = Field(default=0, nullable=False)
    unseen_count: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    # The categories whose new notifications arrive read and seen, by name; null for none (read under this lock).
    muted_categories: list[str] | None = Field(default=None, sa_type=JSONType)


class CategoryCount(SQLModel, table=True):
    """A user's unread and unseen counts in one category, changed with the feed row and under its lock."""

    __tablename__: ClassVar[str] = "category_counts"

    user_id: str = Field(primary_key=True, max_length=200)
    category: str = Field(primary_key=True, max_length=MAX_CATEGORY)
    unread_count: int = Field(default=0, nullable=False)
    unseen_count: int = Field(default=0, nullable=False)


class Notification(SQLModel, table=True):
    """A user's notification. Deleted ones stay as tombstones so idempotency keys keep their meaning."""

    __tablename__: ClassVar[str] = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "seq", name="uq_notifications_user_seq"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_notifications_user_idempotency_key"),
        # Unread, live notifications of a user by position: unread lists, counts and mark-all-read use only this.
        sa.Index(
            "ix_notifications_user_unread",
            "user_id",
            "seq",
            postgresql_where=sa.text("read_at IS NULL AND deleted_at IS NULL"),
            sqlite_where=sa.text("read_at IS NULL AND deleted_at IS NULL"),
        ),
        sa.Index("ix_notifications_deleted_at", "deleted_at"),
        # Unseen ones in the inbox by position: mark-all-seen uses only this.
        sa.Index(
            "ix_notifications_user_unseen",
            "user_id",
            "seq",
            postgresql_where=sa.text(f"seen_at IS NULL AND {IN_INBOX}"),
            sqlite_where=sa.text(f"seen_at IS NULL AND {IN_INBOX}"),
        ),
        # The archive list, without walking the inbox.
        sa.Index(
            "ix_notifications_user_archived",
            "user_id",
            "seq",
            postgresql_where=sa.text("archived_at IS NOT NULL AND deleted_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NOT NULL AND deleted_at IS NULL"),
        ),
        # A category's tab, newest first.
        sa.Index("ix_notifications_user_category", "user_id", "category", "seq"),
        # The timers (tidings.timers): the next snooze or expiry due, without walking the table.
        sa.Index(
            "ix_notifications_snoozed_until",
            "snoozed_until",
            postgresql_where=sa.text(SNOOZED),
            sqlite_where=sa.text(SNOOZED),
        ),
        sa.Index(
            "ix_notifications_expires_at",
            "expires_at",
            postgresql_where=sa.text(EXPIRING),
            sqlite_where=sa.text(EXPIRING),
        ),
        # The unread notification a create with a collapse key folds into.
        sa.Index(
            "ix_notifications_user_collapse",
            "user_id",
            "collapse_key",
            postgresql_where=sa.text(f"collapse_key IS NOT NULL AND read_at IS NULL AND {IN_INBOX}"),
            sqlite_where=sa.text(f"collapse_key IS NOT NULL AND read_at IS NULL AND {IN_INBOX}"),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(max_length=200, nullable=False)
    seq: int = Field(sa_type=sa.BigInteger, nullable=False)
    type: str = Field(max_length=16, nullable=False)
    title: str = Field(max_length=200, nullable=False)
    message: str = Field(sa_type=sa.Text, nullable=False)
    data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    category: str | None = Field(default=None, max_length=MAX_CATEGORY)
    snoozed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str | None = Field(default=None, max_length=64)
    collapse_key: str | None = Field(default=None, max_length=MAX_KEY)
    collapsed_count: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    muted: bool = Field(default=False, nullable=False, sa_column_kwargs={"server_default": sa.false()})


class CollapsedCreate(SQLModel, table=True):
    """The idempotency key of a create that folded into an existing notification: a retry finds that notification."""

    __tablename__: ClassVar[str] = "collapsed_creates"

    user_id: str = Field(primary_key=True, max_length=200)
    idempotency_key: str = Field(primary_key=True, max_length=MAX_KEY)
    notification_id: str = Field(max_length=36, nullable=False, index=True)
    request_hash: str = Field(max_length=64, nullable=False)


class NotificationEvent(SQLModel, table=True):
    """The per-user event log: what each feed position was, kept as it was delivered live."""

    __tablename__: ClassVar[str] = "notification_events"
    __table_args__ = (sa.Index("ix_notification_events_created_at", "created_at"),)

    user_id: str = Field(primary_key=True, max_length=200)
    seq: int = Field(primary_key=True, sa_type=sa.BigInteger)
    kind: str = Field(max_length=16, nullable=False)
    notification_id: str | None = Field(default=None, max_length=36)
    snapshot: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    unread_count: int = Field(nullable=False)
    unseen_count: int = Field(nullable=False, sa_column_kwargs={"server_default": "0"})
    up_to_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    count: int | None = Field(default=None)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    category_counts: list[Any] | None = Field(default=None, sa_type=JSONType)  # [[category, unread, unseen], ...]
    muted_categories: list[str] | None = Field(default=None, sa_type=JSONType)  # PREFERENCES: muted after it
    deleted: dict[str, Any] | None = Field(default=None, sa_type=JSONType)  # BULK_DELETED: its filter


metadata = SQLModel.metadata
meta_table: sa.Table = Meta.__table__  # type: ignore[attr-defined]
feeds: sa.Table = UserFeed.__table__  # type: ignore[attr-defined]
category_counts: sa.Table = CategoryCount.__table__  # type: ignore[attr-defined]
notifications: sa.Table = Notification.__table__  # type: ignore[attr-defined]
events: sa.Table = NotificationEvent.__table__  # type: ignore[attr-defined]
collapsed_creates: sa.Table = CollapsedCreate.__table__  # type: ignore[attr-defined]
