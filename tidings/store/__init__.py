"""Persistence: one SQLAlchemy store for SQLite and PostgreSQL, and the records it hands out."""

import asyncpg.exceptions
import sqlalchemy.exc

from tidings.store.engine import create_engine
from tidings.store.models import MAX_CATEGORY
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
)
from tidings.store.sql import SqlStore

# What an unreachable or overloaded database raises: answered SERVICE_UNAVAILABLE, waited out by subscriptions.
_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within TIDINGS_DATABASE_TIMEOUT
    OSError,
    TimeoutError,
    # The same, from the statements that run on asyncpg directly (SqlStore._driver).
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# Refusals at connect time that asyncpg raises and SQLAlchemy passes on as a plain DBAPIError.
_REFUSED = {"TooManyConnectionsError", "CannotConnectNowError", "ConnectionDoesNotExistError"}


def database_unavailable(error: BaseException) -> bool:
    """Whether an error means "the database cannot be reached right now" rather than a bug."""
    if isinstance(error, _UNAVAILABLE):
        return True
    cause = error.__cause__
    return isinstance(error, sqlalchemy.exc.DBAPIError) and cause is not None and type(cause).__name__ in _REFUSED


__all__ = [
    "MAX_CATEGORY",
    "BulkDeleteResult",
    "CategoryCounts",
    "Counts",
    "DeleteFilter",
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
    "database_unavailable",
]
