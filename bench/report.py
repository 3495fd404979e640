"""A run's figures: one summary per measurement, tidings/floor ratios, the table printed at the end, the JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.machine import Machine
from bench.scenarios import Idle, Scenario

TIDINGS = "tidings"
FLOOR = "floor"


@dataclass(frozen=True, slots=True)
class Summary:
    """The table's figures for one server in one scenario (None: not measured in this kind of scenario).

    For fan-out, `offered` and `done` are deliveries per second and `cpu_us` the server's CPU per delivery; for
    createNotification alone (0 devices) they are creates per second and CPU per create, and the latencies are the
    mutation's. For idle memory, `kib_per_socket` is the least-squares slope of the server's RSS over the steps.
    """

    offered: float | None = None
    done: float | None = None
    lost: int | None = None
    duplicates: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: float | None = None
    rss_mib: float | None = None
    kib_per_socket: float | None = None
    frame_bytes: float | None = None
    valid: bool = True


RATIO_FIELDS = ("done", "p50_ms", "p99_ms", "cpu_us", "rss_mib", "kib_per_socket", "frame_bytes")


def summarize(scenario: Scenario, result: dict[str, Any]) -> Summary:
    """The figures of one loadgen result (bench/loadgen/loadgen.mjs) for `scenario`."""
    valid = bool(result["valid"])
    if isinstance(scenario, Idle):
        points = [(p["sockets"], p["rss_kib"]) for p in result["points"]]
        slope = statistics.linear_regression(*zip(*points, strict=True)).slope if len(points) >= 2 else None
        return Summary(rss_mib=points[-1][1] / 1024, kib_per_socket=slope, valid=valid)
    rss_mib = result["server_rss_kib"] / 1024
    mutations = result["mutations"]
    if scenario.devices == 0:
        return Summary(
            offered=scenario.rate,
            done=mutations["ok_per_s"],
            lost=mutations["failed"] + mutations["unacknowledged"],
            p50_ms=mutations["latency_ms"]["p50"],
            p99_ms=mutations["latency_ms"]["p99"],
            cpu_us=result["cpu"]["server_us_per_mutation"],
            rss_mib=rss_mib,
            valid=valid,
        )
    deliveries = result["deliveries"]
    # Offered deliveries that never arrived, those of failed creates too; a delivery to the wrong user or of a message
    # never sent is as wrong as a lost one.
    unanswered = mutations["failed"] + mutations["unacknowledged"]
    lost = deliveries["lost"] + unanswered * scenario.devices + deliveries["misrouted"] + deliveries["unknown"]
    return Summary(
        offered=result["offered_deliveries_per_s"],
        done=deliveries["per_s"],
        lost=lost,
        duplicates=deliveries["duplicates"],
        p50_ms=result["latency_ms"]["p50"],
        p99_ms=result["latency_ms"]["p99"],
        cpu_us=result["cpu"]["server_us_per_delivery"],
        rss_mib=rss_mib,
        frame_bytes=deliveries["frame_bytes_mean"],
        valid=valid,
    )


def ratios(summaries: dict[str, Summary]) -> dict[str, float | None]:
    """tidings / floor for each figure both have."""
    if TIDINGS not in summaries or FLOOR not in summaries:
        return {}
    mine, floor = asdict(summaries[TIDINGS]), asdict(summaries[FLOOR])
    return {
        name: (mine[name] / floor[name] if mine[name] is not None and floor[name] else None) for name in RATIO_FIELDS
    }


@dataclass(slots=True)
class Measured:
    """One scenario's runs: the raw loadgen results, their summaries and the ratios."""

    scenario: Scenario
    results: dict[str, dict[str, Any]]
    summaries: dict[str, Summary]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.scenario.key,
            "label": self.scenario.label,
            "kind": "idle" if isinstance(self.scenario, Idle) else "fanout",
            "params": asdict(self.scenario),
            "summary": {name: asdict(summary) for name, summary in self.summaries.items()},
            "ratio_tidings_to_floor": ratios(self.summaries),
            "results": self.results,
        }


# (header, Summary field, width, format)
COLUMNS = [
    ("offered/s", "offered", 9, "{:.0f}"),
    ("done/s", "done", 9, "{:.1f}"),
    ("lost", "lost", 6, "{:d}"),
    ("dup", "duplicates", 5, "{:d}"),
    ("p50 ms", "p50_ms", 8, "{:.2f}"),
    ("p99 ms", "p99_ms", 8, "{:.2f}"),
    ("CPU µs", "cpu_us", 8, "{:.0f}"),
    ("RSS MiB", "rss_mib", 8, "{:.1f}"),
    ("KiB/sock", "kib_per_socket", 9, "{:.1f}"),
    ("frame B", "frame_bytes", 8, "{:.0f}"),
]
LABEL_WIDTH = 44
NAME_WIDTH = 15


def _cell(value: Any, width: int, form: str) -> str:
    text = "-" if value is None else form.format(value)
    if len(text) >= width and isinstance(value, float):
        text = f"{value:.0f}"  # a saturated server's latencies run to seconds
    return text.rjust(width) if len(text) < width else f" {text}"


def table(measured: list[Measured]) -> str:
    """The final table: per scenario a row per server, then the tidings/floor ratio row."""
    header = "scenario".ljust(LABEL_WIDTH) + "server".ljust(NAME_WIDTH)
    header += "".join(title.rjust(width) for title, _, width, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for entry in measured:
        label = entry.scenario.label
        for name, summary in entry.summaries.items():
            figures = asdict(summary)
            row = label.ljust(LABEL_WIDTH)[:LABEL_WIDTH] + (name + ("" if summary.valid else " (!)")).ljust(NAME_WIDTH)
            row += "".join(_cell(figures[field], width, form) for _, field, width, form in COLUMNS)
            lines.append(row)
            label = ""
        ratio = ratios(entry.summaries)
        if ratio:
            row = "".ljust(LABEL_WIDTH) + "tidings/floor".ljust(NAME_WIDTH)
            row += "".join(_cell(ratio.get(field), width, "{:.2f}") for _, field, width, _ in COLUMNS)
            lines.append(row)
    lines += [
        "",
        "offered/s, done/s: deliveries per second (createNotification alone: creates per second), done/s over the span",
        "the deliveries took. lost: offered deliveries missing after the drain (unanswered creates' too, misrouted).",
        "p50/p99: from the send to each device's receipt (createNotification alone: the mutation's round trip).",
        "CPU µs: the server process's CPU per delivery (per create). KiB/sock: slope of the server's RSS over the idle",
        "steps. frame B: mean size of a next frame. tidings/floor: the ratio of each figure.",
    ]
    invalid = [
        f"  {entry.scenario.label} / {name}: {'; '.join(entry.results[name]['invalid_reasons'])}"
        for entry in measured
        for name, summary in entry.summaries.items()
        if not summary.valid
    ]
    if invalid:
        lines += ["", "(!) invalid runs: their numbers do not measure the server alone", *invalid]
    return "\n".join(lines)


def write_json(
    path: Path, *, machine: Machine, settings: dict[str, Any], measured: list[Measured], failures: list[str]
) -> None:
    document = {
        "machine": machine.as_json(),
        "settings": settings,
        "scenarios": [entry.as_json() for entry in measured],
        "failures": failures,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
