"""Per-user feeds, notifications, the event log, and this database's feed epoch.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from tidings.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
UNREAD = "read_at IS NULL AND deleted_at IS NULL"


def upgrade() -> None:
    meta = op.create_table(
        "tidings_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    # A fresh epoch per database: cursors minted by another database are recognised and answered with RESYNC.
    op.bulk_insert(meta, [{"key": "feed_epoch", "value": uuid.uuid4().hex[:16]}])
    op.create_table(
        "user_feeds",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("unread_count", sa.Integer, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", JSONType),
        sa.Column("read_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        sa.UniqueConstraint("user_id", "seq", name="uq_notifications_user_seq"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_notifications_user_idempotency_key"),
    )
    op.create_index(
        "ix_notifications_user_unread",
        "notifications",
        ["user_id", "seq"],
        postgresql_where=sa.text(UNREAD),
        sqlite_where=sa.text(UNREAD),
    )
    op.create_index("ix_notifications_deleted_at", "notifications", ["deleted_at"])
    op.create_table(
        "notification_events",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("notification_id", sa.String(36)),
        sa.Column("snapshot", JSONType),
        sa.Column("unread_count", sa.Integer, nullable=False),
        sa.Column("up_to_seq", sa.BigInteger),
        sa.Column("count", sa.Integer),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_notification_events_created_at", "notification_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("notification_events")
    op.drop_table("notifications")
    op.drop_table("user_feeds")
    op.drop_table("tidings_meta")
