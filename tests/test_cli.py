"""The `tidings` command: versions, help, settings errors and tokens, run as the real entry point."""

from __future__ import annotations

import asyncio
import subprocess
from importlib.metadata import version
from pathlib import Path

import asyncpg
import pytest

from tests._cli import start_tidings, tidings
from tests._client import gql
from tests._server import TEST_SECRET, PostgresDatabase, ServerProcess
from tidings.migrate import POSTGRES_MIGRATION_LOCK, head_revision


def test_version_is_the_package_version(tmp_path: Path) -> None:
    result = tidings("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"tidings {version('tidings')}\n", "")


def test_serve_help_describes_the_server_and_points_at_the_settings_table(tmp_path: Path) -> None:
    result = tidings("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Run the tidings server" in result.stdout
    assert "TIDINGS_* environment variable" in result.stdout
    assert "Settings\ntable of README.md" in result.stdout
    assert not (tmp_path / ".tidings").exists()


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"TIDINGS_PORT": "abc"},
            "TIDINGS_PORT: Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"TIDINGS_LOG_LEVEL": "verbose"}, "TIDINGS_LOG_LEVEL: Input should be 'debug', 'info', 'warning' or 'error'"),
        ({"TIDINGS_JWT_SECRET": "too-short"}, "TIDINGS_JWT_SECRET must be at least 32 bytes (RFC 7518 section 3.2)"),
        ({"TIDINGS_DATABASE_URL": "mysql://db/x"}, "TIDINGS_DATABASE_URL must be a postgresql:// or sqlite:// URL"),
        (
            {"TIDINGS_JWT_ALGORITHM": "RS256", "TIDINGS_JWT_PUBLIC_KEY_FILE": "missing.pem"},
            "TIDINGS_JWT_PUBLIC_KEY_FILE: Path does not point to a file",
        ),
        (
            {"TIDINGS_JWT_ALGORITHM": "RS256"},
            "TIDINGS_JWT_ALGORITHM=RS256 needs TIDINGS_JWT_PUBLIC_KEY_FILE or _JWKS_FILE",
        ),
        (
            {"TIDINGS_JWT_ALGORITHM": "RS256", "TIDINGS_JWT_PUBLIC_KEY_FILE": "public.pem"},
            "TIDINGS_JWT_ALGORITHM=RS256 with your identity provider's keys needs TIDINGS_JWT_ISSUER and "
            "TIDINGS_JWT_AUDIENCE (the issuer, and the audience of tokens for tidings)",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], line: str) -> None:
    (tmp_path / "public.pem").write_text("a key file that exists")
    result = tidings("serve", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"tidings: {line}\n")
    assert not (tmp_path / ".tidings").exists(), "nothing is written"


@pytest.mark.parametrize("command", [["migrate"], ["token", "alice"]])
def test_every_command_names_a_bad_setting_in_one_line(tmp_path: Path, command: list[str]) -> None:
    result = tidings(*command, cwd=tmp_path, env={"TIDINGS_DATABASE_POOL_SIZE": "0"})
    line = "tidings: TIDINGS_DATABASE_POOL_SIZE: Input should be greater than or equal to 1\n"
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line)
    assert not (tmp_path / ".tidings").exists()


def test_token_without_a_secret_refuses_with_a_hint_and_makes_none(tmp_path: Path) -> None:
    result = tidings("token", "alice", cwd=tmp_path)
    data_dir = tmp_path.resolve() / ".tidings"
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"tidings: no signing secret: TIDINGS_JWT_SECRET is unset and {data_dir / 'jwt-secret'} does not exist "
        "(tidings serve makes it at its first start); run this where the server runs, or set TIDINGS_DATA_DIR or "
        "TIDINGS_JWT_SECRET as the server has them\n"
    )
    assert not data_dir.exists(), "only the server makes a secret"


