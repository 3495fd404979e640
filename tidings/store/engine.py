"""Engines: one SQLAlchemy URL selects SQLite (embedded) or PostgreSQL; transactions behave the same on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Connection option naming a transaction that will write: SQLite then takes the write lock at BEGIN
# (BEGIN IMMEDIATE), so a read-then-write transaction never fails to upgrade its lock.
WRITE_OPTION = "tidings_write"
SQLITE_BUSY_TIMEOUT_MS = 15_000


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
    return create_async_engine(
        url,
        json_serializer=_json_serializer,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=timeout,
        connect_args={
            "timeout": timeout,
            "command_timeout": statement_timeout,
            "server_settings": {"statement_timeout": str(int(statement_timeout * 1000))},
        },
    )


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
