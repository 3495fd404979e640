"""Alembic environment: runs on the connection `tidings.migrate` hands over (async engines, both dialects)."""

from __future__ import annotations

from alembic import context

from tidings.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tidings migrate`, which provides the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
