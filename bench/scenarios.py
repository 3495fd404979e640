"""The scenarios a bench run measures: the defaults, the `--quick` smoke run, and the flags that change them."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace

SWEEP = "sweep"


@dataclass(frozen=True, slots=True)
class Fanout:
    """U users x D devices subscribed; createNotification at `rate`/s for `duration` s. D = 0: the mutation alone."""

    key: str  # what --only selects
    title: str
    users: int
    devices: int
    rate: float
    duration: float
    group: str | None = None  # the sweep's points share one

    @property
    def label(self) -> str:
        return f"{self.title} {self.users}x{self.devices} @ {self.rate:g}/s"

    def loadgen_args(self, drain: float) -> list[str]:
        return [
            "--mode=fanout",
            f"--users={self.users}",
            f"--devices={self.devices}",
            f"--rate={self.rate:g}",
            f"--duration={self.duration:g}",
            f"--drain={drain:g}",
        ]


@dataclass(frozen=True, slots=True)
class Idle:
    """Subscribed sockets opened in steps up to `sockets`, nothing sent: the server's memory per socket."""

    key: str
    title: str
    sockets: int
    step: int
    devices: int
    settle: float

    @property
    def label(self) -> str:
        return f"{self.title} 0..{self.sockets} sockets"

    def loadgen_args(self, drain: float) -> list[str]:
        return [
            "--mode=idle",
            f"--sockets={self.sockets}",
            f"--step={self.step}",
            f"--devices={self.devices}",
            f"--settle={self.settle:g}",
        ]


Scenario = Fanout | Idle
KEYS = ("moderate", "mutation-heavy", "fan-out-heavy", SWEEP, "idle", "creates")
_FANOUT_SPEC = re.compile(r"^(\d+)x(\d+)@(\d+(?:\.\d+)?)$")
_SHAPE_SPEC = re.compile(r"^(\d+)x(\d+)$")


def fanout_spec(text: str) -> tuple[int, int, float]:
    """`1000x2@50`: 1000 users x 2 devices at 50 creates/s."""
    match = _FANOUT_SPEC.match(text.replace(" ", ""))
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected USERSxDEVICES@RATE, e.g. 1000x2@50")
    return int(match.group(1)), int(match.group(2)), float(match.group(3))


def shape_spec(text: str) -> tuple[int, int, float]:
    """`1000x2`: 1000 users x 2 devices (the rate comes from elsewhere)."""
    match = _SHAPE_SPEC.match(text.replace(" ", ""))
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected USERSxDEVICES, e.g. 1000x2")
    return int(match.group(1)), int(match.group(2)), 0.0


def rates(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive rates, e.g. 300,600,900,1200")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenarios (defaults in brackets; --quick shrinks them all)")
    group.add_argument("--quick", action="store_true", help="a smoke run: ~50 sockets, 3 s per scenario")
    group.add_argument("--only", metavar="KEYS", help=f"comma-separated subset of: {', '.join(KEYS)}")
    group.add_argument("--duration", type=float, metavar="S", help="seconds of sending per fan-out scenario [20]")
    group.add_argument("--moderate", type=fanout_spec, metavar="UxD@R", help="the moderate-rate scenario [1000x2@50]")
    group.add_argument(
        "--mutation-heavy", type=fanout_spec, metavar="UxD@R", help="the mutation-heavy scenario [1000x2@300]"
    )
    group.add_argument(
        "--fan-out-heavy", type=fanout_spec, metavar="UxD@R", help="the fan-out-heavy scenario [200x10@200]"
    )
    group.add_argument(
        "--sweep", type=rates, metavar="R,R,...", help="creates/s of the saturation sweep [300,600,900,1200]"
    )
    group.add_argument("--sweep-shape", type=shape_spec, metavar="UxD", help="users x devices of the sweep [1000x2]")
    group.add_argument("--idle-sockets", type=int, metavar="N", help="sockets at the last idle step [4000]")
    group.add_argument("--idle-step", type=int, metavar="N", help="sockets added per idle step [1000]")
    group.add_argument(
        "--creates", type=fanout_spec, metavar="UxD@R", help="createNotification alone, 0 devices [1000x0@500]"
    )


def build(args: argparse.Namespace) -> list[Scenario]:
    """The scenarios to run, in order: the defaults (or the quick ones) with the flags applied."""
    quick = bool(args.quick)
    duration = args.duration or (3.0 if quick else 20.0)

    def fanout(key: str, title: str, spec: tuple[int, int, float] | None, default: tuple[int, int, float]) -> Fanout:
        users, devices, rate = spec or default
        return Fanout(key, title, users, devices, rate, duration)

    scenarios: list[Scenario] = [
        fanout("moderate", "moderate rate", args.moderate, (25, 2, 20) if quick else (1000, 2, 50)),
        fanout("mutation-heavy", "mutation-heavy", args.mutation_heavy, (25, 2, 100) if quick else (1000, 2, 300)),
        fanout("fan-out-heavy", "fan-out-heavy", args.fan_out_heavy, (5, 10, 50) if quick else (200, 10, 200)),
    ]
    shape = fanout("sweep", "saturation", args.sweep_shape, (25, 2, 0) if quick else (1000, 2, 0))
    for rate in args.sweep or ([50, 150] if quick else [300, 600, 900, 1200]):
        scenarios.append(replace(shape, rate=rate, group=SWEEP))
    scenarios.append(
        Idle(
            "idle",
            "idle memory",
            sockets=args.idle_sockets or (100 if quick else 4000),
            step=args.idle_step or (50 if quick else 1000),
            devices=2,
            settle=1.0 if quick else 3.0,
        )
    )
    creates = fanout("creates", "createNotification alone", args.creates, (25, 0, 100) if quick else (1000, 0, 500))
    scenarios.append(replace(creates, devices=0))
    if args.only:
        wanted = {key.strip() for key in args.only.split(",")}
        unknown = wanted - set(KEYS)
        if unknown:
            raise SystemExit(
                f"bench: --only: unknown scenario {', '.join(sorted(unknown))} (choose from {', '.join(KEYS)})"
            )
        scenarios = [scenario for scenario in scenarios if scenario.key in wanted]
    return scenarios


def max_rate(scenarios: list[Scenario]) -> float:
    return max((s.rate for s in scenarios if isinstance(s, Fanout)), default=0.0)
