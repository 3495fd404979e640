"""Collapse keys, mute and bulk delete.

Collapse keys: the key a notification was created with, how many creates folded into it and when the last did; the
idempotency keys of creates that folded into an existing notification. Mute: the categories a user muted (on the feed
row, read under its lock), whether a notification arrived muted, and what a PREFERENCES event set.
Bulk delete: the filter a BULK_DELETED event deleted by.

Existing notifications were never collapsed (no key, a count of 0, never updated) nor muted; nobody muted anything.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tidings.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
MAX_KEY = 200  # tidings.store.models.MAX_KEY when this revision was written
IN_INBOX = "deleted_at IS NULL AND archived_at IS NULL"
COLLAPSIBLE = f"collapse_key IS NOT NULL AND read_at IS NULL AND {IN_INBOX}"


def upgrade() -> None:
    op.add_column("notifications", sa.Column("collapse_key", sa.String(MAX_KEY)))
    op.add_column("notifications", sa.Column("collapsed_count", sa.Integer, nullable=False, server_default="0"))
    op.add_column("notifications", sa.Column("updated_at", UTCDateTime()))
    op.create_index(
        "ix_notifications_user_collapse",
        "notifications",
        ["user_id", "collapse_key"],
        postgresql_where=sa.text(COLLAPSIBLE),
        sqlite_where=sa.text(COLLAPSIBLE),
    )
    op.create_table(
        "collapsed_creates",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("idempotency_key", sa.String(MAX_KEY), primary_key=True),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_collapsed_creates_notification_id", "collapsed_creates", ["notification_id"])
    op.add_column("notifications", sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("user_feeds", sa.Column("muted_categories", JSONType))
    op.add_column("notification_events", sa.Column("muted_categories", JSONType))
    op.add_column("notification_events", sa.Column("deleted", JSONType))


def downgrade() -> None:
    with op.batch_alter_table("notification_events") as batch:
        batch.drop_column("deleted")
        batch.drop_column("muted_categories")
    with op.batch_alter_table("user_feeds") as batch:
        batch.drop_column("muted_categories")
    op.drop_index("ix_collapsed_creates_notification_id", "collapsed_creates")
    op.drop_table("collapsed_creates")
    op.drop_index("ix_notifications_user_collapse", "notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("muted")
        batch.drop_column("updated_at")
        batch.drop_column("collapsed_count")
        batch.drop_column("collapse_key")
