"""Persistence: one SQLAlchemy store for SQLite and PostgreSQL, and the records it hands out."""

from tidings.store.engine import create_engine
from tidings.store.records import (
    EventKind,
    FeedEvent,
    FeedPosition,
    IdempotencyConflict,
    MarkAllResult,
    NotFound,
    NotificationPage,
    NotificationRecord,
    NotificationType,
)
from tidings.store.sql import SqlStore

__all__ = [
    "EventKind",
    "FeedEvent",
    "FeedPosition",
    "IdempotencyConflict",
    "MarkAllResult",
    "NotFound",
    "NotificationPage",
    "NotificationRecord",
    "NotificationType",
    "SqlStore",
    "create_engine",
]
