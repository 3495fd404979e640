"""What the store hands out: plain, immutable records that serialize the same way live and replayed."""

from __future__ import annotations

from dataclasses import dataclass
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
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NotificationRecord:
        return cls(
            id=raw["id"],
            user_id=raw["user_id"],
            seq=raw["seq"],
            type=NotificationType(raw["type"]),
            title=raw["title"],
            message=raw["message"],
            data=raw["data"],
            read_at=datetime.fromisoformat(raw["read_at"]) if raw["read_at"] else None,
            created_at=datetime.fromisoformat(raw["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One change to a user's notifications, at position `seq` of that user's feed."""

    user_id: str
    seq: int
    kind: EventKind
    unread_count: int
    notification: NotificationRecord | None = None
    up_to_seq: int | None = None  # ALL_READ: notifications created at or before this position are read
    count: int | None = None  # ALL_READ: how many were marked

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "user_id": self.user_id,
                "seq": self.seq,
                "kind": self.kind.value,
                "unread_count": self.unread_count,
                "notification": self.notification.to_dict() if self.notification else None,
                "up_to_seq": self.up_to_seq,
                "count": self.count,
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
            notification=NotificationRecord.from_dict(raw["notification"]) if raw["notification"] else None,
            up_to_seq=raw["up_to_seq"],
            count=raw["count"],
        )


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a user's feed stands: the last committed event and the unread count after it."""

    seq: int
    unread_count: int


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
    """An idempotency key reused with a different payload."""
