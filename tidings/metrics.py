"""Prometheus metrics of one process, on a registry of its own (an app built in a test starts from zero)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """What an operator watches: live subscriptions, replays from the database, publishes, faults."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # open fds, resident memory, CPU: what a leak shows in
        tasks = Gauge("tidings_asyncio_tasks", "asyncio tasks alive in this process", registry=self.registry)
        tasks.set_function(_task_count)
        self.subscriptions = Gauge(
            "tidings_subscriptions", "notificationEvents subscriptions open in this process", registry=self.registry
        )
        self.subscribes = Counter(
            "tidings_subscribes",
            "subscribe messages started, by path: projected (the delivery fast path) or standard (graphql-core)",
            ["path"],
            registry=self.registry,
        )
        self.http_fast_path = Counter(
            "tidings_http_fast_path_answers",
            "JSON POSTs of known queries and mutations answered without the web framework (tidings.http)",
            registry=self.registry,
        )
        self.replays_in_flight = Gauge(
            "tidings_replays_in_flight", "database catch-up reads running now", registry=self.registry
        )
        self.replays_in_flight_max = Gauge(
            "tidings_replays_in_flight_max",
            "most catch-up reads ever running at once (bounded by TIDINGS_REPLAY_CONCURRENCY)",
            registry=self.registry,
        )
        self.replays = Counter("tidings_replays", "database catch-up reads", registry=self.registry)
        self.events_published = Counter(
            "tidings_events_published", "events published to the broadcast after commit", registry=self.registry
        )
        self.publish_failures = Counter(
            "tidings_publish_failures",
            "committed events whose wake-up could not be published (subscribers catch up from the database)",
            registry=self.registry,
        )
        self.rejected_wakeups = Counter(
            "tidings_rejected_wakeups",
            "broadcast messages that were not an event of the subscriber's user (undecodable, or another user's): "
            "the subscriber read the database instead",
            registry=self.registry,
        )
        self.sync_wakeups = Counter(
            "tidings_sync_wakeups", "followers the periodic sync found behind and woke", registry=self.registry
        )
        self.websocket_closes = Counter(
            "tidings_websocket_closes",
            "WebSocket closes the server initiated, by close code (1013: slow consumer, 4403: expired or refused...)",
            ["code"],
            registry=self.registry,
        )
        self.overloaded = Counter(
            "tidings_overloaded",
            "mutations answered OVERLOADED: TIDINGS_MAX_INFLIGHT_MUTATIONS writes in flight, or no pooled connection",
            registry=self.registry,
        )
        self.database_unavailable = Counter(
            "tidings_database_unavailable", "requests answered SERVICE_UNAVAILABLE", registry=self.registry
        )
        self.gc_pauses = Histogram(
            "tidings_gc_pause_seconds",
            "garbage collections by generation: every one stops deliveries for its duration",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.mutations = Counter(
            "tidings_mutations",
            "mutations by root field and outcome: ok, or the extensions.code it was answered with",
            ["mutation", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "tidings_delivery_latency_seconds",
            "from a live event's commit (its mutation's publish) to its first socket in this process, once per event "
            "and process (the wake-up is decoded once, by the first of its subscribers, which then queues it)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.replayed_events = Counter(
            "tidings_replayed_events",
            "events read back from the database by subscriptions (resume after a cursor, catch-ups)",
            registry=self.registry,
        )
        self.resyncs = Counter(
            "tidings_resyncs",
            "RESYNC events sent: a cursor whose events are gone, or of another database",
            registry=self.registry,
        )
        self.broker_reconnects = Counter(
            "tidings_broker_reconnects",
            "times the broadcast got its broker back after a loss (every subscriber then catches up)",
            registry=self.registry,
        )
        self.deliveries = 0  # events queued to sockets: an int, not a Counter, since it moves per socket
        self.registry.register(_Deliveries(self))
        self._mutation_counters: dict[tuple[str, str], Counter] = {}
        self._gc_started = 0.0
        self._replays_now = 0
        self._replays_max = 0

    def mutation_done(self, name: str, outcome: str) -> None:
        """A mutation answered: `ok`, or the code of its error."""
        counter = self._mutation_counters.get((name, outcome))
        if counter is None:
            counter = self._mutation_counters[(name, outcome)] = self.mutations.labels(mutation=name, outcome=outcome)
        counter.inc()

    def replay_started(self) -> None:
        """One catch-up read begins (`replay_finished` when it ends)."""
        self._replays_now += 1
        self.replays.inc()
        self.replays_in_flight.set(self._replays_now)
        if self._replays_now > self._replays_max:
            self._replays_max = self._replays_now
            self.replays_in_flight_max.set(self._replays_max)

    def replay_finished(self) -> None:
        self._replays_now -= 1
        self.replays_in_flight.set(self._replays_now)

    def watch_connections(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Report `read()` (connections by pool and state) as `tidings_database_connections` at every scrape."""
        self.registry.register(_Connections(read))

    def watch_gc(self) -> None:
        """Time every garbage collection of this process into `tidings_gc_pause_seconds`."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        self.gc_pauses.labels(generation=str(info["generation"])).observe(time.perf_counter() - self._gc_started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Connections(Collector):
    def __init__(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "tidings_database_connections",
            "pooled database connections, by pool (engine; statements: the PostgreSQL hot path) and state "
            "(in_use: checked out; a count that never returns to 0 when idle is a leak)",
            labels=["pool", "state"],
        )
        for (pool, state), count in self._read().items():
            family.add_metric([pool, state], count)
        yield family


class _Deliveries(Collector):
    """`tidings_deliveries_total`, read from the plain counter at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "tidings_deliveries", "events queued to sockets (one per event and socket)", value=self._metrics.deliveries
        )


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the event loop
        return 0.0
