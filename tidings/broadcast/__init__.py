"""Fan-out core: one bounded queue per local subscriber, one backend subscription per channel, shared."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .base import BroadcastBackend, Message

__all__ = ["Broadcast", "BroadcastBackend", "Message", "Subscription", "create_backend"]

logger = logging.getLogger(__name__)


def create_backend(url: str, *, reconnect_delay: float = 0.1, reconnect_delay_max: float = 5.0) -> BroadcastBackend:
    """Build the backend named by the URL scheme, importing only that backend's client library.

    The reconnect delays (seconds) bound the backoff of a Redis backend after it lost its connection.
    """
    backoff = {"reconnect_delay": reconnect_delay, "reconnect_delay_max": reconnect_delay_max}
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend()
    if scheme in ("redis", "rediss"):
        from .redis import RedisBackend

        return RedisBackend(url, **backoff)
    if scheme == "redis-cluster":
        from .cluster import RedisClusterBackend

        return RedisClusterBackend(url, **backoff)
    # Name only the scheme: the rest of the URL may hold a password.
    raise ValueError(
        f"unsupported broadcast URL scheme {scheme!r}: expected memory://, redis://, rediss:// or redis-cluster://"
    )


class Subscription:
    """One local subscriber of a channel: a bounded queue of messages, and None as the catch-up marker.

    Held by every open subscription for its whole life, so it is kept small: a list rather than a deque (nearly
    always empty, and short when not), and one future while its reader waits rather than an `asyncio.Event`.
    """

    __slots__ = ("_catch_up_pending", "_items", "_queue_size", "_taker", "_waiter", "channel")

    def __init__(self, channel: str, *, queue_size: int) -> None:
        self.channel = channel
        self._queue_size = queue_size
        self._items: list[bytes | None] = []
        self._catch_up_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self._taker: Callable[[bytes], bool] | None = None

    def take_while_waiting(self, taker: Callable[[bytes], bool] | None) -> None:
        """Offer each message first to `taker`, called by the reader, whenever this subscription's own reader waits
        in `get` with nothing queued; True: taken, it is never queued. The reader is then not woken at all, which
        is the cheapest delivery there is. False: queued as usual, and so is everything after it until the reader
        waits again, so that the order of messages is the order in which they are taken or read.
        """
        self._taker = taker

    async def get(self) -> bytes | None:
        """Wait for the next message; None means some may have been lost, so re-read the database."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.pop(0)
        if item is None:
            self._catch_up_pending = False
        return item

    def request_catch_up(self) -> None:
        """Queue the catch-up marker unless one is already waiting to be read."""
        # One pending marker is enough: the database is re-read when it is taken, which is after this call.
        if not self._catch_up_pending:
            self._catch_up_pending = True
            self._items.append(None)
            self._wake()

    def qsize(self) -> int:
        """How many messages and markers are waiting to be read (at most queue_size + 1)."""
        return len(self._items)

    def _deliver(self, message: bytes) -> None:
        """Queue a message without ever waiting: a slow subscriber must not hold up the reader."""
        taker, waiter = self._taker, self._waiter
        if taker is not None and waiter is not None and not waiter.done() and not self._items and taker(message):
            return
        if len(self._items) - self._catch_up_pending >= self._queue_size:
            # Overflow: the re-read after the marker covers what is queued and this message, so drop them all.
            self._items.clear()
            self._catch_up_pending = False
            self.request_catch_up()
            return
        self._items.append(message)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


@dataclass(eq=False)
class _Channel:
    """Local state of one channel: its subscribers and the lock that orders its backend (un)subscriptions."""

    subscribers: set[Subscription] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribed: bool = False  # whether the backend holds a subscription for it
    # Tasks inside subscribe() for this channel and backend calls still running for it: the entry, and with it the
    # lock, lives until none are left, so a backend call never overlaps another one on the same channel.
    users: int = 0


