"""Schema migrations with Alembic, run programmatically on the configured database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
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


def head_revision() -> str:
    """The revision this version of tidings runs on."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "tidings ships its migrations"
    return head


def is_known(revision: str) -> bool:
    """Whether `revision` is one of this version's migrations (not one of a newer tidings)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to `revision`; concurrent callers (several workers starting) run it once.

    Returns the revisions before and after (equal when there was nothing to do).
    """
    async with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        if engine.dialect.name == "postgresql":
            # Session-level advisory lock: the second process waits, then finds nothing left to do.
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK})
            await conn.commit()
        try:
            before: str | None = await conn.run_sync(_current)
            await conn.run_sync(_upgrade, revision)
            after: str | None = await conn.run_sync(_current)
            await conn.commit()
            return before, after
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
