"""The `tidings` command as a user runs it: the venv's entry point in a child process, with only the settings given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIDINGS = Path(sys.executable).parent / "tidings"


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}
    return {**clean, **(env or {})}


def tidings(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `tidings ARGS` in `cwd` with no TIDINGS_* setting but those in `env`; output captured as text."""
    return subprocess.run(
        [str(TIDINGS), *args],
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_tidings(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`tidings`, as `tidings()` runs it, started and not waited for."""
    return subprocess.Popen(
        [str(TIDINGS), *args],
        cwd=cwd,
        env=_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
