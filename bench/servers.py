"""What a bench run measures: `tidings serve` on its own PostgreSQL database and Redis channels, and the floor."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import asyncpg

from bench.machine import REPO, SERVER_CORE, Machine

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# tidings' default limit for a service token (TIDINGS_SERVICE_MUTATIONS_PER_SECOND); raised only for faster sweeps.
DEFAULT_SERVICE_RATE = 2000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class BenchDatabase:
    """A database of the bench's own on the PostgreSQL server, migrated by `tidings migrate`, dropped at the end."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.name = f"tidings_bench_{uuid.uuid4().hex[:8]}"
        self.url = admin_dsn.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> BenchDatabase:
        asyncio.run(
            _execute(
                self.admin_dsn,
                f'CREATE DATABASE "{self.name}"',
                # The disk's flush latency would otherwise be in every createNotification (a VM's can be milliseconds).
                f'ALTER DATABASE "{self.name}" SET synchronous_commit = off',
            )
        )
        try:
            migrate = subprocess.run(
                [sys.executable, "-m", "tidings", "migrate"],
                env={**os.environ, "TIDINGS_DATABASE_URL": self.url},
                capture_output=True,
                text=True,
            )
            if migrate.returncode != 0:
                raise RuntimeError(f"tidings migrate failed:\n{migrate.stderr}")
        except BaseException:
            self._drop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._drop()

    def _drop(self) -> None:
        asyncio.run(_execute(self.admin_dsn, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


@dataclass
class Server:
    """A server in a child process on a free port, pinned to the server core; a context manager that stops it."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Server:
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env={**os.environ, **self.env}, cwd=REPO, stdout=log, stderr=log)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.name} did not become ready in {READY_TIMEOUT:.0f} s:\n{self.log()}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@dataclass(frozen=True, slots=True)
class Targets:
    """How to start each server the run compares, sharing one secret (the loadgen signs its tokens with it)."""

    machine: Machine
    database_url: str
    redis_url: str
    secret: str
    workdir: Path
    max_rate: float

    def tidings(self) -> Server:
        env = {
            "TIDINGS_DATA_DIR": str(self.workdir / "data"),
            "TIDINGS_DATABASE_URL": self.database_url,
            "TIDINGS_BROADCAST_URL": self.redis_url,
            "TIDINGS_CHANNEL_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "TIDINGS_JWT_SECRET": self.secret,
            "TIDINGS_AUTO_MIGRATE": "false",
            "TIDINGS_LOG_LEVEL": "warning",
            # The bench measures capacity, not the limiter: room for twice the highest offered rate.
            "TIDINGS_SERVICE_MUTATIONS_PER_SECOND": str(max(DEFAULT_SERVICE_RATE, round(2 * self.max_rate))),
        }
        command = [sys.executable, "-m", "tidings", "serve", "--port", "{port}"]
        return Server("tidings", self.machine.pin(SERVER_CORE, command), env, self.workdir / "tidings.log")

    def floor(self) -> Server:
        command = [sys.executable, "-m", "bench.floor", "--port", "{port}"]
        env = {"TIDINGS_JWT_SECRET": self.secret}
        return Server("floor", self.machine.pin(SERVER_CORE, command), env, self.workdir / "floor.log")
