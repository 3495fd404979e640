"""Schema migrations with Alembic, run programmatically on the configured database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.store.engine import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every tidings process sharing the database.
POSTGRES_MIGRATION_LOCK = 0x7469_6469_6E67


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: sa.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to `revision`; concurrent callers (several workers starting) run it once."""
    async with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        if engine.dialect.name == "postgresql":
            # Session-level advisory lock: the second process waits, then finds nothing left to do.
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
                await conn.commit()


def _current(connection: sa.Connection) -> Any:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        revision: str | None = await conn.run_sync(_current)
    return revision
