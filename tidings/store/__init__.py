"""Persistence: one SQLAlchemy store for SQLite and PostgreSQL, and the records it hands out."""

import sqlalchemy.exc

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

# What an unreachable or overloaded database raises: answered SERVICE_UNAVAILABLE, waited out by subscriptions.
DATABASE_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within TIDINGS_DATABASE_TIMEOUT
    OSError,
    TimeoutError,
)

__all__ = [
    "DATABASE_UNAVAILABLE",
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
