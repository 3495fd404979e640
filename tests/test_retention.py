"""Retention end to end: the server's own sweep forgets old events and tombstones in batches; old cursors RESYNC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests._client import WSClient, create, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tidings.store import create_engine
from tidings.store.models import events, notifications

DELETE = "mutation D($id: ID!) { deleteNotification(id: $id) }"
SWEEP = {"TIDINGS_RETENTION_INTERVAL": "0.2", "TIDINGS_RETENTION_BATCH_SIZE": "2", "TIDINGS_RETENTION_DAYS": "1"}


@pytest.fixture(params=["embedded", "postgres-redis"])
async def sweeping(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, str]]:
    """A server whose retention sweep runs every 0.2 s, and the database URL it uses."""
    database: PostgresDatabase | None = None
    if request.param == "embedded":
        env = dict(SWEEP)
        url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tidings.db'}"
    else:
        database = PostgresDatabase()
        await database.create()
        env = scaled_env(database, **SWEEP)
        url = database.url.replace("postgresql://", "postgresql+asyncpg://")
    server = ServerProcess(tmp_path, env).start()
    try:
        yield server, url
    finally:
        server.stop()
        if database is not None:
            await database.drop()


async def _age(url: str, user: str, days: int) -> None:
    """Move the user's events and tombstones `days` into the past, as if the feed had been idle that long."""
    engine = create_engine(url)
    try:
        past = datetime.now(UTC) - timedelta(days=days)
        async with engine.begin() as conn:
            await conn.execute(events.update().where(events.c.user_id == user).values(created_at=past))
            await conn.execute(
                notifications.update()
                .where(notifications.c.user_id == user, notifications.c.deleted_at.is_not(None))
                .values(deleted_at=past)
            )
    finally:
        await engine.dispose()


async def _kept(url: str, user: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            kept_events = (
                await conn.execute(sa.select(sa.func.count()).select_from(events).where(events.c.user_id == user))
            ).scalar_one()
            kept_rows = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(notifications).where(notifications.c.user_id == user)
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return kept_events, kept_rows


async def test_the_sweep_forgets_old_events_and_tombstones_and_old_cursors_resync(
    sweeping: tuple[ServerProcess, str], user: str
) -> None:
    server, url = sweeping
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe()
        created = [await create(server.graphql_url, user, f"n{i}") for i in range(5)]
        deleted = await gql(server.graphql_url, DELETE, {"id": created[0]["id"]}, bearer=service_token())
        assert "errors" not in deleted, deleted
        live = await device.events(operation, 6)
    assert await _kept(url, user) == (6, 5)  # positive control: nothing is old yet, the sweep keeps everything

    await _age(url, user, days=2)
    for _ in range(200):
        if await _kept(url, user) == (0, 4):
            break
        await asyncio.sleep(0.1)
    assert await _kept(url, user) == (0, 4)  # six events and the tombstone gone; the four live notifications stay
    assert "retention: removed 6 events and 1 deleted notifications" in server.log()

    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": live[0]["cursor"]})
        resync = await device.next_event(operation)
        assert resync["kind"] == "RESYNC" and resync["sequence"] == 6 and resync["unreadCount"] == 4
        later = await create(server.graphql_url, user, "after the sweep")
        event = await device.next_event(operation)
        assert event["kind"] == "CREATED" and event["sequence"] == 7  # positions never go back
        assert event["notification"]["id"] == later["id"]
