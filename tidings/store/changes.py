"""What each change of the inbox does: to one notification, to many at once, and to the counts kept beside the feed.

The counts (`user_feeds` and `category_counts`) are never recounted: every change moves them by what it changed, in
the transaction that holds the user's feed lock. For one notification that is `counted(after) - counted(before)`;
for many, each action says how the counts of the rows it changes move (`BulkChange.effect`). A later state adds its
rule to `counted` and its predicate to `IN_INBOX`, and the counts follow (snooze did: a snoozed notification counts
nothing until it comes back; an expired one is deleted).
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
# Listed and counted by default: live, not archived and not snoozed.
IN_INBOX = sa.and_(LIVE, notifications.c.archived_at.is_(None), notifications.c.snoozed_until.is_(None))
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
    """Archived means done with it: archiving a snoozed one ends its snooze (it will not come back)."""
    return {} if current.archived_at is not None else {"archived_at": now, "snoozed_until": None}


def unarchiving(current: NotificationRecord, now: datetime) -> dict[str, Any]:
    return {} if current.archived_at is None else {"archived_at": None}


# -- the timers: snooze and expiry (tidings.timers fires them) -----------------------------------------------------


def snoozing(until: datetime) -> Change:
    """Out of the inbox and its counts until `until`; snoozing an archived one takes it out of the archive, so that
    it comes back to the inbox. Snoozed already: the new time replaces the old."""

    def change(current: NotificationRecord, now: datetime) -> dict[str, Any]:
        if current.snoozed_until == until:
            return {}
        return {"snoozed_until": until, "archived_at": None}

    return change


def unsnoozing(seq: int) -> dict[str, Any]:
    """Back on top (at feed position `seq`, so newest first and after any `upTo` taken earlier) as unread and unseen:
    it rings the bell again, as a new notification would."""
    return {"snoozed_until": None, "read_at": None, "seen_at": None, "archived_at": None, "seq": seq}


def due(now: datetime) -> sa.ColumnElement[bool]:
    """Live notifications whose snooze has ended or whose expiry has come (by the partial indexes of both)."""
    column = notifications.c
    return sa.and_(
        LIVE,
        sa.or_(
            sa.and_(column.snoozed_until.is_not(None), column.snoozed_until <= now),
            sa.and_(column.expires_at.is_not(None), column.expires_at <= now),
        ),
    )


def expired(record: NotificationRecord, now: datetime) -> bool:
    """Expiry wins over a snooze ending at the same time: it would come back only to go."""
    return record.expires_at is not None and record.expires_at <= now


def due_at(record: NotificationRecord) -> datetime:
    """When its timer is due: the earlier of its snooze's end and its expiry."""
    times = [time for time in (record.snoozed_until, record.expires_at) if time is not None]
    return min(times)


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
    if record.archived_at is not None or record.snoozed_until is not None:
        return Counts()
    return Counts(unread=int(record.read_at is None), unseen=int(record.seen_at is None))
