"""Query, mutation and subscription logic: authorization, input rules, store calls, publish after commit."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy.exc
import strawberry
from strawberry.types import Info

from tidings.context import Context
from tidings.cursors import FeedCursor, MalformedCursor, decode_page_cursor
from tidings.errors import ErrorCode, UserError, bad_input, not_found
from tidings.inputs import (
    MAX_BATCH,
    MAX_COLLAPSE_KEY,
    MAX_DATA_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_MESSAGE,
    MAX_MUTED_CATEGORIES,
    MAX_PAGE,
    MAX_TIMER_AHEAD,
    MAX_TITLE,
    storable,
    storable_json,
)
from tidings.metrics import Metrics
from tidings.presence import PresenceUnavailable
from tidings.schema import (
    ArchiveAllResult,
    CategoryCount,
    CreateNotificationInput,
    DeleteNotificationsFilter,
    DeleteNotificationsResult,
    MarkAllReadResult,
    MarkAllSeenResult,
    MutedCategoriesResult,
    Notification,
    NotificationConnection,
    NotificationEvent,
    NotificationFilter,
    Presence,
)
from tidings.store import (
    MAX_CATEGORY,
    DeleteFilter,
    FeedEvent,
    IdempotencyConflict,
    MarkAllResult,
    NotFound,
    NotificationRecord,
    NotificationType,
    SqlStore,
    database_unavailable,
)

logger = logging.getLogger("tidings")

# Categories name tabs and sit in URLs and CSS classes of clients: a small, safe alphabet.
CATEGORY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:/-]{{0,{MAX_CATEGORY - 1}}}")
OVERLOADED_RETRY_AFTER = 1.0  # seconds a client is asked to wait when this process is saturated

T = TypeVar("T")


# -- input rules ------------------------------------------------------------------------------------------------


def _page_size(first: int, default_max: int = MAX_PAGE) -> int:
    if not 1 <= first <= default_max:
        raise bad_input(f"first must be between 1 and {default_max}", argument="first")
    return first


def _notification_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise bad_input("id is not a notification id", argument="id") from None


def _feed_cursor(value: str, argument: str) -> FeedCursor:
    try:
        return FeedCursor.decode(value)
    except MalformedCursor:
        raise bad_input(f"{argument} is not a valid feed cursor", argument=argument) from None


def _category(value: str | None, argument: str) -> str | None:
    if value is not None and CATEGORY.fullmatch(value) is None:
        raise bad_input(
            f"{argument} must be 1 to {MAX_CATEGORY} letters, digits or _ - . : /, starting with a letter or digit",
            argument=argument,
        )
    return value


def _timer_time(value: datetime, argument: str) -> datetime:
    """A time a timer may be set for: with an offset (a time without one means nothing certain), in the future,
    and at most MAX_TIMER_AHEAD ahead."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise bad_input(f"{argument} must carry a UTC offset, e.g. 2026-12-24T09:00:00+00:00", argument=argument)
    now = datetime.now(UTC)
    if value <= now:
        raise bad_input(f"{argument} must be in the future", argument=argument)
    if value > now + MAX_TIMER_AHEAD:
        raise bad_input(f"{argument} must be at most {MAX_TIMER_AHEAD.days} days ahead", argument=argument)
    return value.astimezone(UTC)


def _up_to(store: SqlStore, value: str | None) -> int | None:
    """The feed position of an `upTo` cursor (None: everything so far)."""
    if value is None:
        return None
    cursor = _feed_cursor(value, "upTo")
    if cursor.epoch != store.epoch:
        raise bad_input("upTo is a cursor of another database", argument="upTo")
    return cursor.seq


def _text(value: str, argument: str) -> None:
    """Refuse text that not every backend stores as sent (see `storable`)."""
    if not storable(value):
        raise bad_input(f"{argument} must not contain NUL characters", argument=argument)


