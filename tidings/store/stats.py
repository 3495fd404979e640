"""What the database holds, counted per state for operators (`tidings stats`): recounted from the rows, beside the
counts the store keeps, so a difference between the two shows at once."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.store.changes import IN_INBOX, LIVE, UNREAD, UNSEEN
from tidings.store.models import events, feeds, notifications


@dataclass(frozen=True, slots=True)
class Stats:
    users: int  # with a feed
    notifications: int  # live (not deleted)
    in_inbox: int  # live, not archived, not snoozed
    unread: int
    unseen: int
    archived: int
    snoozed: int
    expiring: int  # live with an expiry set
    muted: int  # live, arrived in a category the user had muted (stored read and seen)
    collapsed: int  # live, with later creates of their collapse key folded into them
    folded: int  # those later creates: each updated a row instead of adding one
    deleted: int  # tombstones kept for idempotency until retention removes them
    events: int  # feed positions kept for resuming
    kept_unread: int  # what the feeds say (the counts clients see)
    kept_unseen: int
    last_position: int  # the highest feed position

    def rows(self) -> list[tuple[str, int]]:
        return [(name.replace("_", " "), getattr(self, name)) for name in self.__dataclass_fields__]

    @property
    def consistent(self) -> bool:
        return (self.kept_unread, self.kept_unseen) == (self.unread, self.unseen)


def _count(where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(notifications).where(where).scalar_subquery()


async def state_counts(engine: AsyncEngine, user_id: str | None = None) -> Stats:
    """Every figure in one snapshot (one statement per table), for all users or for one."""
    mine = notifications.c.user_id == user_id if user_id is not None else sa.true()
    c = notifications.c
    notification_figures = sa.select(
        _count(sa.and_(mine, LIVE)),
        _count(sa.and_(mine, IN_INBOX)),
        _count(sa.and_(mine, UNREAD)),
        _count(sa.and_(mine, UNSEEN)),
        _count(sa.and_(mine, LIVE, c.archived_at.is_not(None))),
        _count(sa.and_(mine, LIVE, c.snoozed_until.is_not(None))),
        _count(sa.and_(mine, LIVE, c.expires_at.is_not(None))),
        _count(sa.and_(mine, LIVE, c.muted.is_(True))),
        _count(sa.and_(mine, LIVE, c.collapsed_count > 0)),
        sa.select(sa.func.coalesce(sa.func.sum(c.collapsed_count), 0)).where(mine, LIVE).scalar_subquery(),
        _count(sa.and_(mine, c.deleted_at.is_not(None))),
    )
    feed_rows = feeds.c.user_id == user_id if user_id is not None else sa.true()
    feed_figures = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(feeds.c.unread_count), 0),
        sa.func.coalesce(sa.func.sum(feeds.c.unseen_count), 0),
        sa.func.coalesce(sa.func.max(feeds.c.last_seq), 0),
    ).where(feed_rows)
    event_rows = events.c.user_id == user_id if user_id is not None else sa.true()
    event_figures = sa.select(sa.func.count()).select_from(events).where(event_rows)
    async with engine.connect() as conn, conn.begin():
        live, inbox, unread, unseen, archived, snoozed, expiring, muted, collapsed, folded, deleted = (
            await conn.execute(notification_figures)
        ).one()
        users, kept_unread, kept_unseen, last_position = (await conn.execute(feed_figures)).one()
        kept_events = (await conn.execute(event_figures)).scalar_one()
    return Stats(
        users=users,
        notifications=live,
        in_inbox=inbox,
        unread=unread,
        unseen=unseen,
        archived=archived,
        snoozed=snoozed,
        expiring=expiring,
        muted=muted,
        collapsed=collapsed,
        folded=int(folded),
        deleted=deleted,
        events=kept_events,
        kept_unread=int(kept_unread),
        kept_unseen=int(kept_unseen),
        last_position=int(last_position),
    )
