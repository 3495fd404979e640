"""The machine a bench run is on: what it is, which cores the server and the loadgen get, and whether it is quiet."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SERVER_CORE = 0
LOADGEN_CORE = 1


@dataclass(frozen=True, slots=True)
class Machine:
    """Facts the results are stamped with (the figure's title, the JSON's `machine`)."""

    date: str
    started_at: str
    host: str
    cpu_model: str
    cores: int
    pinned: bool
    python: str
    node: str
    tidings_commit: str

    @classmethod
    def detect(cls, node: str) -> Machine:
        now = datetime.now().astimezone()
        cores = len(os.sched_getaffinity(0))
        return cls(
            date=now.date().isoformat(),
            started_at=now.isoformat(timespec="seconds"),
            host=socket.gethostname(),
            cpu_model=_cpu_model(),
            cores=cores,
            pinned=cores >= 2 and shutil.which("taskset") is not None,
            python=platform.python_version(),
            node=subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip(),
            tidings_commit=_commit(),
        )

    @property
    def stem(self) -> str:
        """`<date>-<host>`: the name of this run's JSON and PNG."""
        return f"{self.date}-{re.sub(r'[^A-Za-z0-9.-]+', '-', self.host)}"

    def describe(self) -> str:
        return f"{self.cpu_model}, {self.cores} core{'s' if self.cores != 1 else ''}"

    def pin(self, core: int, command: list[str]) -> list[str]:
        """`command` restricted to one core with taskset, when there are two to share out."""
        return ["taskset", "-c", str(core), *command] if self.pinned else command

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return re.sub(r"\s+", " ", match.group(1)).strip() if match else platform.machine()


def _commit() -> str:
    """The last commit of the server's code (tidings/), `+changes` when the work tree differs from it."""
    git = ["git", "-C", str(REPO)]
    try:
        last = subprocess.run([*git, "log", "-1", "--format=%h", "--", "tidings"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "tidings"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    if last.returncode != 0 or not last.stdout.strip():
        return "unknown"
    return last.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores' worth of CPU the whole machine used over the next `seconds`."""
    busy0, total0 = _busy_jiffies()
    time.sleep(seconds)
    busy1, total1 = _busy_jiffies()
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def wait_until_quiet(*, limit: float, timeout: float, say: Callable[[str], None]) -> float:
    """Waits up to `timeout` s for the machine to use less than `limit` cores; returns the last reading."""
    deadline = time.monotonic() + timeout
    busy = busy_cores()
    if busy >= limit:
        say(f"waiting for a quiet machine: {busy:.2f} cores busy (> {limit:.2f}) ...")
    while busy >= limit and time.monotonic() < deadline:
        busy = busy_cores()
    if busy >= limit:
        say(f"the machine stayed busy ({busy:.2f} cores): this run's numbers are disturbed")
    return busy


def require(condition: bool, message: str) -> None:
    """Stops the run with `message` (what to install or start) when `condition` does not hold."""
    if not condition:
        print(f"bench: {message}", file=sys.stderr)
        raise SystemExit(2)