def _validated(data: CreateNotificationInput) -> dict[str, Any]:
    if not data.title.strip():
        raise bad_input("title must not be blank", argument="title")
    if len(data.title) > MAX_TITLE:
        raise bad_input(f"title must be at most {MAX_TITLE} characters", argument="title")
    _text(data.title, "title")
    if len(data.message) > MAX_MESSAGE:
        raise bad_input(f"message must be at most {MAX_MESSAGE} characters", argument="message")
    _text(data.message, "message")
    if data.data is not None:
        if not isinstance(data.data, dict):
            raise bad_input("data must be a JSON object", argument="data")
        try:
            encoded = orjson.dumps(data.data)
        except TypeError:
            raise bad_input("data must be JSON", argument="data") from None
        if len(encoded) > MAX_DATA_BYTES:
            raise bad_input(f"data must be at most {MAX_DATA_BYTES} bytes as JSON", argument="data")
        if b"u0000" in encoded and not storable_json(data.data):  # orjson writes NUL as \u0000: walk only then
            raise bad_input("data must not contain NUL characters", argument="data")
    key = data.idempotency_key
    if key is not None:
        if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
            raise bad_input(f"idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters", argument="idempotencyKey")
        _text(key, "idempotencyKey")
    category = _category(data.category, "category")
    expires_at = _timer_time(data.expires_at, "expiresAt") if data.expires_at is not None else None
    collapse_key = data.collapse_key
    if collapse_key is not None:
        if not 1 <= len(collapse_key) <= MAX_COLLAPSE_KEY:
            raise bad_input(f"collapseKey must be 1 to {MAX_COLLAPSE_KEY} characters", argument="collapseKey")
        _text(collapse_key, "collapseKey")
    return {
        "type": NotificationType(data.type or NotificationType.INFO),
        "title": data.title,
        "message": data.message,
        "data": data.data,
        "idempotency_key": key,
        "category": category,
        "expires_at": expires_at,
        "collapse_key": collapse_key,
    }


# -- database faults and publishing -----------------------------------------------------------------------------


async def _db(context: Context, call: Callable[[], Awaitable[T]], *, write: bool = False) -> T:
    """Run a store call; a database that cannot be reached is SERVICE_UNAVAILABLE, not an internal error.

    A write first takes a slot of the process's bound on writes in flight (TIDINGS_MAX_INFLIGHT_MUTATIONS): past
    saturation a process answers OVERLOADED at once, with `retryAfter`, instead of queueing work it cannot finish in
    time. Nothing that was answered OVERLOADED was written.
    """
    services = context.services
    admission = services.admission if write else None
    if admission is not None and not admission.enter():
        services.metrics.overloaded.inc()
        context.retry_later(OVERLOADED_RETRY_AFTER)
        raise UserError("The service is busy; retry shortly", ErrorCode.OVERLOADED, retryAfter=OVERLOADED_RETRY_AFTER)
    try:
        return await call()
    except sqlalchemy.exc.TimeoutError:
        # No pooled connection came free in TIDINGS_DATABASE_TIMEOUT: the database is fine, this process is busy.
        services.metrics.overloaded.inc()
        context.retry_later(OVERLOADED_RETRY_AFTER)
        raise UserError(
            "The service is busy; retry shortly", ErrorCode.OVERLOADED, retryAfter=OVERLOADED_RETRY_AFTER
        ) from None
    except Exception as error:
        if not database_unavailable(error):
            raise
        services.metrics.database_unavailable.inc()
        logger.debug("database unavailable: %s", type(error).__name__)
        raise UserError("The database is unavailable; try again shortly", ErrorCode.SERVICE_UNAVAILABLE) from None
    finally:
        if admission is not None:
            admission.leave()


async def _publish(context: Context, event: FeedEvent | None) -> None:
    """Wake the user's subscribers, after commit (tidings.feed owns the channel and the encoding)."""
    if event is not None:
        await context.services.hub.publish(event)


