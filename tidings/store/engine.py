"""Engines: one SQLAlchemy URL selects SQLite (embedded) or PostgreSQL; transactions behave the same on both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.store.statement_pool import StatementPool

# Connection option naming a transaction that will write: SQLite then takes the write lock at BEGIN
# (BEGIN IMMEDIATE), so a read-then-write transaction never fails to upgrade its lock.
WRITE_OPTION = "tidings_write"
SQLITE_BUSY_TIMEOUT_MS = 15_000
IDLE_PING_AFTER = 2.0  # seconds a pooled PostgreSQL connection may sit unused before it is pinged at checkout
_LAST_USED = "tidings_last_used"


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    url: str, *, pool_size: int = 10, timeout: float = 5.0, statement_timeout: float = 10.0
) -> AsyncEngine:
    """Build the async engine for a normalized URL.

    `timeout` bounds connecting and waiting for a pooled connection, `statement_timeout` each statement, so an
    unreachable or stuck database fails a request quickly instead of hanging it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=_json_serializer, json_deserializer=orjson.loads)
        _make_sqlite_transactional(engine)
        return engine
    engine = create_async_engine(
        url,
        json_serializer=_json_serializer,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        connect_args={
            "timeout": timeout,
            "command_timeout": statement_timeout,
            "server_settings": {"statement_timeout": str(int(statement_timeout * 1000))},
        },
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling for connections that sat idle, and only for those.

    SQLAlchemy's `pool_pre_ping` pings on every checkout (three round trips on asyncpg: BEGIN, `;`, ROLLBACK), which
    doubled the round trips of a busy process. A connection used within the last `IDLE_PING_AFTER` seconds is taken
    as it is; one that waited longer (across a database restart, say) is pinged first and replaced when dead, the
    recipe of SQLAlchemy's "Disconnect Handling - Pessimistic". A connection that dies while in use fails that one
    request with SERVICE_UNAVAILABLE, and SQLAlchemy then recycles the pool.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "connect")
    @event.listens_for(pool, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_LAST_USED, 0.0) < IDLE_PING_AFTER:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise DisconnectionError("idle connection is gone") from error  # the pool connects a new one


def _make_sqlite_transactional(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (SQLAlchemy's documented recipe).

    Without it pysqlite issues no BEGIN before a SELECT, so the reads of one request would not share a snapshot.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def create_statement_pool(url: URL, *, size: int, timeout: float, statement_timeout: float) -> StatementPool:
    """The pool of single statements on PostgreSQL (tidings.store.statement_pool), with the engine's timeouts, its
    connections opened at start.

    JSON and JSONB go in as text encoded already and come out decoded by orjson, as through SQLAlchemy. Released
    connections are not reset: nothing run on them changes the session.
    """
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def connect() -> asyncpg.Connection:
        connection = await asyncpg.connect(
            dsn,
            timeout=timeout,
            command_timeout=statement_timeout,
            server_settings={"statement_timeout": str(int(statement_timeout * 1000))},
        )
        try:
            for kind in ("json", "jsonb"):
                await connection.set_type_codec(
                    kind, encoder=_as_is, decoder=orjson.loads, schema="pg_catalog", format="text"
                )
        except BaseException:
            connection.terminate()
            raise
        return connection

    pool = StatementPool(connect, size=size, timeout=timeout)
    await pool.fill()
    return pool


def _as_is(text: str) -> str:
    return text
