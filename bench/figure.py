"""The PNG the README shows: latency CDFs, delivered/s against offered load, memory per socket."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import ScalarFormatter

from bench.machine import Machine
from bench.report import FLOOR, TIDINGS, Measured
from bench.scenarios import SWEEP, Fanout, Idle

LINESTYLE = {TIDINGS: "-", FLOOR: "--"}
MARKER = {TIDINGS: "o", FLOOR: "s"}


def _empty(axes: Axes) -> None:
    if not axes.lines:
        axes.text(0.5, 0.5, "not measured in this run", transform=axes.transAxes, ha="center", color="grey")
    else:
        axes.legend(fontsize=8)


def draw(path: Path, *, machine: Machine, measured: list[Measured]) -> None:
    """Writes the figure of `measured` to `path`."""
    figure, (cdf, sweep, idle) = plt.subplots(1, 3, figsize=(18, 5.6))
    _latency_cdfs(cdf, measured)
    _sweep(sweep, measured)
    _idle(idle, measured)
    for axes in (cdf, sweep, idle):
        _empty(axes)
    figure.suptitle(
        f"tidings bench, {machine.date}: {machine.describe()} ({machine.host}; tidings {machine.tidings_commit})\n"
        "tidings (solid) against the floor (dashed): raw WebSocket fan-out of the same bytes from Python, same machine",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency_cdfs(axes: Axes, measured: list[Measured]) -> None:
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for entry in measured:
        scenario = entry.scenario
        if not isinstance(scenario, Fanout) or scenario.devices == 0 or scenario.group == SWEEP:
            continue
        colour = next(colours)
        for name, result in entry.results.items():
            points = result["latency_ms"]["cdf"]
            if points:
                label = f"{scenario.label} ({name}{'' if result['valid'] else ', invalid'})"
                axes.plot(*zip(*points, strict=True), color=colour, linestyle=LINESTYLE[name], label=label)
    axes.set_xscale("log")
    axes.set_xlabel("latency, send to each device's receipt (ms, log scale)")
    axes.set_ylabel("fraction of deliveries")
    axes.set_title("latency CDF")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.grid(True, which="both", alpha=0.3)


def _sweep(axes: Axes, measured: list[Measured]) -> None:
    points = [entry for entry in measured if isinstance(entry.scenario, Fanout) and entry.scenario.group == SWEEP]
    axes.set_title("saturation sweep")
    top = 0.0
    for name in (TIDINGS, FLOOR):
        summaries = [e.summaries[name] for e in points if name in e.summaries]
        if not summaries:
            continue
        offered = [s.offered or 0.0 for s in summaries]
        axes.plot(
            offered, [s.done or 0.0 for s in summaries], label=name, linestyle=LINESTYLE[name], marker=MARKER[name]
        )
        for x, summary in zip(offered, summaries, strict=True):
            # p99 beside each point: where latency takes off, the server is at its limit before delivered/s bends.
            text = f"p99 {summary.p99_ms:.0f} ms" if summary.p99_ms is not None else ""
            offset = (6, -12) if name == TIDINGS else (-6, 6)
            alignment = "left" if name == TIDINGS else "right"
            axes.annotate(
                text, (x, summary.done or 0.0), xytext=offset, textcoords="offset points", fontsize=7, ha=alignment
            )
        top = max(top, *offered)
    if top:
        axes.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle=":", label="offered")
        shape = points[0].scenario
        assert isinstance(shape, Fanout)
        axes.set_title(f"saturation sweep, {shape.users} users x {shape.devices} devices")
    axes.set_xlabel("offered deliveries/s")
    axes.set_ylabel("delivered/s")
    axes.grid(True, alpha=0.3)


def _idle(axes: Axes, measured: list[Measured]) -> None:
    for entry in measured:
        if not isinstance(entry.scenario, Idle):
            continue
        for name, result in entry.results.items():
            xy = [(p["sockets"], p["rss_kib"] / 1024) for p in result["points"]]
            per_socket = entry.summaries[name].kib_per_socket
            label = f"{name}: {per_socket:.1f} KiB/socket" if per_socket is not None else name
            axes.plot(*zip(*xy, strict=True), label=label, linestyle=LINESTYLE[name], marker=MARKER[name])
    axes.set_xlabel("subscribed sockets (idle)")
    axes.set_ylabel("server RSS (MiB)")
    axes.set_title("memory per socket")
    axes.grid(True, alpha=0.3)