def _mutating(context: Context) -> None:
    """Every mutation spends from the caller's token bucket (TIDINGS_*_MUTATIONS_PER_SECOND)."""
    try:
        context.services.rate_limiter.check(context.caller)
    except UserError as error:
        context.retry_later(float((error.extensions or {}).get("retryAfter", 1)))
        raise


def _owner(context: Context) -> str | None:
    """Whose notifications the caller may touch by id: a user's own, a service's any."""
    caller = context.caller
    return None if caller.is_service else caller.subject


# -- root types -------------------------------------------------------------------------------------------------


@strawberry.type(description="Read notifications. A user token reads its own; a service token passes `userId`.")
class Query:
    @strawberry.field(description="The user's notifications, newest first, with the unread count and feed cursor.")
    async def notifications(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: NotificationFilter | None = None,
        user_id: strawberry.ID | None = None,
    ) -> NotificationConnection:
        services = info.context.services
        user = info.context.caller.target_user(user_id)
        size = _page_size(first)
        before = None
        if after is not None:
            try:
                before = decode_page_cursor(after)
            except MalformedCursor:
                raise bad_input("after is not a valid page cursor", argument="after") from None
        filter = filter or NotificationFilter()
        category = _category(filter.category, "category")
        page = await _db(
            info.context,
            lambda: services.store.list_notifications(
                user_id=user,
                first=size,
                before_seq=before,
                read=filter.read,
                type=NotificationType(filter.type) if filter.type else None,
                archived=filter.archived,
                category=category,
                snoozed=filter.snoozed,
            ),
        )
        return NotificationConnection.from_page(page, services.store.epoch)

    @strawberry.field(description="The user's unread notifications in the inbox (not archived ones), newest first.")
    async def unread_notifications(
        self, info: Info[Context, None], first: int = 50, user_id: strawberry.ID | None = None
    ) -> list[Notification]:
        store = info.context.services.store
        user = info.context.caller.target_user(user_id)
        size = _page_size(first)
        items = await _db(info.context, lambda: store.unread_notifications(user_id=user, first=size))
        return [Notification.from_record(item) for item in items]

    @strawberry.field(
        description="How many of the user's notifications are unread (archived ones not counted), or of one category."
    )
    async def unread_count(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None, category: str | None = None
    ) -> int:
        store = info.context.services.store
        user = info.context.caller.target_user(user_id)
        name = _category(category, "category")
        return (await _db(info.context, lambda: store.counts(user, category=name))).unread

    @strawberry.field(
        description=(
            "How many of the user's notifications are unseen: the bell's badge, cleared by markAllNotificationsSeen "
            "when the inbox is opened (archived ones not counted), or of one category."
        )
    )
    async def unseen_count(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None, category: str | None = None
    ) -> int:
        store = info.context.services.store
        user = info.context.caller.target_user(user_id)
        name = _category(category, "category")
        return (await _db(info.context, lambda: store.counts(user, category=name))).unseen

    @strawberry.field(
        description=(
            "Unread and unseen counts per category, for tabs with their own badges: every category the user has had "
            "a notification in, by name (zero counts included)."
        )
    )
    async def category_counts(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None
    ) -> list[CategoryCount]:
        store = info.context.services.store
        user = info.context.caller.target_user(user_id)
        counts = await _db(info.context, lambda: store.category_counts(user))
        return [CategoryCount.from_record(category) for category in counts]

    @strawberry.field(
        description=(
            "The categories the user muted, by name: new notifications in them arrive read and seen, uncounted. A "
            "user reads its own; a service passes `userId`."
        )
    )
    async def muted_categories(self, info: Info[Context, None], user_id: strawberry.ID | None = None) -> list[str]:
        store = info.context.services.store
        user = info.context.caller.target_user(user_id)
        return list(await _db(info.context, lambda: store.muted_categories(user)))

    @strawberry.field(description="One notification; null when it does not exist or is not the caller's.")
    async def notification(self, info: Info[Context, None], id: strawberry.ID) -> Notification | None:
        store = info.context.services.store
        owner = _owner(info.context)
        try:
            notification_id = _notification_id(id)
        except UserError:
            return None
        record = await _db(info.context, lambda: store.get_notification(notification_id, owner=owner))
        return Notification.from_record(record) if record else None

    # -- presence (tidings.presence) --

    @strawberry.field(
        description=(
            "Whether the user is connected now, on how many devices, and when they last were (service tokens only: "
            "a user's presence is for the services that notify them)."
        )
    )
    async def presence(self, info: Info[Context, None], user_id: strawberry.ID) -> Presence:
        caller = info.context.caller
        caller.require_service()
        user = caller.target_user(user_id)
        try:
            record = await info.context.services.presence.lookup(user)
        except PresenceUnavailable as error:
            logger.debug("presence unavailable: %s", error)
            raise UserError("Presence is unavailable; try again shortly", ErrorCode.SERVICE_UNAVAILABLE) from None
        return Presence(
            user_id=strawberry.ID(user),
            devices=record.devices,
            online=record.devices > 0,
            last_seen_at=record.last_seen_at,
        )


