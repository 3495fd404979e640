"""The bench: every scenario against tidings and against the floor on this machine; a table, JSON and a PNG.

`make bench` (or `.venv/bin/python -m bench.run`, `--help` for the flags). bench/README.md says what each scenario
means and how to read the numbers.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench import scenarios
from bench.figure import draw
from bench.machine import LOADGEN_CORE, REPO, SERVER_CORE, Machine, busy_cores, require, wait_until_quiet
from bench.measure import LOADGEN_DIR, run_loadgen
from bench.report import FLOOR, TIDINGS, Measured, Summary, summarize, table, write_json
from bench.servers import BenchDatabase, Server, Targets

QUIET_LIMIT = 0.3  # cores the machine may use before a run starts
QUIET_WAIT = 60.0  # seconds to wait for that; --quick: 5


def say(message: str, *, indent: int = 0) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {'  ' * indent}{message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    scenarios.add_arguments(parser)
    parser.add_argument("--no-floor", action="store_true", help="measure tidings only")
    parser.add_argument(
        "--drain", type=float, metavar="S", help="seconds to wait for late responses, then deliveries [10]"
    )
    parser.add_argument(
        "--results-dir", type=Path, metavar="DIR", default=REPO / "bench" / "results", help="[bench/results]"
    )
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin DSN [%(default)s]",
    )
    parser.add_argument(
        "--redis", metavar="URL", default="redis://127.0.0.1:6379/0", help="TIDINGS_BROADCAST_URL [%(default)s]"
    )
    return parser.parse_args(argv)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def preflight(args: argparse.Namespace) -> str:
    """Checks what the run needs; returns the node executable."""
    node = shutil.which("node")
    require(node is not None, "Node.js (>= 20) is needed for the load generator")
    assert node is not None
    require((LOADGEN_DIR / "node_modules" / "ws").is_dir(), "bench/loadgen is not installed: run `make bench`")
    require(_reachable(args.postgres, 5432), f"PostgreSQL is not reachable at {args.postgres}")
    require(_reachable(args.redis, 6379), f"Redis is not reachable at {args.redis}")
    return node


def measure(
    scenario: scenarios.Scenario,
    *,
    servers: dict[str, Callable[[], Server]],
    targets: Targets,
    node: str,
    args: argparse.Namespace,
) -> Measured:
    """Runs `scenario` against each server in turn, a fresh process each."""
    results = {}
    summaries = {}
    drain = args.drain if args.drain is not None else (3.0 if args.quick else 10.0)
    for name, server in servers.items():
        patience = 5.0 if args.quick else QUIET_WAIT
        wait_until_quiet(limit=QUIET_LIMIT, timeout=patience, say=lambda text: say(text, indent=1))
        with server() as running:
            say(f"{name}: pid {running.pid}, port {running.port}", indent=1)
            result = run_loadgen(
                node=node,
                machine=targets.machine,
                server=running,
                scenario=scenario,
                secret=targets.secret,
                drain=drain,
                progress_every=1 if args.quick else 5,
                log_path=targets.workdir / "loadgen.log",
                say=lambda text: say(text, indent=2),
            )
        summary = summarize(scenario, result)
        results[name], summaries[name] = result, summary
        verdict = "" if summary.valid else f"  INVALID: {'; '.join(result['invalid_reasons'])}"
        say(f"{name}: " + _headline(summary) + verdict, indent=1)
        problems = [*result.get("mutations", {}).get("first_errors", []), *result["troubles"]["first"]]
        if problems:
            say(f"first problems seen: {problems[:3]}", indent=2)
    return Measured(scenario, results, summaries)


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _headline(summary: Summary) -> str:
    if summary.kib_per_socket is not None:
        return f"{summary.kib_per_socket:.1f} KiB per socket, RSS {_number(summary.rss_mib, '.1f')} MiB at the top step"
    return (
        f"{_number(summary.done, '.1f')}/s of {_number(summary.offered, '.0f')}/s offered, lost {summary.lost}, "
        f"p50 {_number(summary.p50_ms, '.2f')} ms, p99 {_number(summary.p99_ms, '.2f')} ms, "
        f"{_number(summary.cpu_us, '.0f')} µs CPU each"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the servers are stopped and the database dropped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    node = preflight(args)
    chosen = scenarios.build(args)
    machine = Machine.detect(node)
    say(f"tidings bench on {machine.host}: {machine.describe()}, tidings {machine.tidings_commit}")
    if machine.pinned:
        say(f"servers pinned to core {SERVER_CORE}, the loadgen to core {LOADGEN_CORE}; PostgreSQL and Redis float")
    else:
        say("fewer than 2 cores (or no taskset): nothing pinned, the loadgen competes with the server")
    busy = busy_cores()
    if busy > QUIET_LIMIT:
        say(
            f"the machine is busy ({busy:.2f} cores before starting): run the bench alone, never beside tests or builds"
        )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    measured: list[Measured] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as workdir, BenchDatabase(args.postgres) as database:
        say(f"PostgreSQL: database {database.name}, migrated, with synchronous_commit = off (the disk's flush latency")
        say("  would otherwise be in every createNotification; production keeps it on); dropped at the end")
        targets = Targets(
            machine=machine,
            database_url=database.url,
            redis_url=args.redis,
            secret=secrets.token_urlsafe(48),
            workdir=Path(workdir),
            max_rate=scenarios.max_rate(chosen),
        )
        servers = {TIDINGS: targets.tidings}
        if not args.no_floor:
            servers[FLOOR] = targets.floor
        for index, scenario in enumerate(chosen, 1):
            say(f"[{index}/{len(chosen)}] {scenario.label}")
            try:
                measured.append(measure(scenario, servers=servers, targets=targets, node=node, args=args))
            except RuntimeError as error:  # a server or the loadgen failed: say why, go on with the others
                failures.append(f"{scenario.label}: {error}")
                say(f"FAILED: {error}", indent=1)
    print()
    print(table(measured))
    for failure in failures:
        print(f"\nFAILED {failure}")
    json_path = args.results_dir / f"{machine.stem}.json"
    settings = {"quick": args.quick, "synchronous_commit": "off", "redis": args.redis, "floor": not args.no_floor}
    write_json(json_path, machine=machine, settings=settings, measured=measured, failures=failures)
    png_path = json_path.with_suffix(".png")
    draw(png_path, machine=machine, measured=measured)
    print(f"\nwrote {_shown(json_path)} and {_shown(png_path)}")
    return 1 if failures else 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
