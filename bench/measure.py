"""One measurement: the loadgen, pinned to its own core, against one running server, relaying its progress."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import LOADGEN_CORE, REPO, Machine
from bench.scenarios import Fanout, Scenario
from bench.servers import Server

LOADGEN_DIR = REPO / "bench" / "loadgen"
# Beyond the scenario's own bounds (sending, drain, handshakes): a loadgen still running then is stuck.
SLACK_S = 300.0


def run_loadgen(
    *,
    node: str,
    machine: Machine,
    server: Server,
    scenario: Scenario,
    secret: str,
    drain: float,
    progress_every: float,
    log_path: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Runs the loadgen for `scenario` against `server`; returns its result (bench/loadgen/loadgen.mjs documents it)."""
    command = machine.pin(
        LOADGEN_CORE,
        [
            node,
            "loadgen.mjs",
            f"--url={server.url}",
            f"--server-pid={server.pid}",
            f"--progress={progress_every:g}",
            *scenario.loadgen_args(drain),
        ],
    )
    budget = SLACK_S + (scenario.duration + 2 * drain if isinstance(scenario, Fanout) else 0)
    result: dict[str, Any] | None = None
    with log_path.open("a") as log:
        process = subprocess.Popen(
            command,
            cwd=LOADGEN_DIR,
            env={**os.environ, "TIDINGS_JWT_SECRET": secret},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        watchdog = threading.Timer(budget, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                event = json.loads(line)
                if event.pop("event") == "result":
                    result = event
                else:
                    say(describe_progress(event))
            code = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
    if code != 0 or result is None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the loadgen failed (exit {code}); {log_path}:\n{tail}")
    return result


def describe_progress(event: dict[str, Any]) -> str:
    phase = event.get("phase")
    if phase == "open":
        failed = f", {event['failed']} FAILED" if event["failed"] else ""
        return f"{event['sockets']} sockets subscribed in {event['seconds']:.1f} s{failed}"
    if phase == "warm-up":
        return f"warm-up: {event['delivered']}/{event['expected']} delivered in {event['seconds']:.1f} s"
    if phase == "measure":
        return (
            f"t={event['t']:.0f} s: sent {event['sent']}, ok {event['ok']}, failed {event['failed']}, "
            f"in flight {event['inflight']}, delivered {event['delivered']}"
        )
    if phase == "idle":
        return f"{event['sockets']} sockets: server RSS {event['rss_kib'] / 1024:.1f} MiB"
    return json.dumps(event)
