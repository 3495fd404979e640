"""The `tidings` command as a user runs it: the venv's entry point in a child process, with only the settings given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIDINGS = Path(sys.executable).parent / "tidings"


def tidings(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `tidings ARGS` in `cwd` with no TIDINGS_* setting but those in `env`; output captured as text."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TIDINGS_")}
    return subprocess.run(
        [str(TIDINGS), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
