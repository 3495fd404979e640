"""Start-up checks, and what a failed one says: one line naming the setting and the fix, never a traceback."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings import migrate
from tidings.config import Settings
from tidings.store import create_engine, database_unavailable

logger = logging.getLogger("tidings")


class StartupError(Exception):
    """A start-up failure the operator can fix; its message is one line that names the setting and what to do."""


async def prepare_database(settings: Settings) -> None:
    """`tidings serve`'s check before anything serves: the database answers and has this tidings' schema."""
    try:
        engine = create_engine(settings.db_url, timeout=settings.database_timeout)
    except OSError as error:  # SQLite: the data directory cannot be made
        raise database_error(settings, error) from None
    try:
        await open_database(settings, engine)
    finally:
        await engine.dispose()


async def open_database(settings: Settings, engine: AsyncEngine) -> None:
    """Migrate when configured to, then check that the schema is the one this version of tidings runs on."""
    if settings.should_migrate_on_start:
        try:
            before, after = await migrate.upgrade(engine)
        except Exception as error:
            raise database_error(settings, error) from None
        if before != after:
            logger.info(
                "database: migrated %s from %s to revision %s",
                describe_database(settings),
                before or "empty",
                after,
            )
    await check_schema(settings, engine)


async def check_schema(settings: Settings, engine: AsyncEngine) -> None:
    """The database answers and is at this version's schema revision; otherwise one line naming the fix."""
    try:
        revision = await migrate.current_revision(engine)
    except Exception as error:
        raise database_error(settings, error) from None
    head = migrate.head_revision()
    if revision == head:
        return
    where, setting = describe_database(settings), settings.database_setting
    if revision is None:
        raise StartupError(
            f"{setting}: {where} has no tidings schema yet: run `tidings migrate` (or set TIDINGS_AUTO_MIGRATE=true)"
        )
    if migrate.is_known(revision):
        raise StartupError(f"{setting}: {where} is at schema revision {revision}, not {head}: run `tidings migrate`")
    raise StartupError(
        f"{setting}: {where} is at schema revision {revision}, which a newer tidings wrote: run that version, "
        "or point it at a database of this one"
    )


def database_error(settings: Settings, error: BaseException) -> StartupError:
    """Why the database could not be opened (or migrated), in one line."""
    where, setting = describe_database(settings), settings.database_setting
    if database_unavailable(error) and not settings.is_sqlite:
        return StartupError(
            f"{setting}: cannot reach {where} ({cause(error)}): start it, or point {setting} at a reachable server"
        )
    return StartupError(f"{setting}: cannot open {where} ({cause(error)}): fix {setting}")


def broadcast_error(settings: Settings, error: BaseException) -> StartupError:
    """Why the broker could not be reached at start, in one line (the URL's password left out)."""
    address = urlsplit(settings.broadcast_url).netloc.rpartition("@")[2]
    return StartupError(
        f"TIDINGS_BROADCAST_URL: cannot reach the broker at {address} ({cause(error)}): start it, or point "
        "TIDINGS_BROADCAST_URL at a reachable one"
    )


def describe_database(settings: Settings) -> str:
    """The database for a message: where it is, without the URL's password."""
    url = make_url(settings.db_url)
    if settings.is_sqlite:
        return f"the SQLite database {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def cause(error: BaseException) -> str:
    """The innermost reason of an error chain, as its own words (an OSError's without the errno)."""
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"  # asyncio's strerror is "Connect call failed (address)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
