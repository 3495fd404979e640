"""The embedded default's signing secret file: made once, whole, mode 0600, the same for every worker at once."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from tidings.auth import SECRET_FILE_NAME, load_or_create_secret


def _race(data_dir: str, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue[str]) -> None:
    start.wait()
    results.put(load_or_create_secret(Path(data_dir)))


def test_workers_starting_at_once_agree_on_one_whole_secret_in_a_0600_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_race, args=(str(tmp_path), start, results)) for _ in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    secrets = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    path = tmp_path / SECRET_FILE_NAME
    assert len(set(secrets)) == 1 and len(secrets[0]) >= 32, secrets  # nobody read a file not yet written
    assert path.read_text() == secrets[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE_NAME], "no temporary file left"
