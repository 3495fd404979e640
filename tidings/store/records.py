"""What the store hands out: plain, immutable records that serialize the same way live and replayed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson


class NotificationType(StrEnum):
    INFO = "INFO"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    ERROR = "ERROR"


class EventKind(StrEnum):
    CREATED = "CREATED"
    READ = "READ"
    ALL_READ = "ALL_READ"
    DELETED = "DELETED"
    RESYNC = "RESYNC"
    ALL_SEEN = "ALL_SEEN"
    UNREAD = "UNREAD"
    ARCHIVED = "ARCHIVED"
    UNARCHIVED = "UNARCHIVED"
    ALL_ARCHIVED = "ALL_ARCHIVED"
    SNOOZED = "SNOOZED"
    UNSNOOZED = "UNSNOOZED"
    EXPIRED = "EXPIRED"
    UPDATED = "UPDATED"
    PREFERENCES = "PREFERENCES"
    BULK_DELETED = "BULK_DELETED"


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A notification as it was at one moment (its row, or the snapshot kept with an event)."""

    id: str
    user_id: str
    seq: int
    type: NotificationType
    title: str
    message: str
    data: dict[str, Any] | None
    read_at: datetime | None
    created_at: datetime
    seen_at: datetime | None
    archived_at: datetime | None
    category: str | None
    snoozed_until: datetime | None = None  # out of the inbox and its counts until then (tidings.timers)
    expires_at: datetime | None = None  # then it expires: deleted by the timer, with an EXPIRED event
    collapse_key: str | None = None
    collapsed_count: int = 0  # creates folded into it after the first (collapse keys)
    updated_at: datetime | None = None  # when a create last folded into it
    muted: bool = False  # created in a category the user had muted: stored read and seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "seq": self.seq,
            "type": self.type.value,
            "title": self.title,
            "message": self.message,
            "data": self.data,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "created_at": self.created_at.isoformat(),
            "seen_at": _iso(self.seen_at),
            "archived_at": _iso(self.archived_at),
            "category": self.category,
            "snoozed_until": _iso(self.snoozed_until),
            "expires_at": _iso(self.expires_at),
            "collapse_key": self.collapse_key,
            "collapsed_count": self.collapsed_count,
            "updated_at": _iso(self.updated_at),
            "muted": self.muted,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NotificationRecord:
        read_at = _datetime(raw["read_at"])
        return cls(
            id=raw["id"],
            user_id=raw["user_id"],
            seq=raw["seq"],
            type=NotificationType(raw["type"]),
            title=raw["title"],
            message=raw["message"],
            data=raw["data"],
            read_at=read_at,
            created_at=datetime.fromisoformat(raw["created_at"]),
            # Snapshots from before seen and archive (migration 0002): seen was read, nothing was archived.
            seen_at=_datetime(raw["seen_at"]) if "seen_at" in raw else read_at,
            archived_at=_datetime(raw.get("archived_at")),
            category=raw.get("category"),
            snoozed_until=_datetime(raw.get("snoozed_until")),
            expires_at=_datetime(raw.get("expires_at")),
            # Snapshots from before collapse keys (migration 0004): none was collapsed.
            collapse_key=raw.get("collapse_key"),
            collapsed_count=raw.get("collapsed_count", 0),
            updated_at=_datetime(raw.get("updated_at")),
            muted=raw.get("muted", False),
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Counts:
    """How many notifications are unread and how many unseen: a user's, one category's, or a change of them."""

    unread: int = 0
    unseen: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.unread + other.unread, self.unseen + other.unseen)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.unread - other.unread, self.unseen - other.unseen)

    def __bool__(self) -> bool:
        return self.unread != 0 or self.unseen != 0


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One change to a user's notifications, at position `seq` of that user's feed."""

    user_id: str
    seq: int
    kind: EventKind
    unread_count: int
    unseen_count: int
    notification: NotificationRecord | None = None
    up_to_seq: int | None = None  # ALL_*: notifications created at or before this position were changed
    count: int | None = None  # ALL_*: how many were changed
    category_counts: tuple[CategoryCounts, ...] = ()  # of each category it changed, right after it, by name
    # Wall-clock time its mutation published it after commit: carried by live wake-ups only, for the delivery latency
    # (tidings_delivery_latency_seconds). Not part of what the event is: replayed and live compare equal.
    committed_at: float | None = field(default=None, compare=False)
    muted_categories: tuple[str, ...] | None = None  # PREFERENCES: the user's muted categories after it
    deleted: DeleteFilter | None = None  # BULK_DELETED: which notifications up to `up_to_seq` it deleted

    @property
    def category(self) -> str | None:
        """The category of the notification the event concerns (None for events of many)."""
        return self.notification.category if self.notification is not None else None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "user_id": self.user_id,
                "seq": self.seq,
                "kind": self.kind.value,
                "unread_count": self.unread_count,
                "unseen_count": self.unseen_count,
                "notification": self.notification.to_dict() if self.notification else None,
                "up_to_seq": self.up_to_seq,
                "count": self.count,
                "category_counts": category_counts_to_json(self.category_counts),
                "committed_at": self.committed_at,
                "muted_categories": muted_to_json(self.muted_categories),
                "deleted": self.deleted.to_json() if self.deleted is not None else None,
            }
        )

    @classmethod
    def from_json(cls, payload: bytes) -> FeedEvent:
        raw = orjson.loads(payload)
        return cls(
            user_id=raw["user_id"],
            seq=raw["seq"],
            kind=EventKind(raw["kind"]),
            unread_count=raw["unread_count"],
            # A wake-up from a process not yet upgraded: before migration 0002, unseen was unread.
            unseen_count=raw.get("unseen_count", raw["unread_count"]),
            notification=NotificationRecord.from_dict(raw["notification"]) if raw["notification"] else None,
            up_to_seq=raw["up_to_seq"],
            count=raw["count"],
            category_counts=category_counts_from_json(raw.get("category_counts")),
            committed_at=raw.get("committed_at"),
            muted_categories=muted_from_json(raw.get("muted_categories")),
            deleted=DeleteFilter.from_json(raw.get("deleted")),
        )


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a user's feed stands: the last committed event and the counts after it."""

    seq: int
    unread_count: int
    unseen_count: int


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """A user's unread and unseen counts in one category (for a tab and its badge)."""

    category: str
    unread_count: int
    unseen_count: int


