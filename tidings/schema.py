"""The GraphQL types of tidings. SDL descriptions here are the API documentation users read in GraphiQL."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from tidings.cursors import FeedCursor, encode_page_cursor
from tidings.inputs import (
    MAX_CATEGORY,
    MAX_COLLAPSE_KEY,
    MAX_DATA_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_MESSAGE,
    MAX_TITLE,
)
from tidings.store import records

DateTime = strawberry.scalar(
    name="DateTime",
    description="An ISO-8601 date and time with UTC offset, e.g. 2026-11-28T21:04:13.123456+00:00.",
    serialize=lambda value: value.isoformat(),
    parse_value=lambda value: datetime.fromisoformat(value),
)

strawberry.enum(
    records.NotificationType, name="NotificationType", description="How a notification should look: its severity."
)
strawberry.enum(
    records.EventKind,
    name="NotificationEventKind",
    description=(
        "What happened. CREATED, READ, UNREAD, ARCHIVED, UNARCHIVED, SNOOZED, UNSNOOZED, UPDATED and DELETED carry "
        "the notification as it is after the event (DELETED: as it was last); UNSNOOZED: a snooze ended and the "
        "notification is back on top, unread and unseen; UPDATED: a create with its collapse key folded into it, which "
        "moved it to the top; EXPIRED: its `expiresAt` came and it is gone (carried as it "
        "was last); ALL_READ, ALL_SEEN and ALL_ARCHIVED changed every notification "
        "up to `upToSequence` that was unread, unseen, or read and in the inbox, respectively (`count` of them); "
        "PREFERENCES set the user's `mutedCategories`; BULK_DELETED deleted every notification up to "
        "`upToSequence` that matched `deleted` (`count` of them); "
        "RESYNC means events were missed beyond recovery: refetch, then continue from its cursor."
    ),
)


@strawberry.type(description="A notification for one user.")
class Notification:
    id: strawberry.ID = strawberry.field(description="Opaque, stable identifier.")
    user_id: strawberry.ID = strawberry.field(description="The user this notification is for.")
    type: records.NotificationType = strawberry.field(description="Severity, for colour and icon.")
    title: str = strawberry.field(description=f"Short headline (at most {MAX_TITLE:,} characters).")
    message: str = strawberry.field(description=f"Body text (at most {MAX_MESSAGE:,} characters).")
    data: JSON | None = strawberry.field(
        description=f"Application data: a JSON object (at most {MAX_DATA_BYTES // 1024} KiB), or null."
    )
    read: bool = strawberry.field(description="Whether the user has read it.")
    read_at: datetime | None = strawberry.field(description="When it was read (ISO-8601, UTC), or null.")
    created_at: datetime = strawberry.field(description="When it was created (ISO-8601, UTC).")
    sequence: int = strawberry.field(
        description=(
            "Position in the user's feed at which it was created, or last updated by a create with its collapse key "
            "(which moves it to the top), or where its snooze ended; ALL_READ marks those up to a position."
        )
    )
    seen: bool = strawberry.field(
        description="Whether the user has seen it: opened the inbox it is in (markAllNotificationsSeen) or read it."
    )
    seen_at: datetime | None = strawberry.field(description="When it was first seen (ISO-8601, UTC), or null.")
    archived: bool = strawberry.field(description="Whether it is archived: out of the inbox and its counts.")
    archived_at: datetime | None = strawberry.field(description="When it was archived (ISO-8601, UTC), or null.")
    category: str | None = strawberry.field(description="The category it was created in (a tab), or null.")
    snoozed: bool = strawberry.field(
        description="Whether it is snoozed: out of the inbox and its counts until `snoozedUntil`."
    )
    snoozed_until: datetime | None = strawberry.field(
        description="When its snooze ends and it comes back on top, unread (ISO-8601, UTC), or null."
    )
    expires_at: datetime | None = strawberry.field(
        description="When it expires: it then leaves every list and count, with an EXPIRED event; or null."
    )
    collapse_key: str | None = strawberry.field(description="The collapse key it was created with, or null.")
    collapsed_count: int = strawberry.field(
        description=(
            "How many later creates with its collapse key folded into it while it was unread (0 for none): "
            '"Alice and 3 others commented" is a collapsedCount of 3.'
        )
    )
    updated_at: datetime | None = strawberry.field(
        description="When a create with its collapse key last folded into it (ISO-8601, UTC), or null."
    )
    muted: bool = strawberry.field(
        description="Whether it arrived in a category the user had muted: stored read and seen, never counted."
    )

    @classmethod
    def from_record(cls, record: records.NotificationRecord) -> Notification:
        return cls(
            id=strawberry.ID(record.id),
            user_id=strawberry.ID(record.user_id),
            type=record.type,
            title=record.title,
            message=record.message,
            data=JSON(record.data) if record.data is not None else None,
            read=record.read_at is not None,
            read_at=record.read_at,
            created_at=record.created_at,
            sequence=record.seq,
            seen=record.seen_at is not None,
            seen_at=record.seen_at,
            archived=record.archived_at is not None,
            archived_at=record.archived_at,
            category=record.category,
            snoozed=record.snoozed_until is not None,
            snoozed_until=record.snoozed_until,
            expires_at=record.expires_at,
            collapse_key=record.collapse_key,
            collapsed_count=record.collapsed_count,
            updated_at=record.updated_at,
            muted=record.muted,
        )


@strawberry.type(description="Pagination state (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether older notifications follow.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page; null when empty.")


@strawberry.type(description="One notification in a page, with its page cursor.")
class NotificationEdge:
    cursor: str = strawberry.field(description="Page cursor of this notification.")
    node: Notification = strawberry.field(description="The notification.")


@strawberry.type(description="A page of notifications, newest first, with the unread count and feed position.")
class NotificationConnection:
    edges: list[NotificationEdge] = strawberry.field(description="The notifications of this page, newest first.")
    page_info: PageInfo = strawberry.field(description="How to fetch the next page.")
    unread_count: int = strawberry.field(description="The user's unread count, read in the same snapshot as the page.")
    unseen_count: int = strawberry.field(
        description="The user's unseen count (the bell's badge), read in the same snapshot as the page."
    )
    feed_cursor: str = strawberry.field(
        description=(
            "Position of the user's event feed in that same snapshot: subscribe with "
            "`notificationEvents(after: feedCursor)` to miss nothing that happens after this page was read."
        )
    )

    @classmethod
    def from_page(cls, page: records.NotificationPage, epoch: str) -> NotificationConnection:
        edges = [
            NotificationEdge(cursor=encode_page_cursor(item.seq), node=Notification.from_record(item))
            for item in page.items
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None),
            unread_count=page.position.unread_count,
            unseen_count=page.position.unseen_count,
            feed_cursor=FeedCursor(epoch, page.position.seq).encode(),
        )


@strawberry.type(description="The counts of one category: a tab and its badges.")
class CategoryCount:
    category: str = strawberry.field(description="The category.")
    unread_count: int = strawberry.field(description="Unread notifications in it (archived ones not counted).")
    unseen_count: int = strawberry.field(description="Unseen notifications in it (archived ones not counted).")

    @classmethod
    def from_record(cls, counts: records.CategoryCounts) -> CategoryCount:
        return cls(category=counts.category, unread_count=counts.unread_count, unseen_count=counts.unseen_count)


@strawberry.type(description="Which notifications a BULK_DELETED event deleted (null fields: either).")
class DeletedNotificationsFilter:
    read: bool | None = strawberry.field(description="Only read ones (true) or only unread ones (false).")
    archived: bool | None = strawberry.field(description="Only archived ones (true) or only the inbox (false).")
    category: str | None = strawberry.field(description="Only this category.")

    @classmethod
    def from_record(cls, which: records.DeleteFilter) -> DeletedNotificationsFilter:
        return cls(read=which.read, archived=which.archived, category=which.category)


@strawberry.type(description="One change to the user's notifications, delivered to every connection of that user.")
class NotificationEvent:
    kind: records.EventKind = strawberry.field(description="What happened.")
    cursor: str = strawberry.field(description="Resume point: pass as `after` to continue right after this event.")
    notification: Notification | None = strawberry.field(
        description="For events of one notification: the notification as it was right after the event. Null otherwise."
    )
    unread_count: int = strawberry.field(description="The user's unread count right after this event.")
    sequence: int = strawberry.field(description="Position of this event in the user's feed (strictly increasing).")
    up_to_sequence: int | None = strawberry.field(
        description=(
            "For ALL_READ, ALL_SEEN and ALL_ARCHIVED: it changed notifications whose `sequence` is at or below this. "
            "Null otherwise."
        )
    )
    count: int | None = strawberry.field(
        description="For ALL_READ, ALL_SEEN and ALL_ARCHIVED: how many notifications it changed."
    )
    unseen_count: int = strawberry.field(
        description="The user's unseen count (the bell's badge) right after this event."
    )
    category: str | None = strawberry.field(
        description="The category of the notification the event concerns; null when it has none, or for events of many."
    )
    category_counts: list[CategoryCount] = strawberry.field(
        description=(
            "The counts of each category this event changed, right after it (empty when it changed none): a tab's "
            "badges follow the events without a refetch."
        )
    )
    muted_categories: list[str] | None = strawberry.field(
        description="For PREFERENCES: the user's muted categories after it, by name. Null otherwise."
    )
    deleted: DeletedNotificationsFilter | None = strawberry.field(
        description=(
            "For BULK_DELETED: which notifications it deleted, of those whose `sequence` is at or below "
            "`upToSequence` (drop exactly those from a list). Null otherwise."
        )
    )

    @classmethod
    def from_event(cls, event: records.FeedEvent, epoch: str) -> NotificationEvent:
        return cls(
            kind=event.kind,
            cursor=FeedCursor(epoch, event.seq).encode(),
            notification=Notification.from_record(event.notification) if event.notification else None,
            unread_count=event.unread_count,
            sequence=event.seq,
            up_to_sequence=event.up_to_seq,
            count=event.count,
            unseen_count=event.unseen_count,
            category=event.category,
            category_counts=[CategoryCount.from_record(counts) for counts in event.category_counts],
            muted_categories=list(event.muted_categories) if event.muted_categories is not None else None,
            deleted=DeletedNotificationsFilter.from_record(event.deleted) if event.deleted is not None else None,
        )


@strawberry.input(description="Narrow a notification list.")
class NotificationFilter:
    read: bool | None = strawberry.field(default=None, description="Only read (true) or only unread (false).")
    type: records.NotificationType | None = strawberry.field(default=None, description="Only this type.")
    archived: bool | None = strawberry.field(
        default=False, description="Only archived (true), only the inbox (false, the default), or both (null)."
    )
    category: str | None = strawberry.field(default=None, description="Only this category.")
    snoozed: bool | None = strawberry.field(
        default=False, description="Only snoozed (true, a snoozed tab), only not snoozed (false, the default), or both."
    )


@strawberry.input(
    description="A notification to create (service tokens only). No text of it, not even in `data`, may contain NUL."
)
class CreateNotificationInput:
    user_id: strawberry.ID = strawberry.field(description="The user to notify.")
    title: str = strawberry.field(description=f"Non-blank, at most {MAX_TITLE:,} characters.")
    message: str = strawberry.field(description=f"At most {MAX_MESSAGE:,} characters.")
    type: records.NotificationType | None = strawberry.field(
        default=records.NotificationType.INFO, description="Severity (INFO when omitted or null)."
    )
    data: JSON | None = strawberry.field(
        default=None, description=f"A JSON object of at most {MAX_DATA_BYTES // 1024} KiB, or null."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description=(
            f"At most {MAX_IDEMPOTENCY_KEY:,} characters. Retrying with a key already used for this user returns the "
            "original notification and delivers nothing new; the same key with a different payload is an error."
        ),
    )
    category: str | None = strawberry.field(
        default=None,
        description=(
            f"A category for tabs and their counts, or null: 1 to {MAX_CATEGORY} letters, digits and `_ - . : /`, "
            "starting with a letter or digit (e.g. `comments`, `billing.invoices`)."
        ),
    )
    expires_at: datetime | None = strawberry.field(
        default=None,
        description=(
            "When it expires, or null for never: in the future, at most 366 days ahead, with a UTC offset. It then "
            "leaves every list and count and devices get an EXPIRED event. Not part of the idempotency comparison."
        ),
    )
    collapse_key: str | None = strawberry.field(
        default=None,
        description=(
            f"At most {MAX_COLLAPSE_KEY:,} characters. While the user has an unread notification in the inbox with "
            "this key and the same category, this create updates that one in place (title, message, type, data, "
            "expiresAt; `collapsedCount` + 1; unseen again; moved to the top) with an UPDATED event instead of adding "
            "a row. With an "
            "idempotency key, a retry returns that notification and delivers nothing new."
        ),
    )


@strawberry.type(description="Result of marking notifications read in one step.")
class MarkAllReadResult:
    count: int = strawberry.field(description="How many notifications were marked read.")
    unread_count: int = strawberry.field(description="The user's unread count afterwards.")
    cursor: str = strawberry.field(
        description="Feed position after the ALL_READ event (or the current position when nothing changed)."
    )


@strawberry.type(description="Result of marking notifications seen in one step.")
class MarkAllSeenResult:
    count: int = strawberry.field(description="How many notifications were marked seen.")
    unseen_count: int = strawberry.field(description="The user's unseen count afterwards.")
    cursor: str = strawberry.field(
        description="Feed position after the ALL_SEEN event (or the current position when nothing changed)."
    )


@strawberry.type(description="Result of archiving notifications in one step.")
class ArchiveAllResult:
    count: int = strawberry.field(description="How many notifications were archived.")
    unread_count: int = strawberry.field(description="The user's unread count afterwards.")
    unseen_count: int = strawberry.field(description="The user's unseen count afterwards.")
    cursor: str = strawberry.field(
        description="Feed position after the ALL_ARCHIVED event (or the current position when nothing changed)."
    )


# -- presence (tidings.presence) ---------------------------------------------------------------------------------


@strawberry.type(
    description=(
        "Whether a user is connected right now and on how many devices, over every server process: a service can "
        "skip an email while the user is online."
    )
)
class Presence:
    user_id: strawberry.ID = strawberry.field(description="The user asked about.")
    devices: int = strawberry.field(
        description=(
            "WebSocket connections of the user's own tokens open now (each tab or app is one). A server process that "
            "died stops counting within three TIDINGS_PRESENCE_INTERVALs."
        )
    )
    online: bool = strawberry.field(description="Whether at least one device is connected (devices > 0).")
    last_seen_at: datetime | None = strawberry.field(
        description=(
            "When a device of the user was last connected: now while one is, else when the last one left; null when "
            "not known (never connected, or longer ago than TIDINGS_RETENTION_DAYS)."
        )
    )


@strawberry.type(description="Result of setting the user's muted categories.")
class MutedCategoriesResult:
    muted_categories: list[str] = strawberry.field(description="The user's muted categories now, by name.")
    cursor: str = strawberry.field(
        description="Feed position after the PREFERENCES event (or the current position when nothing changed)."
    )


@strawberry.input(description="Which of the user's notifications deleteNotifications deletes (null fields: either).")
class DeleteNotificationsFilter:
    read: bool | None = strawberry.field(default=None, description="Only read ones (true) or only unread ones (false).")
    archived: bool | None = strawberry.field(
        default=None, description="Only archived ones (true), only the inbox (false), or both (null, the default)."
    )
    category: str | None = strawberry.field(default=None, description="Only this category.")


@strawberry.type(description="Result of deleting notifications in one step.")
class DeleteNotificationsResult:
    count: int = strawberry.field(description="How many notifications were deleted.")
    has_more: bool = strawberry.field(
        description=(
            "Whether more matched than one call deletes (TIDINGS_MAX_BULK_DELETE): the oldest went first; call again "
            "to delete the rest."
        )
    )
    unread_count: int = strawberry.field(description="The user's unread count afterwards.")
    unseen_count: int = strawberry.field(description="The user's unseen count afterwards.")
    cursor: str = strawberry.field(
        description="Feed position after the BULK_DELETED event (or the current position when nothing matched)."
    )