async def create_notification(info: Info[Context, None] | Any, input: CreateNotificationInput) -> NotificationRecord:
    """createNotification, for the schema and for its fast path (tidings.creates), which passes only the context."""
    context: Context = info.context
    context.caller.require_service()
    _mutating(context)
    user = context.caller.target_user(input.user_id)
    fields = _validated(input)
    store = context.services.store
    try:
        record, event = await _db(context, lambda: store.create_notification(user_id=user, **fields), write=True)
    except IdempotencyConflict as error:
        raise bad_input(str(error), argument="idempotencyKey") from None
    await _publish(context, event)
    if event is not None and record.expires_at is not None:
        context.services.timers.schedule(record.expires_at)
    return record


async def create_notifications(context: Context, inputs: list[CreateNotificationInput]) -> list[Notification | None]:
    """createNotifications: every input checked first (one bad input writes nothing), then one transaction and one
    wake-up per user, in the order users first appear. A user whose transaction fails gets an error at each of its
    inputs' positions, the others their notifications."""
    context.caller.require_service()
    _mutating(context)
    if not 1 <= len(inputs) <= MAX_BATCH:
        raise bad_input(f"inputs must hold 1 to {MAX_BATCH} notifications", argument="inputs")
    by_user: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, item in enumerate(inputs):
        try:
            user = context.caller.target_user(item.user_id)
            fields = _validated(item)
        except UserError as error:
            extensions = {key: value for key, value in (error.extensions or {}).items() if key != "code"}
            raise UserError(f"inputs[{index}]: {error.message}", error.code, **extensions, index=index) from None
        by_user.setdefault(user, []).append((index, fields))
    store = context.services.store
    results: list[Notification | UserError | None] = [None] * len(inputs)
    for user, items in by_user.items():
        try:
            batch = functools.partial(store.create_many, user_id=user, items=[fields for _, fields in items])
            created = await _db(context, batch, write=True)
        except IdempotencyConflict as error:
            failed = items[error.item or 0][0]
            for index, _ in items:
                results[index] = bad_input(
                    f"inputs[{index}]: {error}" if index == failed
                    else f"inputs[{index}]: not created: inputs[{failed}] of the same user was refused",
                    argument="idempotencyKey" if index == failed else "inputs",
                )  # fmt: skip
            continue
        except UserError as error:  # SERVICE_UNAVAILABLE, OVERLOADED: this user's inputs were not written
            for index, _ in items:
                results[index] = error
            continue
        for (index, _), (record, _event) in zip(items, created, strict=True):
            results[index] = Notification.from_record(record)
        # One wake-up per user: followers that see the gap read the user's new events from the database.
        await _publish(context, next((event for _, event in reversed(created) if event is not None), None))
        expiring = [record.expires_at for record, event in created if event is not None and record.expires_at]
        if expiring:
            context.services.timers.schedule(min(expiring))
    # graphql-core completes an error in a list as a located error at that position, the item null.
    return results  # type: ignore[return-value]


