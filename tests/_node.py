"""Run the Node scripts in tests/node/ against real servers, pausing them where the test acts on the server."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests._client import create, service_token, token
from tests._server import ServerProcess, free_port
from tests._services import in_ci

NODE_DIR = Path(__file__).parent / "node"
MARK = "@@tidings "
MIN_NODE = (20, 19)
# A top-level line of the runner's TAP report: `ok 2 - name # SKIP reason` (a describe() counts as one test).
TAP_RESULT = re.compile(r"^(?P<failed>not )?ok \d+ - (?P<name>.*?)(?: # (?P<directive>SKIP|TODO)\b ?(?P<reason>.*))?$")
# Node 20 reports the tests --test-name-pattern leaves out as skipped with this reason; later versions omit them.
NOT_SELECTED = "test name does not match pattern"


def require_node() -> str:
    """The `node` executable, with tests/node installed; skip with the reason (fail under CI=true) otherwise."""
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "Node.js is not installed (the real-client tests need node >= 20.19 and npm)"
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
        major, minor = (int(part) for part in version.strip().lstrip("v").split(".")[:2])
        if (major, minor) < MIN_NODE:
            reason = f"Node.js {version.strip()} is too old (need >= {'.'.join(map(str, MIN_NODE))})"
        elif not (NODE_DIR / "node_modules" / ".package-lock.json").exists():
            reason = "tests/node is not installed: `make test` runs `npm ci` there"
    if reason is None:
        assert node is not None
        return node
    if in_ci():
        pytest.fail(f"{reason} (CI=true: Node is required)", pytrace=False)
    pytest.skip(reason)


def node_env(server: ServerProcess, user: str) -> dict[str, str]:
    """What a Node script needs (tests/node/lib/tidings.mjs): the server, and tokens minted here."""
    return {
        "TIDINGS_URL": server.url,
        "TIDINGS_USER": user,
        "TIDINGS_USER_TOKEN": token(user),
        "TIDINGS_SERVICE_TOKEN": service_token(),
        "TIDINGS_EXPIRED_TOKEN": token(user, ttl=timedelta(seconds=-60)),
    }


class NodeScript:
    """`node tests/node/<script>` with the server and tokens in its environment.

    The script prints `@@tidings {"pause": NAME, ...}` where the test must act (restart the server...) and waits for
    `{"resume": NAME, ...}` on its standard input. Everything else it prints is kept for the failure message.
    """

    def __init__(self, script: str, env: dict[str, str], *, args: tuple[str, ...] = (), timeout: float = 90.0) -> None:
        self.script = script
        self.timeout = timeout
        self.output: list[str] = []
        self._pauses: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # The exit code alone proves little: Node's runner exits 0 when the pattern matches nothing. Its TAP report
        # says which tests ran.
        self._reports = tempfile.TemporaryDirectory(prefix="tidings-node-")
        self._tap = Path(self._reports.name) / "report.tap"
        reporters = ("--test-reporter=spec", "--test-reporter-destination=stdout")
        reporters += ("--test-reporter=tap", f"--test-reporter-destination={self._tap}")
        self.process = subprocess.Popen(
            [require_node(), *reporters, *args, script],
            cwd=NODE_DIR,
            env={**os.environ, "NO_COLOR": "1", **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"node {script}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(MARK):
                self._pauses.put(json.loads(line[len(MARK) :]))
            else:
                self.output.append(line)
        self._pauses.put(None)  # the script ended

    def log(self) -> str:
        return "".join(self.output)

    def paused(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the script pauses at `name`; returns what it sent."""
        try:
            message = self._pauses.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.script} did not reach {name!r} in {timeout}s:\n{self.log()}") from None
        if message is None:
            self._reader.join(timeout=5)
            raise AssertionError(f"{self.script} ended before {name!r}:\n{self.log()}")
        assert message.get("pause") == name, f"expected pause {name!r}, got {message}"
        return message

    def resume(self, name: str, **reply: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"resume": name, **reply}) + "\n")
        self.process.stdin.flush()

    def finish(self, *, tests: int | None = None) -> str:
        """Wait for the script to end: its tests must all have run (`tests` of them, when given) and passed.

        A test that does not run cannot fail: at least one must have run, and none may be skipped or left to do
        (but those a --test-name-pattern leaves out).
        """
        try:
            returncode = self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.script} did not finish in {self.timeout}s:\n{self.log()}") from None
        self._reader.join(timeout=5)
        assert returncode == 0, f"{self.script} failed ({returncode}):\n{self.log()}"
        ran: list[str] = []
        skipped: list[str] = []
        for line in self._tap.read_text().splitlines() if self._tap.exists() else ():
            if (result := TAP_RESULT.match(line)) is None:
                continue
            assert not result["failed"], f"{self.script}: {line}\n{self.log()}"
            if result["directive"] is None:
                ran.append(result["name"])
            elif result["reason"] != NOT_SELECTED:
                skipped.append(line)
        assert not skipped, f"{self.script} skipped tests: {skipped}\n{self.log()}"
        assert ran, f"{self.script} ran no test:\n{self.log()}"
        assert tests is None or len(ran) == tests, f"{self.script} ran {ran}, not {tests} tests:\n{self.log()}"
        return self.log()

    def __enter__(self) -> NodeScript:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        self._reports.cleanup()


def create_while_away(server: ServerProcess, user: str, titles: list[str]) -> None:
    """While `server` is stopped, another process on the same database creates notifications its clients missed."""
    elsewhere = ServerProcess(server.workdir, {}, port=free_port()).start()
    try:
        for title in titles:
            asyncio.run(create(elsewhere.graphql_url, user, title))
    finally:
        elsewhere.stop()
