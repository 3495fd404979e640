"""Snooze and expiry: when a notification's snooze ends, and when it expires (tidings.timers fires both).

No existing notification is snoozed or expires, so the data carries over as it is; the counts stay what they were.
The two partial indexes let every process find the next due timer without walking the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tidings.store.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SNOOZED = "snoozed_until IS NOT NULL AND deleted_at IS NULL"
EXPIRING = "expires_at IS NOT NULL AND deleted_at IS NULL"


def upgrade() -> None:
    op.add_column("notifications", sa.Column("snoozed_until", UTCDateTime()))
    op.add_column("notifications", sa.Column("expires_at", UTCDateTime()))
    for name, column, where in (
        ("ix_notifications_snoozed_until", "snoozed_until", SNOOZED),
        ("ix_notifications_expires_at", "expires_at", EXPIRING),
    ):
        op.create_index(name, "notifications", [column], postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def downgrade() -> None:
    op.drop_index("ix_notifications_expires_at", "notifications")
    op.drop_index("ix_notifications_snoozed_until", "notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("snoozed_until")