class Broadcast:
    """Publish to channels and subscribe to them across processes, over the backend named by `url`."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 1000,
        channel_prefix: str = "tidings",
        reconnect_delay: float = 0.1,
        reconnect_delay_max: float = 5.0,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._backend = create_backend(url, reconnect_delay=reconnect_delay, reconnect_delay_max=reconnect_delay_max)
        self._restart_delay_min = reconnect_delay
        self._restart_delay_max = reconnect_delay_max
        self._reader_failing = False  # between a reader failure and its restart
        self._queue_size = queue_size
        self._prefix = f"{channel_prefix}:"
        self._channels: dict[str, _Channel] = {}
        self._reader: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()  # backend calls whose caller was cancelled, until done
        self._on_reconnect = on_reconnect  # called each time the backend is back after a loss

    @property
    def healthy(self) -> bool:
        """Whether messages are flowing: the backend is connected and the reader is running."""
        return (
            self._reader is not None and not self._reader.done() and not self._reader_failing and self._backend.healthy
        )

    async def connect(self) -> None:
        """Connect the backend and start the reader task."""
        if self._reader is not None:
            return
        await self._backend.connect()
        self._reader = asyncio.create_task(self._supervise_reader(), name="tidings-broadcast-reader")
        self._reader.add_done_callback(_log_reader_failure)

    async def disconnect(self) -> None:
        """Stop the reader task and close the backend; calling it again is harmless."""
        # Closing the backend ends every subscription anyway; a backend call left running would wait for a reader.
        settling = set(self._settling)
        for task in settling:
            task.cancel()
        if settling:
            await asyncio.wait(settling)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:
                pass  # already logged by _log_reader_failure
        await self._backend.disconnect()

    async def publish(self, channel: str, message: bytes) -> None:
        """Send `message` to every subscriber of `channel` in every process."""
        self._check_connected()
        await self._backend.publish(self._prefix + channel, message)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscription]:
        """Receive what is published on `channel` from the moment the context is entered until it is left."""
        return self._subscribe(channel)

    def local_channels(self) -> frozenset[str]:
        """Channels with at least one subscriber in this process."""
        return frozenset(name for name, entry in self._channels.items() if entry.subscribers)

    @asynccontextmanager
    async def _subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        self._check_connected()
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
        entry.users += 1
        subscription = Subscription(channel, queue_size=self._queue_size)
        # Registered before the backend confirms, so nothing published after the confirmation is missed.
        entry.subscribers.add(subscription)
        try:
            await self._settle(channel, entry)
            # On Python 3.11, asyncio.wait_for (used by redis-py to send) can return instead of raising when a
            # cancellation arrives as it completes; the request is still pending on the task. Honour it here, or a
            # client's `complete` sent right after subscribing would leave the subscription running.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            yield subscription
        finally:
            # Leave the local set first, without waiting, so a cancelled exit still stops deliveries.
            entry.subscribers.discard(subscription)
            await self._settle(channel, entry, leaving=True)

    async def _settle(self, channel: str, entry: _Channel, *, leaving: bool = False) -> None:
        """Make the backend subscribe the channel while it has local subscribers, and only then.

        The backend call runs to its end in a task of its own even when the caller is cancelled, as a closing
        WebSocket cancels its operations more than once: a second cancellation landing in an unsubscribe would
        leave the broker sending a channel nobody here wants, for as long as the process lives. The caller still
        sees its cancellation at once.
        """
        if bool(entry.subscribers) == entry.subscribed and not entry.lock.locked():
            if leaving:
                self._release(channel, entry)
            return  # the common case: nothing to ask the backend, no task
        call = asyncio.create_task(self._apply(channel, entry, leaving=leaving), name="tidings-broadcast-settle")
        try:
            await asyncio.shield(call)
        except asyncio.CancelledError:
            self._settling.add(call)
            call.add_done_callback(self._settled)
            raise

    async def _apply(self, channel: str, entry: _Channel, *, leaving: bool) -> None:
        try:
            async with entry.lock:
                # Decided under the lock: whoever waited longest sees the latest wish.
                if entry.subscribers and not entry.subscribed:
                    await self._backend.subscribe(self._prefix + channel)
                    entry.subscribed = True
                elif not entry.subscribers and entry.subscribed:
                    entry.subscribed = False
                    await self._backend.unsubscribe(self._prefix + channel)
        finally:
            if leaving:
                self._release(channel, entry)

    def _release(self, channel: str, entry: _Channel) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._channels[channel]

    def _settled(self, call: asyncio.Task[None]) -> None:
        self._settling.discard(call)
        if not call.cancelled() and (error := call.exception()) is not None:
            # Its caller has gone: a subscription nobody waits for any more that could not be made, say.
            logger.debug("broadcast: a backend call finished after its caller left (%s)", error)

    def _check_connected(self) -> None:
        if self._reader is None:
            raise RuntimeError("Broadcast.connect() was not called")

    async def _supervise_reader(self) -> None:
        """Run the reader; after an unexpected error, log it, restart it with backoff and make everyone catch up.

        Connection losses are the backend's to handle (it reconnects); this is for the rest, such as a bug in a
        delivery, which must not stop this process's live wake-ups for good while /healthz still says 200.
        """
        delay = self._restart_delay_min
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception:
                if asyncio.get_running_loop().time() - started > 10 * self._restart_delay_max:
                    delay = self._restart_delay_min  # it had been running well: a new burst starts from the minimum
                logger.exception("broadcast: the reader failed; restarting it in %.1fs (subscribers catch up)", delay)
                self._reader_failing = True
                self._request_catch_up_everywhere()  # what was lost meanwhile is read from the database
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._restart_delay_max)
                self._reader_failing = False
                self._request_catch_up_everywhere()

    def _request_catch_up_everywhere(self) -> None:
        for entry in self._channels.values():
            for subscription in entry.subscribers:
                subscription.request_catch_up()

    async def _read(self) -> None:
        prefix_length = len(self._prefix)
        while True:
            message = await self._backend.next_message()
            if message is None:
                if self._on_reconnect is not None:
                    self._on_reconnect()
                self._request_catch_up_everywhere()
                continue
            target = self._channels.get(message.channel[prefix_length:])
            if target is not None:
                for subscription in target.subscribers:
                    subscription._deliver(message.data)


def _log_reader_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # Only what the supervisor itself could not handle: `healthy` turns False and /readyz reports it.
        logger.error("broadcast: the reader task failed; no more messages will be received", exc_info=error)