def test_token_of_a_service_without_a_private_key_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "public.pem").write_text("not read before a token is verified")
    env = {
        "TIDINGS_JWT_ALGORITHM": "RS256",
        "TIDINGS_JWT_PUBLIC_KEY_FILE": "public.pem",
        "TIDINGS_JWT_ISSUER": "https://id.example",
        "TIDINGS_JWT_AUDIENCE": "tidings",
    }
    result = tidings("token", "backend", "--service", cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "tidings: TIDINGS_JWT_ALGORITHM=RS256 tokens are signed by your identity provider; to mint one in "
        "development, set TIDINGS_JWT_PRIVATE_KEY_FILE\n"
    )


async def test_token_signs_with_the_secret_the_server_made_and_says_whose(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", {})
    del server.env["TIDINGS_JWT_SECRET"]  # the embedded default: the server makes its secret in its data dir
    server.start()
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        data_dir = (tmp_path / "server" / "data").resolve()
        result = tidings("token", "alice", cwd=elsewhere, env={"TIDINGS_DATA_DIR": str(data_dir)})
        assert result.returncode == 0, result.stderr
        assert result.stderr == f"tidings: signed with the secret of the data dir {data_dir}\n"
        body = await gql(server.graphql_url, "{ unreadCount }", bearer=result.stdout.strip())
        assert body == {"data": {"unreadCount": 0}}
        assert not (elsewhere / ".tidings").exists()
    finally:
        server.stop()


async def test_token_signs_with_the_configured_secret_and_says_so(
    server: ServerProcess, tmp_path: Path, user: str
) -> None:
    result = tidings("token", user, "--ttl", "5m", cwd=tmp_path, env={"TIDINGS_JWT_SECRET": TEST_SECRET})
    assert (result.returncode, result.stderr) == (0, "tidings: signed with TIDINGS_JWT_SECRET\n")
    body = await gql(server.graphql_url, "{ unreadCount }", bearer=result.stdout.strip())
    assert body == {"data": {"unreadCount": 0}}


@pytest.mark.parametrize("content", ["", "short"], ids=["empty", "short"])
@pytest.mark.parametrize("command", [["serve"], ["token", "alice"]])
def test_an_empty_or_short_secret_file_is_one_line_not_a_weak_key(
    tmp_path: Path, command: list[str], content: str
) -> None:
    secret_file = tmp_path.resolve() / ".tidings" / "jwt-secret"
    secret_file.parent.mkdir()
    secret_file.write_text(content)
    result = tidings(*command, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"tidings: {secret_file} holds "), result.stderr
    assert "delete it and start the server to make a new one" in result.stderr
    assert secret_file.read_text() == content, "left as it was"


async def test_two_migrations_at_once_both_succeed_and_migrate_once(tmp_path: Path) -> None:
    """Deploys that run `tidings migrate` on two machines at once: the advisory lock lets one migrate, then the other
    finds the schema in place. The test holds the lock until both wait for it, so they do run at once."""
    database = PostgresDatabase()
    await database.create()
    holder = await asyncpg.connect(database.url)
    migrations: list[subprocess.Popen[str]] = []
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", POSTGRES_MIGRATION_LOCK)
        env = {"TIDINGS_DATABASE_URL": database.url, "TIDINGS_JWT_SECRET": TEST_SECRET}
        migrations += [start_tidings("migrate", cwd=tmp_path, env=env) for _ in range(2)]
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1"
        async with asyncio.timeout(60):
            while await holder.fetchval(waiting, POSTGRES_MIGRATION_LOCK & 0xFFFFFFFF) < 2:
                assert all(migration.poll() is None for migration in migrations), "a migrate ended without the lock"
                await asyncio.sleep(0.05)
        await holder.execute("SELECT pg_advisory_unlock($1)", POSTGRES_MIGRATION_LOCK)
        outputs = [await asyncio.to_thread(migration.communicate, timeout=60) for migration in migrations]
        where, head = f"PostgreSQL at {database.url.split('@', 1)[1]}", head_revision()
        assert [migration.returncode for migration in migrations] == [0, 0], outputs
        assert sorted(stderr for _, stderr in outputs) == [
            f"tidings: {where} already at revision {head}\n",
            f"tidings: {where} migrated from empty to revision {head}\n",
        ]
        assert await holder.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        for migration in migrations:
            if migration.poll() is None:
                migration.kill()
            migration.communicate()
        await holder.close()
        await database.drop()
