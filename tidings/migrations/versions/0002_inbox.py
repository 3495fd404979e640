"""Seen, archived and categories; per-category counts beside the feed's.

Before this revision a notification was seen exactly when it was read, so the data carries over as it was: `seen_at`
is `read_at`, every unseen count is the unread count of the same moment, and nothing is archived or has a category.
Later states (snooze, expiry, collapse keys, mute) add their own columns in revisions of their own.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tidings.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MAX_CATEGORY = 64  # tidings.store.models.MAX_CATEGORY when this revision was written
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
IN_INBOX = "deleted_at IS NULL AND archived_at IS NULL"


def upgrade() -> None:
    op.add_column("notifications", sa.Column("seen_at", UTCDateTime()))
    op.add_column("notifications", sa.Column("archived_at", UTCDateTime()))
    op.add_column("notifications", sa.Column("category", sa.String(MAX_CATEGORY)))
    op.execute("UPDATE notifications SET seen_at = read_at WHERE read_at IS NOT NULL")
    # Server defaults of 0 let existing rows take the column at once; the values follow.
    op.add_column("user_feeds", sa.Column("unseen_count", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE user_feeds SET unseen_count = unread_count")
    op.add_column("notification_events", sa.Column("unseen_count", sa.Integer, nullable=False, server_default="0"))
    op.execute("UPDATE notification_events SET unseen_count = unread_count")
    op.add_column("notification_events", sa.Column("category_counts", JSONType))
    op.create_table(
        "category_counts",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("category", sa.String(MAX_CATEGORY), primary_key=True),
        sa.Column("unread_count", sa.Integer, nullable=False),
        sa.Column("unseen_count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_notifications_user_unseen",
        "notifications",
        ["user_id", "seq"],
        postgresql_where=sa.text(f"seen_at IS NULL AND {IN_INBOX}"),
        sqlite_where=sa.text(f"seen_at IS NULL AND {IN_INBOX}"),
    )
    op.create_index(
        "ix_notifications_user_archived",
        "notifications",
        ["user_id", "seq"],
        postgresql_where=sa.text("archived_at IS NOT NULL AND deleted_at IS NULL"),
        sqlite_where=sa.text("archived_at IS NOT NULL AND deleted_at IS NULL"),
    )
    op.create_index("ix_notifications_user_category", "notifications", ["user_id", "category", "seq"])


def downgrade() -> None:
    op.drop_index("ix_notifications_user_category", "notifications")
    op.drop_index("ix_notifications_user_archived", "notifications")
    op.drop_index("ix_notifications_user_unseen", "notifications")
    op.drop_table("category_counts")
    with op.batch_alter_table("notification_events") as batch:
        batch.drop_column("category_counts")
        batch.drop_column("unseen_count")
    with op.batch_alter_table("user_feeds") as batch:
        batch.drop_column("unseen_count")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("category")
        batch.drop_column("archived_at")
        batch.drop_column("seen_at")
