"""Fault injection and the one way "nothing lost" is measured.

Faults come from things the tests own: a throwaway `redis-server` in a temp dir, and a TCP proxy in front of the
shared PostgreSQL that can be cut and restored. The shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from tests._client import EVENTS, WSClient, create, gql, token
from tests._server import ServerProcess, free_port
from tests._services import in_ci
from tidings.cursors import FeedCursor
from tidings.store import FeedEvent


class RedisProcess:
    """A throwaway Redis on a free port, which a test may kill and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed"
            if in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return self
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class TcpProxy:
    """Forwards a local port to a target; `cut()` refuses and resets every connection until `restore()`.

    `stall()` stops reading what the target sends (the client sees a silent server, the target a client that does
    not read) until `resume()`. `narrow_upstream` makes a stalled target fill its send buffer after some 100 KiB
    rather than megabytes (tcp_wmem's maximum): each connection to the target announces a small receive buffer and a
    small MSS (set before connecting, so they are in the SYN). The MSS matters most: Linux sizes a socket's send
    buffer from the peer's MSS times the congestion window, and loopback's MSS is 64 KiB.
    """

    def __init__(self, target_host: str, target_port: int, *, narrow_upstream: bool = False) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._narrow_upstream = narrow_upstream
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._upstreams: set[asyncio.Transport] = set()  # the connections to the target
        self._flowing = asyncio.Event()  # cleared while stalled: the target-to-client pumps wait on it
        self._flowing.set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        """The database host vanishes: new connections are refused, open ones are reset."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    def stall(self) -> None:
        """Stop reading from the target on every connection, open or new, until `resume()`."""
        self._flowing.clear()
        for upstream in self._upstreams:
            with contextlib.suppress(Exception):
                upstream.pause_reading()

    def resume(self) -> None:
        """Read from the target again and forward what it sent meanwhile."""
        for upstream in self._upstreams:
            with contextlib.suppress(Exception):
                upstream.resume_reading()
        self._flowing.set()

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self._narrow_upstream:
            return await asyncio.open_connection(*self.target)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, self.target)
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await self._connect_upstream()
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        upstream = cast("asyncio.Transport", upstream_writer.transport)  # a socket's: it reads too
        self._upstreams.add(upstream)
        if not self._flowing.is_set():
            upstream.pause_reading()
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer, gate=self._flowing)),
        ]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, gate: asyncio.Event | None = None
    ) -> None:
        try:
            while True:
                if gate is not None:
                    await gate.wait()
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            self._upstreams.discard(cast("asyncio.Transport", writer.transport))
            with contextlib.suppress(Exception):
                writer.transport.abort()


@dataclass
class Device:
    """One device of a user: subscribes with its last cursor, keeps every event it was sent, reconnects anywhere."""

    user: str
    start_sequence: int
    cursor: str
    received: list[dict[str, Any]] = field(default_factory=list)
    client: WSClient | None = None
    operation: str | None = None

    @classmethod
    async def after_list(cls, server: ServerProcess, user: str) -> Device:
        """A device that has read the list and subscribes after its feedCursor (the Apollo/urql pattern)."""
        body = await gql(
            server.graphql_url,
            "{ notifications(first: 1) { feedCursor edges { node { sequence } } } }",
            bearer=token(user),
        )
        connection = body["data"]["notifications"]
        start = connection["edges"][0]["node"]["sequence"] if connection["edges"] else 0
        device = cls(user=user, start_sequence=start, cursor=connection["feedCursor"])
        await device.connect(server.ws_url)
        return device

    async def connect(self, ws_url: str) -> None:
        self.client = await WSClient.connected(ws_url, token(self.user))
        self.operation = await self.client.subscribe(EVENTS, {"after": self.cursor})

    async def receive(self, count: int, timeout: float = 20.0) -> None:
        """Take `count` more events (bounded wait: a lost event fails here, with the audit in the message)."""
        assert self.client is not None and self.operation is not None
        for _ in range(count):
            event = await self.client.next_event(self.operation, timeout)
            self.received.append(event)
            self.cursor = event["cursor"]

    async def receive_until(self, sequence: int, timeout: float = 20.0) -> None:
        """Take events until the one at `sequence` has arrived."""
        async with asyncio.timeout(timeout):
            while not self.received or self.received[-1]["sequence"] < sequence:
                await self.receive(1, timeout)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            self.client = None


@dataclass(frozen=True)
class Expected:
    """One event as a device must be shown it: what the test's own write made at that position."""

    sequence: int
    kind: str
    user_id: str | None  # the notification's owner; None for an event without one (ALL_READ)
    notification_id: str | None
    title: str | None
    unread_count: int

    @classmethod
    def shown(cls, event: dict[str, Any]) -> Expected:
        """What a `notificationEvents` payload says, in the same terms."""
        notification = event.get("notification")
        return cls(
            sequence=event["sequence"],
            kind=event["kind"],
            user_id=notification["userId"] if notification else None,
            notification_id=notification["id"] if notification else None,
            title=notification["title"] if notification else None,
            unread_count=event["unreadCount"],
        )


