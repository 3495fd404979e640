"""Fixture chains: backends (SQLite / PostgreSQL, memory / Redis) and real servers on real ports."""

from __future__ import annotations

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tidings import migrate
from tidings.store import SqlStore, create_engine


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_session() -> Iterator[None]:
    yield
    for server in list(ServerProcess.started):
        server.stop(signal.SIGKILL)


@pytest.fixture
def user() -> str:
    """A user id no other test uses, so tests can share a server."""
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated store on each database: the store contract runs on both."""
    database: PostgresDatabase | None = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    else:
        database = PostgresDatabase()
        await database.create()
        url = database.url.replace("postgresql://", "postgresql+asyncpg://")
    store = SqlStore(create_engine(url))
    try:
        await migrate.upgrade(store.engine)
        await store.start()
        yield store
    finally:
        await store.close()
        if database is not None:
            await database.drop()


def _server(tmp_path_factory: pytest.TempPathFactory, kind: str) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(kind)
    if kind == "embedded":
        server = ServerProcess(workdir, {}).start()
        try:
            yield server
        finally:
            server.stop()
        return
    with PostgresDatabase() as database:
        server = ServerProcess(workdir, scaled_env(database)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`tidings serve` with no configuration: SQLite and in-process fan-out."""
    yield from _server(tmp_path_factory, "embedded")


@pytest.fixture(scope="session")
def scaled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`tidings serve` on PostgreSQL and Redis."""
    yield from _server(tmp_path_factory, "postgres-redis")


@pytest.fixture(params=["embedded", "postgres-redis"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """Each end-to-end test runs on the embedded default and on PostgreSQL + Redis."""
    name = "embedded_server" if request.param == "embedded" else "scaled_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
