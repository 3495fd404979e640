"""Starting `tidings serve` as a user would: one line for what stops it, the banner only once it serves, and a server
that starts without Redis and catches up when Redis comes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests._cli import tidings
from tests._client import WAIT, WSClient, create, gql, token
from tests._faults import RedisProcess
from tests._server import TEST_SECRET, PostgresDatabase, ServerProcess, free_port
from tidings import migrate

UNREACHABLE_FIX = "start it, or point TIDINGS_DATABASE_URL at a reachable server"


def test_unreachable_database_is_one_line_and_no_banner(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {"TIDINGS_DATABASE_URL": f"postgresql://tidings:hunter2@127.0.0.1:{port}/tidings", "TIDINGS_PORT": "0"}
    result = tidings("serve", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"tidings: TIDINGS_DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:{port}/tidings (connection refused): "
        f"{UNREACHABLE_FIX}\n"
    )


def test_unwritable_data_dir_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the data directory should be")
    result = tidings("serve", cwd=tmp_path, env={"TIDINGS_DATA_DIR": "file/data"})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("tidings: TIDINGS_DATA_DIR: cannot open the SQLite database file/data/tidings.db (")
    assert result.stderr.endswith("): fix TIDINGS_DATA_DIR\n") and result.stderr.count("\n") == 1


def test_unmigrated_postgres_says_run_tidings_migrate_then_serves(tmp_path: Path) -> None:
    with PostgresDatabase() as database:
        env = {"TIDINGS_DATABASE_URL": database.url, "TIDINGS_JWT_SECRET": TEST_SECRET, "TIDINGS_PORT": "0"}
        where = f"PostgreSQL at {database.url.split('@', 1)[1]}"
        refused = tidings("serve", cwd=tmp_path, env=env)
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == (
            f"tidings: TIDINGS_DATABASE_URL: {where} has no tidings schema yet: run `tidings migrate` "
            "(or set TIDINGS_AUTO_MIGRATE=true)\n"
        )

        migrated = tidings("migrate", cwd=tmp_path, env=env)
        head = migrate.head_revision()
        assert (migrated.returncode, migrated.stderr) == (
            0,
            f"tidings: {where} migrated from empty to revision {head}\n",
        )
        again = tidings("migrate", cwd=tmp_path, env=env)
        assert (again.returncode, again.stderr) == (0, f"tidings: {where} already at revision {head}\n")

        server = ServerProcess(tmp_path / "server", {"TIDINGS_DATABASE_URL": database.url}).start()
        try:
            readiness = httpx.get(f"{server.url}/readyz")
            assert readiness.status_code == 200
            assert readiness.json() == {"ready": True, "broadcast": True, "database": True}
        finally:
            server.stop()


def test_banner_is_printed_once_the_server_answers_and_alembic_stays_quiet(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {}).start()
    try:
        link = server.printed_dashboard_link()
        log = server.log()
        assert log.index("Uvicorn running on") < log.index(f"dashboard at {link}")
        assert log.count("dashboard at") == 1
        assert "database: migrated the SQLite database" in log
        assert "alembic" not in log
    finally:
        server.stop()


def test_unreachable_redis_cluster_fails_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    env = {"TIDINGS_BROADCAST_URL": f"redis-cluster://user:hunter2@127.0.0.1:{port}", "TIDINGS_PORT": "0"}
    result = tidings("serve", cwd=tmp_path, env=env)
    assert result.returncode != 0
    line = (
        f"TIDINGS_BROADCAST_URL: cannot reach the broker at 127.0.0.1:{port} (connection refused): start it, or "
        "point TIDINGS_BROADCAST_URL at a reachable one"
    )
    assert [row for row in result.stderr.splitlines() if "TIDINGS_BROADCAST_URL" in row] == [f"ERROR:    {line}"]
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert "dashboard at" not in result.stderr


async def test_server_starts_without_redis_then_catches_up_when_it_comes(tmp_path: Path, user: str) -> None:
    broker = RedisProcess(tmp_path / "redis")  # its port is chosen; nothing listens there yet
    env = {
        "TIDINGS_BROADCAST_URL": broker.url,
        "TIDINGS_CHANNEL_PREFIX": f"tidings-test-{uuid.uuid4().hex[:8]}",
        "TIDINGS_BROKER_RECONNECT_DELAY_MAX": "0.5",
    }
    server = ServerProcess(tmp_path / "server", env).start(ready="/healthz")
    device: WSClient | None = None
    try:
        async with httpx.AsyncClient() as http:
            readiness = await http.get(f"{server.url}/readyz")
            assert readiness.status_code == 503
            assert readiness.json() == {"ready": False, "broadcast": False, "database": True}
            listed = await gql(server.graphql_url, "{ notifications(first: 1) { feedCursor } }", bearer=token(user))
            during = await create(server.graphql_url, user, "while Redis was down")  # written all the same

            broker.start()
            async with asyncio.timeout(WAIT * 3):
                while (readiness := await http.get(f"{server.url}/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
            assert readiness.json() == {"ready": True, "broadcast": True, "database": True}

        device = await WSClient.connected(server.ws_url, token(user))
        operation = await device.subscribe(variables={"after": listed["data"]["notifications"]["feedCursor"]})
        assert (await device.next_event(operation))["sequence"] == during["sequence"]
        after = await create(server.graphql_url, user, "once Redis is back")
        assert (await device.next_event(operation))["sequence"] == after["sequence"]
        log = server.log()
        assert log.count("cannot reach Redis at TIDINGS_BROADCAST_URL") == 1
        assert log.count("reconnected to Redis") == 1
        assert "Traceback" not in log
    finally:
        if device is not None:
            await device.close()
        server.stop()
        broker.kill()