def category_counts_to_json(counts: tuple[CategoryCounts, ...]) -> list[list[Any]] | None:
    """As the event log keeps them: arrays, whose order (unlike an object's keys) jsonb keeps too."""
    return [[c.category, c.unread_count, c.unseen_count] for c in counts] if counts else None


def category_counts_from_json(raw: list[list[Any]] | None) -> tuple[CategoryCounts, ...]:
    return tuple(CategoryCounts(category, unread, unseen) for category, unread, unseen in raw or ())


@dataclass(frozen=True, slots=True)
class DeleteFilter:
    """Which of a user's notifications a bulk delete takes: None for a field means either."""

    read: bool | None = None
    archived: bool | None = None
    category: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"read": self.read, "archived": self.archived, "category": self.category}

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> DeleteFilter | None:
        return cls(raw["read"], raw["archived"], raw["category"]) if raw is not None else None


@dataclass(frozen=True, slots=True)
class BulkDeleteResult:
    """What a bulk delete did: `has_more` when more matched than one call deletes (the oldest went first)."""

    count: int
    has_more: bool
    position: FeedPosition
    event: FeedEvent | None


def muted_to_json(categories: tuple[str, ...] | None) -> list[str] | None:
    return list(categories) if categories is not None else None


def muted_from_json(raw: list[str] | None) -> tuple[str, ...] | None:
    return tuple(raw) if raw is not None else None


@dataclass(frozen=True, slots=True)
class NotificationPage:
    """A page of notifications with the unread count and feed position read in the same snapshot."""

    items: list[NotificationRecord]
    has_next_page: bool
    position: FeedPosition


@dataclass(frozen=True, slots=True)
class MarkAllResult:
    count: int
    position: FeedPosition
    event: FeedEvent | None


class NotFound(Exception):
    """No such notification for this caller (absent, deleted, or someone else's)."""


class IdempotencyConflict(Exception):
    """An idempotency key reused with a different payload (`item`: which of a batch's items, counted from 0)."""

    def __init__(self, message: str, *, item: int | None = None) -> None:
        super().__init__(message)
        self.item = item