@strawberry.type(description="Change notifications. Every change is delivered to all of the user's connections.")
class Mutation:
    @strawberry.mutation(description="Create a notification for a user (service tokens only).")
    async def create_notification(self, info: Info[Context, None], input: CreateNotificationInput) -> Notification:
        return Notification.from_record(await create_notification(info, input))

    @strawberry.mutation(
        description=(
            f"Create up to {MAX_BATCH:,} notifications in one call (service tokens only), results in input order. "
            "Every input "
            "is checked first: one that createNotification would refuse refuses the call, and nothing is written. "
            "Then each user's notifications are written in one transaction, all or none (an error at each of its "
            "inputs' positions, the item null), with one wake-up per user; idempotency and collapse keys work per "
            "input as in createNotification."
        )
    )
    async def create_notifications(
        self, info: Info[Context, None], inputs: list[CreateNotificationInput]
    ) -> list[Notification | None]:
        return await create_notifications(info.context, inputs)

    @strawberry.mutation(
        description="Mark one notification read (and seen). Already read: returned unchanged, no event."
    )
    async def mark_notification_read(self, info: Info[Context, None], id: strawberry.ID) -> Notification:
        store = info.context.services.store
        return Notification.from_record(await _change_one(info.context, id, store.mark_read))

    @strawberry.mutation(
        description=(
            "Mark one notification unread again (it stays seen, so the bell does not ring). Devices get an UNREAD "
            "event. Already unread: returned unchanged, no event."
        )
    )
    async def mark_notification_unread(self, info: Info[Context, None], id: strawberry.ID) -> Notification:
        store = info.context.services.store
        return Notification.from_record(await _change_one(info.context, id, store.mark_unread))

    @strawberry.mutation(
        description=(
            "Mark the user's unread notifications read (and seen) in one ALL_READ event. With `upTo` (a feed "
            "cursor, such as `feedCursor` of the list the user saw) only those created at or before it, so one that "
            "arrived later is not silently marked read."
        )
    )
    async def mark_all_notifications_read(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None, up_to: str | None = None
    ) -> MarkAllReadResult:
        result, cursor = await _change_all(info.context, user_id, up_to, info.context.services.store.mark_all_read)
        return MarkAllReadResult(count=result.count, unread_count=result.position.unread_count, cursor=cursor)

    @strawberry.mutation(
        description=(
            "Mark the user's unseen notifications seen in one ALL_SEEN event: call it when the inbox is opened, to "
            "clear the bell's badge on every device. With `upTo` (the `feedCursor` of the list on screen) only those "
            "created at or before it. Unread ones stay unread."
        )
    )
    async def mark_all_notifications_seen(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None, up_to: str | None = None
    ) -> MarkAllSeenResult:
        result, cursor = await _change_all(info.context, user_id, up_to, info.context.services.store.mark_all_seen)
        return MarkAllSeenResult(count=result.count, unseen_count=result.position.unseen_count, cursor=cursor)

    @strawberry.mutation(
        description=(
            "Archive one notification: it leaves the inbox (lists show it with `filter: {archived: true}`) and is no "
            "longer counted. Devices get an ARCHIVED event. Already archived: returned unchanged, no event."
        )
    )
    async def archive_notification(self, info: Info[Context, None], id: strawberry.ID) -> Notification:
        store = info.context.services.store
        return Notification.from_record(await _change_one(info.context, id, store.archive))

    @strawberry.mutation(
        description=(
            "Bring an archived notification back to the inbox, read or unread as it was. Devices get an UNARCHIVED "
            "event. Not archived: returned unchanged, no event."
        )
    )
    async def unarchive_notification(self, info: Info[Context, None], id: strawberry.ID) -> Notification:
        store = info.context.services.store
        return Notification.from_record(await _change_one(info.context, id, store.unarchive))

    @strawberry.mutation(
        description=(
            "Archive every read notification of the inbox in one ALL_ARCHIVED event. With `upTo` (a feed cursor) "
            "only those created at or before it."
        )
    )
    async def archive_all_read(
        self, info: Info[Context, None], user_id: strawberry.ID | None = None, up_to: str | None = None
    ) -> ArchiveAllResult:
        result, cursor = await _change_all(info.context, user_id, up_to, info.context.services.store.archive_all_read)
        position = result.position
        return ArchiveAllResult(
            count=result.count, unread_count=position.unread_count, unseen_count=position.unseen_count, cursor=cursor
        )

    @strawberry.mutation(
        description=(
            f"Replace the user's muted categories (at most {MAX_MUTED_CATEGORIES}, each a valid category; repeats "
            "ignored): a new "
            "notification in one of them is stored already read and seen, marked `muted`, and not counted, so the "
            "sending service need not know the user's preferences. What has arrived stays as it is. Every device "
            "gets a PREFERENCES event; the same set again: no event. A user sets its own; a service passes `userId`."
        )
    )
    async def set_muted_categories(
        self, info: Info[Context, None], categories: list[str], user_id: strawberry.ID | None = None
    ) -> MutedCategoriesResult:
        context = info.context
        _mutating(context)
        user = context.caller.target_user(user_id)
        if len(categories) > MAX_MUTED_CATEGORIES:
            raise bad_input(f"categories must be at most {MAX_MUTED_CATEGORIES}", argument="categories")
        names = [_category(name, "categories") or "" for name in categories]
        store = context.services.store
        muted, position, event = await _db(
            context, lambda: store.set_muted_categories(user_id=user, categories=names), write=True
        )
        await _publish(context, event)
        return MutedCategoriesResult(
            muted_categories=list(muted), cursor=FeedCursor(store.epoch, position.seq).encode()
        )

    @strawberry.mutation(
        description=(
            "Delete the user's notifications that match `filter` (read ones, archived ones, a category, or all with "
            "`{}`) in one BULK_DELETED event, all or none. With `upTo` (a feed cursor) only those at or before it. "
            "At most TIDINGS_MAX_BULK_DELETE per call, the oldest first: `hasMore` says when more remain."
        )
    )
    async def delete_notifications(
        self,
        info: Info[Context, None],
        filter: DeleteNotificationsFilter,
        up_to: str | None = None,
        user_id: strawberry.ID | None = None,
    ) -> DeleteNotificationsResult:
        context = info.context
        _mutating(context)
        user = context.caller.target_user(user_id)
        store = context.services.store
        which = DeleteFilter(filter.read, filter.archived, _category(filter.category, "category"))
        up_to_seq = _up_to(store, up_to)
        max_rows = context.services.settings.max_bulk_delete
        result = await _db(
            context,
            lambda: store.delete_all(user_id=user, which=which, up_to_seq=up_to_seq, max_rows=max_rows),
            write=True,
        )
        await _publish(context, result.event)
        position = result.position
        return DeleteNotificationsResult(
            count=result.count,
            has_more=result.has_more,
            unread_count=position.unread_count,
            unseen_count=position.unseen_count,
            cursor=FeedCursor(store.epoch, position.seq).encode(),
        )

    @strawberry.mutation(
        description=(
            "Snooze one notification until a time (in the future, at most 366 days ahead): it leaves the inbox and "
            "its counts (lists show it with `filter: {snoozed: true}`), devices get a SNOOZED event, and when the "
            "time comes it is back on top, unread and unseen, with an UNSNOOZED event on every device. An archived "
            "one leaves the archive, to come back to the inbox; snoozed already: the new time replaces the old; "
            "the same time: returned unchanged, no event. Archiving a snoozed one ends its snooze; "
            "unsnoozeNotification brings it back now."
        )
    )
    async def snooze_notification(self, info: Info[Context, None], id: strawberry.ID, until: datetime) -> Notification:
        store = info.context.services.store
        when = _timer_time(until, "until")
        record = await _change_one(info.context, id, lambda **which: store.snooze(**which, until=when))
        info.context.services.timers.schedule(when)
        return Notification.from_record(record)

    @strawberry.mutation(
        description=(
            "End a snooze now: the notification is back on top, unread and unseen, with an UNSNOOZED event on every "
            "device, exactly as when its time comes. Not snoozed: returned unchanged, no event."
        )
    )
    async def unsnooze_notification(self, info: Info[Context, None], id: strawberry.ID) -> Notification:
        store = info.context.services.store
        return Notification.from_record(await _change_one(info.context, id, store.unsnooze))

    @strawberry.mutation(description="Delete one notification; returns its id. Devices get a DELETED event.")
    async def delete_notification(self, info: Info[Context, None], id: strawberry.ID) -> strawberry.ID:
        store = info.context.services.store
        return strawberry.ID((await _change_one(info.context, id, store.delete)).id)