class Ledger:
    """What a test itself did to each user's feed, taken from the answers to its own writes.

    The audit compares devices with this, not with the database that the server under test wrote. Positions come
    from those answers (a create's `sequence`, a mark-all's `cursor`), the unread count after each event from
    replaying the writes in feed order. A feed must be accounted for from position 1 on: a position the test cannot
    name is a position the server skipped (or one the test forgot to record).
    """

    def __init__(self) -> None:
        # user -> position -> (kind, notification id, title)
        self._writes: dict[str, dict[int, tuple[str, str | None, str | None]]] = {}

    def created(self, notification: dict[str, Any]) -> dict[str, Any]:
        """Record a createNotification answer; returns it."""
        write = ("CREATED", notification["id"], notification["title"])
        self._record(notification["userId"], notification["sequence"], write)
        return notification

    async def create(self, url: str, user: str, title: str = "hello", **fields: Any) -> dict[str, Any]:
        """createNotification through a server, recorded."""
        return self.created(await create(url, user, title, **fields))

    def event(self, event: FeedEvent) -> FeedEvent:
        """Record an event the test wrote to the store itself (a writer whose wake-up is lost)."""
        record = event.notification
        write = (event.kind.value, record.id if record else None, record.title if record else None)
        self._record(event.user_id, event.seq, write)
        return event

    def all_read(self, user: str, cursor: str) -> None:
        """Record a markAllNotificationsRead without `upTo` by the cursor it answered (its ALL_READ's position)."""
        self._record(user, FeedCursor.decode(cursor).seq, ("ALL_READ", None, None))

    def _record(self, user: str, sequence: int, write: tuple[str, str | None, str | None]) -> None:
        known = self._writes.setdefault(user, {}).setdefault(sequence, write)
        assert known == write, f"{user}: two writes were answered with position {sequence}: {known}, {write}"

    def expected(self, user: str, after: int = 0) -> list[Expected]:
        """Every event of the user's feed after position `after`, as the test made them, in feed order."""
        writes = self._writes.get(user, {})
        positions = sorted(writes)
        assert positions == list(range(1, len(positions) + 1)), f"{user}: positions are not 1..n: {positions}"
        unread: set[str] = set()
        events = []
        for sequence in positions:
            kind, notification_id, title = writes[sequence]
            if kind == "CREATED" and notification_id is not None:
                unread.add(notification_id)
            elif kind == "ALL_READ":
                unread.clear()
            else:
                raise AssertionError(f"the ledger does not follow {kind} events")
            owner = user if notification_id is not None else None
            events.append(Expected(sequence, kind, owner, notification_id, title, len(unread)))
        return [event for event in events if event.sequence > after]


@dataclass
class Audit:
    lost: int
    duplicates: int
    out_of_order: int
    unexpected: int
    wrong: list[tuple[Expected, Expected]]  # (made, shown) of events whose position holds something else

    def __str__(self) -> str:
        return (
            f"lost = {self.lost}, shown-duplicates = {self.duplicates}, "
            f"out-of-order = {self.out_of_order}, unexpected = {self.unexpected}, wrong = {len(self.wrong)}"
            + "".join(f"\n  made {made}\n  shown {shown}" for made, shown in self.wrong[:3])
        )

    @property
    def clean(self) -> bool:
        return (self.lost, self.duplicates, self.out_of_order, self.unexpected, self.wrong) == (0, 0, 0, 0, [])


def audit(device: Device, expected: Iterable[Expected]) -> Audit:
    """Compare what a device was sent with what the test made after the device's starting cursor."""
    made = {event.sequence: event for event in expected if event.sequence > device.start_sequence}
    shown = [Expected.shown(event) for event in device.received]
    sequences = [event.sequence for event in shown]
    unique = list(dict.fromkeys(sequences))  # deduplicated by position, first delivery kept
    return Audit(
        lost=len(set(made) - set(unique)),
        duplicates=len(sequences) - len(unique),
        out_of_order=sum(1 for a, b in itertools.pairwise(unique) if b <= a),
        unexpected=len(set(unique) - set(made)),
        wrong=[(made[event.sequence], event) for event in shown if made.get(event.sequence, event) != event],
    )


def assert_nothing_lost(ledger: Ledger, devices: Iterable[Device]) -> None:
    """Every device was shown exactly the events the test made after its starting cursor: each once, in feed
    order, with the kind, notification, title and unread count the test's own writes gave it."""
    for device in devices:
        result = audit(device, ledger.expected(device.user))
        assert result.clean, f"{device.user}: {result}"
