"""`tidings stats [USER]`: what the database holds per state, read by the real CLI on each database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests._cli import tidings
from tests._client import create, gql, service_token
from tests._server import TEST_SECRET, PostgresDatabase, ServerProcess, scaled_env
from tidings.store import create_engine
from tidings.store.models import feeds


@pytest.fixture(params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server of the test's own, and the settings that point `tidings stats` at its database."""
    if request.param == "sqlite":
        server = ServerProcess(tmp_path, {}).start()
        try:
            yield server, {"TIDINGS_DATA_DIR": server.env["TIDINGS_DATA_DIR"]}
        finally:
            server.stop()
        return
    with PostgresDatabase() as database:
        server = ServerProcess(tmp_path, scaled_env(database)).start()
        try:
            yield server, {"TIDINGS_DATABASE_URL": database.url, "TIDINGS_JWT_SECRET": TEST_SECRET}
        finally:
            server.stop()


async def _act(server: ServerProcess, mutation: str, notification_id: str, **variables: object) -> None:
    body = await gql(server.graphql_url, mutation, {"id": notification_id, **variables}, bearer=service_token())
    assert "errors" not in body, body


def _figures(output: str) -> dict[str, int]:
    return {line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1]) for line in output.splitlines()}


async def test_stats_count_every_state_for_everyone_and_for_one_user(
    served: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    server, settings = served
    alice = [await create(server.graphql_url, "alice", f"n{i}") for i in range(5)]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await create(server.graphql_url, "bob", "expiring", expiresAt=later)
    await _act(server, "mutation($id: ID!) { markNotificationRead(id: $id) { id } }", alice[0]["id"])
    await _act(server, "mutation($id: ID!) { archiveNotification(id: $id) { id } }", alice[1]["id"])
    snooze = "mutation($id: ID!, $until: DateTime!) { snoozeNotification(id: $id, until: $until) { id } }"
    await _act(server, snooze, alice[2]["id"], until=later)
    await _act(server, "mutation($id: ID!) { deleteNotification(id: $id) }", alice[3]["id"])
    mute = 'mutation($u: ID!) { setMutedCategories(userId: $u, categories: ["social"]) { mutedCategories } }'
    assert "errors" not in await gql(server.graphql_url, mute, {"u": "bob"}, bearer=service_token())
    await create(server.graphql_url, "bob", "muted", category="social")  # stored read and seen, counted nowhere
    for title in ("Ann commented", "Ann and Ben commented"):  # one row: the second folds into the first
        await create(server.graphql_url, "bob", title, collapseKey="post-1")

    everyone = tidings("stats", cwd=tmp_path, env=settings)
    assert (everyone.returncode, everyone.stderr) == (0, ""), everyone.stderr
    assert _figures(everyone.stdout) == {
        "users": 2,
        "notifications": 7,  # eight made, one deleted, one folded into another
        "in inbox": 5,  # alice's read one and her untouched one, bob's three
        "unread": 3,  # alice's untouched one, bob's expiring one and his thread
        "unseen": 3,
        "archived": 1,
        "snoozed": 1,
        "expiring": 1,
        "muted": 1,
        "collapsed": 1,
        "folded": 1,
        "deleted": 1,
        "events": 14,  # eight creates (one an UPDATED), read, archive, snooze, delete, PREFERENCES
        "kept unread": 3,
        "kept unseen": 3,
        "last position": 9,  # alice's
    }
    one = tidings("stats", "bob", cwd=tmp_path, env=settings)
    assert one.returncode == 0 and "users" not in _figures(one.stdout)
    names = ("notifications", "unread", "expiring", "muted", "collapsed", "folded", "events")
    assert {name: _figures(one.stdout)[name] for name in names} == {
        "notifications": 3,
        "unread": 2,
        "expiring": 1,
        "muted": 1,
        "collapsed": 1,
        "folded": 1,
        "events": 5,
    }


async def test_stats_say_when_the_kept_counts_differ_from_a_recount(
    served: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    server, settings = served
    await create(server.graphql_url, "carol", "one")
    url = settings.get("TIDINGS_DATABASE_URL", "").replace("postgresql://", "postgresql+asyncpg://") or (
        f"sqlite+aiosqlite:///{Path(settings['TIDINGS_DATA_DIR']) / 'tidings.db'}"
    )
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:  # a hand edit: the feed now claims two unread
            await conn.execute(feeds.update().where(feeds.c.user_id == "carol").values(unread_count=2))
    finally:
        await engine.dispose()
    result = tidings("stats", "carol", cwd=tmp_path, env=settings)
    assert result.returncode == 3
    assert _figures(result.stdout)["kept unread"] == 2 and _figures(result.stdout)["unread"] == 1
    assert result.stderr.startswith("tidings: the kept unread/unseen counts differ from a recount")