ChangeOne = Callable[..., Awaitable[tuple[NotificationRecord, FeedEvent | None]]]
ChangeAll = Callable[..., Awaitable[MarkAllResult]]


async def _change_one(context: Context, id: str, change: ChangeOne) -> NotificationRecord:
    """A mutation of one notification by id: the caller's own, or any user's for a service; publish after commit."""
    _mutating(context)
    owner = _owner(context)
    notification_id = _notification_id(id)
    try:
        record, event = await _db(context, lambda: change(notification_id=notification_id, owner=owner), write=True)
    except NotFound:
        raise not_found() from None
    await _publish(context, event)
    return record


async def _change_all(
    context: Context, user_id: str | None, up_to: str | None, change: ChangeAll
) -> tuple[MarkAllResult, str]:
    """A bulk mutation of a user's notifications up to a cursor: the result and the feed cursor after it."""
    _mutating(context)
    user = context.caller.target_user(user_id)
    store = context.services.store
    up_to_seq = _up_to(store, up_to)
    result = await _db(context, lambda: change(user_id=user, up_to_seq=up_to_seq), write=True)
    await _publish(context, result.event)
    return result, FeedCursor(store.epoch, result.position.seq).encode()


@strawberry.type(description="Live events over graphql-transport-ws.")
class Subscription:
    @strawberry.subscription(
        description=(
            "Every change to the user's notifications, in order. With `after` (an event cursor or a list's "
            "`feedCursor`) it first replays what happened since, from the database, then continues live: nothing "
            "missed, nothing twice. A cursor whose events are no longer kept starts with RESYNC."
        )
    )
    async def notification_events(
        self, info: Info[Context, None], after: str | None = None, user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[NotificationEvent, None]:
        services = info.context.services
        events = event_stream(info.context, after=after, user_id=user_id)
        return _as_graphql(events, services.store.epoch, services.metrics)


def event_stream(
    context: Context,
    *,
    after: str | None,
    user_id: str | None,
    live: Callable[[FeedEvent], bool] | None = None,
) -> AsyncIterator[FeedEvent]:
    """The caller's events after a cursor; the delivery fast path (tidings.delivery) starts its streams here too,
    with `live` to take live events synchronously (`FeedFollower.follow`).

    Checked before the stream starts, so a refusal is a graphql-transport-ws `error` message.
    """
    user = context.caller.target_user(user_id)
    start = _feed_cursor(after, "after") if after is not None else None
    return context.services.hub.follower(user).follow(start, live=live)


async def _as_graphql(
    events: AsyncIterator[FeedEvent], epoch: str, metrics: Metrics
) -> AsyncGenerator[NotificationEvent, None]:
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            metrics.deliveries += 1
            yield NotificationEvent.from_event(event, epoch)
