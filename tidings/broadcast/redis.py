"""Redis Pub/Sub backend: one client for PUBLISH, one PubSub connection for SUBSCRIBE, reconnecting on loss."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import Message

logger = logging.getLogger(__name__)

# redis-py wraps socket errors in these; OSError covers anything that slips through while (re)connecting.
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisBackend:
    """Fan-out across processes through Redis Pub/Sub.

    The single reader (`next_message`) owns the PubSub connection's inbound side: it resolves subscribe confirmations,
    and on a lost connection it reconnects with capped exponential backoff, resubscribes every wanted channel, and
    returns None once Redis has confirmed them all (messages published during the outage are gone).
    """

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 2.0,
        confirm_timeout: float = 5.0,
        reconnect_delay: float = 0.1,
        reconnect_delay_max: float = 5.0,
    ) -> None:
        self._url = url
        self._socket_timeout = socket_timeout
        self._confirm_timeout = confirm_timeout
        self._reconnect_delay = reconnect_delay
        self._reconnect_delay_max = reconnect_delay_max
        self._delay = reconnect_delay  # the next wait between failed reconnection attempts
        # PUBLISH goes on one connection of its own, outside redis-py's pool and retry wrappers (they cost more CPU
        # than the command): one command at a time, each bounded by socket_timeout (the lock wait included).
        self._publishing: AbstractConnection | None = None
        self._publish_lock = asyncio.Lock()
        self._subscriber: Redis | None = None
        # None while disconnected: the reader is reconnecting (or connect() was not called).
        self._pubsub: PubSub | None = None
        # The channels Broadcast wants, whatever the connection's state: what a reconnect resubscribes.
        self._channels: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        # While recovering: resubscribed channels whose confirmation has not been read yet.
        self._resubscribing: set[str] | None = None
        self._healthy = False
        self._lost_at = 0.0

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def connect(self) -> None:
        timeouts: dict[str, Any] = {
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._socket_timeout,
        }
        # No socket timeout on the connection itself: `publish` bounds each command whole, without redis-py's
        # per-write task (asyncio.wait_for) that its socket timeout costs.
        self._publishing = ConnectionPool.from_url(
            self._url, socket_timeout=None, socket_connect_timeout=self._socket_timeout, retry=Retry(NoBackoff(), 0)
        ).make_connection()  # type: ignore[no-untyped-call]
        # Never a retry inside redis-py for the subscriber: a silently retried read would hide the reconnect, and with
        # it the messages lost. Its blocking reads ignore socket_timeout; (re)connecting and SUBSCRIBE honour it.
        self._subscriber = Redis.from_url(self._url, retry=Retry(NoBackoff(), 0), **timeouts)
        try:
            self._pubsub = await self._open_pubsub()
        except CONNECTION_ERRORS as error:
            # Start as after a loss at run time: unhealthy (/readyz 503), creates still written and synced to open
            # sockets, and the reader connects with backoff, then catches every subscriber up.
            self._lost_at = asyncio.get_running_loop().time()
            logger.warning(
                "broadcast: cannot reach Redis at TIDINGS_BROADCAST_URL (%s); serving without live wake-ups (/readyz "
                "503) until it can be reached",
                error,
            )
            return
        except BaseException:
            await self.disconnect()
            raise
        self._healthy = True

    async def disconnect(self) -> None:
        self._healthy = False
        self._resubscribing = None
        pubsub, self._pubsub = self._pubsub, None
        clients = [client for client in (self._subscriber,) if client is not None]
        publishing, self._publishing = self._publishing, None
        self._subscriber = None
        if publishing is not None:
            await publishing.disconnect(nowait=True)
        for future in self._confirmations.values():
            if not future.done():
                future.set_exception(RedisConnectionError("broadcast: disconnected from Redis"))
        self._confirmations.clear()
        self._channels.clear()
        if pubsub is not None:
            await _close(pubsub)
        for client in clients:
            await client.aclose()

    async def subscribe(self, channel: str) -> None:
        if self._subscriber is None:
            raise RuntimeError("RedisBackend.connect() was not called")
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = future
        self._channels.add(channel)
        try:
            async with asyncio.timeout(self._confirm_timeout):
                # While disconnected, the reconnect subscribes every channel in self._channels, this one included.
                if self._pubsub is not None:
                    try:
                        await self._pubsub.subscribe(channel)
                    except CONNECTION_ERRORS:
                        logger.debug("broadcast: SUBSCRIBE %s failed; waiting for the reconnect", channel)
                await future
        except TimeoutError:
            await self.unsubscribe(channel)
            raise TimeoutError(
                f"broadcast: Redis did not confirm the subscription to {channel!r} within {self._confirm_timeout}s"
            ) from None
        except BaseException:
            await self.unsubscribe(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        future = self._confirmations.pop(channel, None)
        if future is not None:
            future.cancel()
        if self._resubscribing is not None:
            self._resubscribing.discard(channel)
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except CONNECTION_ERRORS:
                # The reader notices the loss too; the new connection will not resubscribe this channel.
                logger.debug("broadcast: UNSUBSCRIBE %s failed on a lost connection", channel)

    async def publish(self, channel: str, message: bytes) -> None:
        """PUBLISH, waiting for Redis to answer; tried once more on a broken connection (after a Redis restart the
        connection is stale), within socket_timeout in all."""
        connection = self._publishing
        if connection is None:
            raise RuntimeError("RedisBackend.connect() was not called")
        command = connection.pack_command("PUBLISH", channel, message)
        async with asyncio.timeout(self._socket_timeout), self._publish_lock:
            for retry in (False, True):
                try:
                    await connection.send_packed_command(command, check_health=False)
                    await connection.read_response()
                    return
                except RedisConnectionError:
                    await connection.disconnect(nowait=True)
                    if retry:
                        raise
                except BaseException:
                    # Cut short mid-command (the timeout, a cancellation): its answer would be read as the next one's.
                    await connection.disconnect(nowait=True)
                    raise

    async def next_message(self) -> Message | None:
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                await self._reconnect()
                continue
            if self._resubscribing is not None and not self._resubscribing:
                self._resubscribing = None
                self._recovered()
                return None
            try:
                response = await pubsub.get_message(timeout=None)
            except CONNECTION_ERRORS as error:
                await self._lose_connection(error)
                continue
            if response is None:
                continue
            if response["type"] == "message":
                return Message(response["channel"].decode(), response["data"])
            if response["type"] == "subscribe":
                self._confirmed(response["channel"].decode())

    def _confirmed(self, channel: str) -> None:
        future = self._confirmations.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(None)
        if self._resubscribing is not None:
            self._resubscribing.discard(channel)

    async def _open_pubsub(self) -> PubSub:
        assert self._subscriber is not None
        pubsub = self._subscriber.pubsub()
        try:
            # Connect eagerly: with a connection, get_message(timeout=None) waits even with zero subscriptions,
            # whereas without one it raises RuntimeError (and listen() returns at once when nothing is subscribed).
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await _close(pubsub)
            raise
        return pubsub

    async def _lose_connection(self, error: BaseException) -> None:
        if self._healthy:
            self._lost_at = asyncio.get_running_loop().time()
            logger.warning("broadcast: lost connection to Redis (%s); reconnecting", error)
        self._healthy = False
        self._resubscribing = None
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # redis-py may already have reconnected and resubscribed this PubSub on its own: close it regardless.
            await _close(pubsub)

    async def _reconnect(self) -> None:
        """Open a new PubSub connection and resubscribe every wanted channel, backing off between failures."""
        while True:
            try:
                pubsub = self._pubsub = await self._open_pubsub()
                # Right after the new connection is published: a subscribe() from now on sends its own SUBSCRIBE.
                self._resubscribing = set(self._channels)
                if self._resubscribing:
                    await pubsub.subscribe(*self._resubscribing)
                return
            except CONNECTION_ERRORS as error:
                await self._lose_connection(error)
                logger.debug("broadcast: reconnecting to Redis failed (%s); retrying in %.1fs", error, self._delay)
            await asyncio.sleep(self._delay)
            # Reset only once recovered, so a server that accepts connections and then drops them is not hammered.
            self._delay = min(self._delay * 2, self._reconnect_delay_max)

    def _recovered(self) -> None:
        self._healthy = True
        self._delay = self._reconnect_delay
        outage = asyncio.get_running_loop().time() - self._lost_at
        logger.info(
            "broadcast: reconnected to Redis after %.1fs, resubscribed %d channels; messages sent meanwhile are lost",
            outage,
            len(self._channels),
        )


async def _close(pubsub: PubSub) -> None:
    """Close a PubSub whose connection may already be broken."""
    with contextlib.suppress(*CONNECTION_ERRORS):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
