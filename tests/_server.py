"""Real tidings servers in child processes on free ports, and the databases they use."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import ClassVar

import asyncpg
import httpx

from tests._services import postgres_admin_dsn, redis_url

TEST_SECRET = "test-secret-for-tidings-suite-only-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresDatabase:
    """A fresh database on the shared PostgreSQL server, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"tidings_test_{uuid.uuid4().hex[:12]}"
        self._admin = postgres_admin_dsn()
        self.url = self._admin.rsplit("/", 1)[0] + f"/{self.name}"

    async def _execute(self, statement: str) -> None:
        conn = await asyncpg.connect(self._admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._execute(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def __enter__(self) -> PostgresDatabase:
        asyncio.run(self.create())
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run(self.drop())


def scaled_env(database: PostgresDatabase, *, broadcast_url: str | None = None, **settings: str) -> dict[str, str]:
    """A server's environment on PostgreSQL and Redis: migrated on start, on channels no other test uses."""
    return {
        "TIDINGS_DATABASE_URL": database.url,
        "TIDINGS_BROADCAST_URL": broadcast_url or redis_url(),
        "TIDINGS_CHANNEL_PREFIX": f"tidings-test-{uuid.uuid4().hex[:8]}",
        "TIDINGS_AUTO_MIGRATE": "true",
        **settings,
    }


class ServerProcess:
    """`tidings serve` in a child process, as a user would run it."""

    started: ClassVar[set[ServerProcess]] = set()  # stopped at the end of the session, whatever a test did

    def __init__(
        self, workdir: Path, env: dict[str, str], *, port: int | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self.args = args  # more of `tidings serve`'s arguments (--workers 2)
        self.workdir = workdir
        self.log_path = workdir / f"server-{self.port}.log"
        self.env = {
            **os.environ,
            "TIDINGS_DATA_DIR": str(workdir / "data"),
            "TIDINGS_JWT_SECRET": TEST_SECRET,
            "TIDINGS_LOG_LEVEL": "info",
            # Many servers share the machine's PostgreSQL (max_connections 100) during a test run.
            "TIDINGS_DATABASE_POOL_SIZE": "4",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def printed_dashboard_link(self, timeout: float = 10.0) -> str:
        """The dashboard link `tidings serve` printed at its latest start, as a user would copy it.

        It is printed once the server answers, which may be just after it first answered us.
        """
        deadline = time.monotonic() + timeout
        while True:
            latest = self.log().rsplit("Started server process", 1)[-1]  # this start's part of the log
            links = re.findall(r"dashboard at (\S+)", latest)
            if links:
                return links[-1]
            assert time.monotonic() < deadline, f"tidings serve printed no dashboard link:\n{self.log()}"
            time.sleep(0.05)

    def start(self, timeout: float = 30.0, *, ready: str = "/readyz") -> ServerProcess:
        """Start, and return once `ready` answers 200 (`/healthz` for a server that starts without its broker)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidings", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ServerProcess.started.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tidings serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{ready}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tidings serve did not become ready in {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
