"""What each change of the inbox does: to one notification, to many at once, and to the counts kept beside the feed.

The counts (`user_feeds` and `category_counts`) are never recounted: every change moves them by what it changed, in
the transaction that holds the user's feed lock. For one notification that is `counted(after) - counted(before)`;
for many, each action says how the counts of the rows it changes move (`BulkChange.effect`). A later state (snooze,
expiry, mute) adds its rule to `counted` and its predicate to `IN_INBOX`, and the counts follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.models import UTCDateTime, notifications
from tidings.store.records import Counts, EventKind, NotificationRecord

LIVE = notifications.c.deleted_at.is_(None)
# Listed and counted by default: live and not archived.
IN_INBOX = sa.and_(LIVE, notifications.c.archived_at.is_(None))
UNREAD = sa.and_(notifications.c.read_at.is_(None), IN_INBOX)
UNSEEN = sa.and_(notifications.c.seen_at.is_(None), IN_INBOX)
READ = sa.and_(notifications.c.read_at.is_not(None), IN_INBOX)

# The new values of a notification's columns (named as the record's fields), or {} when it is so already.
Change = Callable[[NotificationRecord, datetime], dict[str, Any]]


def marking_read(current: NotificationRecord, now: datetime) -> dict[str, Any]:
    """Read implies seen: a notification read on one device no longer lights the bell on another."""
    if current.read_at is not None:
        return {}
    return {"read_at": now} if current.seen_at is not None else {"read_at": now, "seen_at": now}


def marking_unread(current: NotificationRecord, now: datetime) -> dict[str, Any]:
    """Unread again, but still seen: the user asked for it, the bell need not ring."""
    return {} if current.read_at is None else {"read_at": None}


def archiving(current: NotificationRecord, now: datetime) -> dict[str, Any]:
    return {} if current.archived_at is not None else {"archived_at": now}


def unarchiving(current: NotificationRecord, now: datetime) -> dict[str, Any]:
    return {} if current.archived_at is None else {"archived_at": None}


@dataclass(frozen=True, slots=True)
class BulkChange:
    """An action on every matching notification of a user up to a position, logged as one event."""

    kind: EventKind
    which: sa.ColumnElement[bool]  # the rows it changes (of the user, at or before the position)
    values: Callable[[datetime], dict[str, Any]]
    effect: Callable[[Counts], Counts]  # how the counts move, given what the changed rows counted before


def _read_and_seen(now: datetime) -> dict[str, Any]:
    return {"read_at": now, "seen_at": sa.func.coalesce(notifications.c.seen_at, sa.literal(now, UTCDateTime()))}


ALL_READ = BulkChange(EventKind.ALL_READ, UNREAD, _read_and_seen, lambda before: Counts() - before)
ALL_SEEN = BulkChange(
    EventKind.ALL_SEEN, UNSEEN, lambda now: {"seen_at": now}, lambda before: Counts(unseen=-before.unseen)
)
ALL_ARCHIVED = BulkChange(
    EventKind.ALL_ARCHIVED, READ, lambda now: {"archived_at": now}, lambda before: Counts() - before
)


def counts_by_category(which: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """What the rows matching `which` count, per category: (category, unread, unseen)."""
    return (
        sa.select(
            notifications.c.category,
            sa.func.coalesce(sa.func.sum(sa.case((notifications.c.read_at.is_(None), 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((notifications.c.seen_at.is_(None), 1), else_=0)), 0),
        )
        .where(which)
        .group_by(notifications.c.category)
    )


def counted(record: NotificationRecord) -> Counts:
    """What one live notification adds to the counts (the rule `IN_INBOX`, `UNREAD` and `UNSEEN` express in SQL)."""
    if record.archived_at is not None:
        return Counts()
    return Counts(unread=int(record.read_at is None), unseen=int(record.seen_at is None))
