"""Redis Cluster backend: sharded Pub/Sub (SPUBLISH / SSUBSCRIBE), one subscriber connection per primary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import Message

logger = logging.getLogger(__name__)

# Shard readers wait when the Broadcast reader falls this far behind; it never blocks, so the wait is short.
MAX_PENDING_MESSAGES = 10_000
# redis-py wraps socket errors in these; OSError covers anything that slips through while (re)connecting.
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
# What makes a recovery attempt fail and be retried: a node unreachable, the topology unreadable, an error reply.
RECOVERY_ERRORS = (RedisError, RedisClusterException, OSError)
DEFAULT_PORT = 6379
# Connections redis-py's cluster client may hold per node. Past it, it raises MaxConnectionsError at once rather than
# waiting; publishes in flight are held to this many, so a burst of them waits for a connection instead of failing.
MAX_CONNECTIONS_PER_NODE = 100


class ClusterAddress(NamedTuple):
    """What a `redis-cluster://` URL names: the startup nodes and the credentials for every node."""

    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None


def parse_cluster_url(url: str) -> ClusterAddress:
    """Read `redis-cluster://[user:password@]host:port[,host:port...]`; errors never echo the URL (nor its password)."""
    parts = urlsplit(url)
    if parts.scheme != "redis-cluster":
        raise ValueError("a Redis Cluster URL starts with redis-cluster://")
    if parts.query or parts.path.strip("/") not in ("", "0"):
        raise ValueError("a redis-cluster:// URL takes no database number and no query options")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = [_parse_host(host) for host in hosts.split(",")]
    return ClusterAddress(nodes, unquote(username) or None, unquote(password) or None)


def _parse_host(text: str) -> tuple[str, int]:
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("a redis-cluster:// URL lists nodes as host:port, separated by commas")
    return host, int(port)


class SubscriptionEnded(RedisError):
    """Redis ended a shard subscription on its own: the channel's slot moved to another node."""


@dataclass(eq=False)
class _Shard:
    """The subscriber connection to one primary, read by its own task; discarded as a whole on any trouble."""

    name: str
    pubsub: PubSub
    pool: ConnectionPool
    # Orders SSUBSCRIBE/SUNSUBSCRIBE writes with closing, so nothing is sent on a connection being closed.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    channels: set[str] = field(default_factory=set)  # routed here: SSUBSCRIBE sent, no SUNSUBSCRIBE since
    confirming: Counter[str] = field(default_factory=Counter)  # SSUBSCRIBE replies still to be read
    leaving: Counter[str] = field(default_factory=Counter)  # SUNSUBSCRIBE replies still to be read
    lost: bool = False
    reader: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Route:
    """A channel Broadcast wants: the shard its SSUBSCRIBE went to (None until routed) and its confirmation."""

    confirmed: asyncio.Future[None]
    shard: _Shard | None = None


class RedisClusterBackend:
    """Fan-out across processes through Redis Cluster sharded Pub/Sub.

    Each channel lives on the primary that owns its hash slot, so a message only crosses that shard. One `RedisCluster`
    client publishes (following MOVED like any keyed command) and keeps the slot map. Subscriptions use our own
    connection per primary, not redis-py's `ClusterPubSub`: that one polls its nodes in turn, reconnects and
    resubscribes silently after a loss, and re-routes a moved channel only when a later command happens to hit MOVED,
    in a background task, with the messages published meanwhile gone and nothing to say so.

    Here any trouble on a shard connection (lost connection, an error reply such as MOVED, Redis ending a subscription
    because its slot moved) discards that connection. A single recovery task then refreshes the slot map, connects
    to every primary, subscribes each wanted channel on its owner, and once every owner confirmed, `next_message`
    returns None (the catch-up marker). Shards that stayed up keep delivering meanwhile.
    """

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 2.0,
        confirm_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        reconnect_delay: float = 0.1,
        reconnect_delay_max: float = 5.0,
    ) -> None:
        self._address = parse_cluster_url(url)
        self._socket_timeout = socket_timeout
        self._confirm_timeout = confirm_timeout
        self._publish_timeout = publish_timeout
        self._publishing = asyncio.Semaphore(MAX_CONNECTIONS_PER_NODE)
        self._reconnect_delay = reconnect_delay
        self._reconnect_delay_max = reconnect_delay_max
        self._cluster: RedisCluster | None = None  # None while disconnected
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()  # replaced on connect()
        self._shards: dict[str, _Shard] = {}  # live subscriber connections, by node name
        self._routes: dict[str, _Route] = {}  # the channels Broadcast wants, whatever the connections' state
        self._readers: set[asyncio.Task[None]] = set()  # shard readers, including those still closing
        self._recovery: asyncio.Task[None] | None = None
        self._dirty = False  # something broke since the recovery last looked
        self._interrupted: asyncio.Future[None] | None = None  # wakes a recovery waiting for confirmations
        self._healthy = False
        self._lost_at = 0.0
        self._lost_nodes: set[str] = set()  # nodes whose loss was logged during the current outage
        self._losses = 0  # shard connections discarded so far: a recovery pass that saw one backs off

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def connect(self) -> None:
        address = self._address
        self._inbox = asyncio.Queue(maxsize=MAX_PENDING_MESSAGES)
        self._cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            # One more attempt after a connection error, on a refreshed slot map: after a node restart its pooled
            # connections are stale. publish() bounds the whole call anyway.
            retry=Retry(NoBackoff(), 1),
            max_connections=MAX_CONNECTIONS_PER_NODE,
        )
        try:
            await self._cluster.initialize()
            for node in self._cluster.get_primaries():
                self._shards[node.name] = await self._open_shard(node)
        except BaseException:
            await self.disconnect()
            raise
        self._healthy = True

    async def disconnect(self) -> None:
        self._healthy = False
        cluster, self._cluster = self._cluster, None
        recovery, self._recovery = self._recovery, None
        if recovery is not None:
            recovery.cancel()
            await asyncio.wait([recovery])
        for route in self._routes.values():
            if not route.confirmed.done():
                route.confirmed.set_exception(RedisConnectionError("broadcast: disconnected from Redis Cluster"))
                route.confirmed.exception()  # only a subscribe() still waiting reads it: no "never retrieved" log
        self._routes.clear()
        for shard in self._shards.values():
            shard.lost = True
        self._shards.clear()
        readers = set(self._readers)
        for reader in readers:
            reader.cancel()
        if readers:
            await asyncio.wait(readers)
        if cluster is not None:
            await cluster.aclose()
        self._lost_nodes.clear()

    async def subscribe(self, channel: str) -> None:
        if self._cluster is None:
            raise RuntimeError("RedisClusterBackend.connect() was not called")
        route = self._routes[channel] = _Route(asyncio.get_running_loop().create_future())
        try:
            async with asyncio.timeout(self._confirm_timeout):
                # While its owner is unreachable, the recovery subscribes it along with every other orphaned channel.
                await self._route(channel, route)
                # Shielded: the recovery may be waiting for the same confirmation.
                await asyncio.shield(route.confirmed)
        except TimeoutError:
            await self.unsubscribe(channel)
            raise TimeoutError(
                f"broadcast: Redis Cluster did not confirm the subscription to {channel!r} "
                f"within {self._confirm_timeout}s"
            ) from None
        except BaseException:
            await self.unsubscribe(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        route = self._routes.pop(channel, None)
        if route is None:
            return
        if not route.confirmed.done():
            route.confirmed.cancel()
        shard = route.shard
        if shard is None:
            return
        async with shard.lock:
            if shard.lost:
                return  # its connection is closed: nothing to undo
            shard.channels.discard(channel)
            shard.leaving[channel] += 1
            try:
                await shard.pubsub.sunsubscribe(channel)
            except CONNECTION_ERRORS as error:
                self._lose(shard, error)

    async def publish(self, channel: str, message: bytes) -> None:
        if self._cluster is None:
            raise RuntimeError("RedisClusterBackend.connect() was not called")
        try:
            async with asyncio.timeout(self._publish_timeout), self._publishing:
                await self._cluster.spublish(channel, message)
        except TimeoutError:
            raise TimeoutError(f"broadcast: SPUBLISH did not complete within {self._publish_timeout}s") from None

    async def next_message(self) -> Message | None:
        return await self._inbox.get()

    async def _open_shard(self, node: ClusterNode) -> _Shard:
        """Connect a subscriber to one primary and start reading it."""
        # Its own pool with the node's settings (address, credentials, timeouts): a refresh of the slot map marks the
        # cluster's pooled connections for reconnection, which must never happen under a subscriber. No retry inside
        # redis-py either: a silently retried read would hide the reconnect, and with it the messages lost.
        settings = {**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        pool = ConnectionPool(connection_class=node.connection_class, **settings)
        pubsub = PubSub(pool)
        try:
            # Connect eagerly: with a connection, get_message(timeout=None) waits even with zero subscriptions,
            # whereas without one it raises RuntimeError.
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await _close_quietly(pubsub, pool)
            raise
        shard = _Shard(node.name, pubsub, pool)
        shard.reader = asyncio.create_task(self._read(shard), name=f"tidings-broadcast-shard-{node.name}")
        self._readers.add(shard.reader)
        shard.reader.add_done_callback(self._readers.discard)
        return shard

    async def _read(self, shard: _Shard) -> None:
        """Read one shard until anything goes wrong, then hand its channels to the recovery and close it."""
        try:
            while True:
                response = await shard.pubsub.get_message(timeout=None)
                if response is None:
                    continue
                kind, channel = response["type"], response["channel"]
                if kind == "smessage":
                    await self._inbox.put(Message(channel.decode(), response["data"]))
                elif kind == "ssubscribe":
                    self._confirmed(shard, channel.decode())
                elif kind == "sunsubscribe":
                    self._unsubscribed(shard, channel.decode())
        except Exception as error:
            self._lose(shard, error)
        finally:
            async with shard.lock:
                await _close_quietly(shard.pubsub, shard.pool)

    def _confirmed(self, shard: _Shard, channel: str) -> None:
        # Only the reply to the latest SSUBSCRIBE on this shard confirms: an earlier one may precede a SUNSUBSCRIBE.
        if shard.confirming[channel] > 0:
            shard.confirming[channel] -= 1
        if shard.confirming[channel] == 0:
            del shard.confirming[channel]
            route = self._routes.get(channel)
            if route is not None and route.shard is shard and not route.confirmed.done():
                route.confirmed.set_result(None)

    def _unsubscribed(self, shard: _Shard, channel: str) -> None:
        if shard.leaving[channel] > 0:
            shard.leaving[channel] -= 1
            if shard.leaving[channel] == 0:
                del shard.leaving[channel]
        elif channel in shard.channels:
            # Not ours: Redis drops shard subscriptions of a slot the node no longer owns (migrated, failed over).
            raise SubscriptionEnded(f"Redis ended the subscription to {channel!r}: its slot moved")

    async def _route(self, channel: str, route: _Route) -> None:
        """Send the channel's SSUBSCRIBE to the primary owning its slot; without a connection to it, recover."""
        assert self._cluster is not None
        try:
            owner = self._cluster.get_node_from_key(channel)
        except RedisClusterException:  # the slot map has a hole: refreshing it is the recovery's job
            owner = None
        shard = self._shards.get(owner.name) if owner is not None else None
        if shard is None:
            self._need_recovery()
            return
        async with shard.lock:
            if shard.lost or self._routes.get(channel) is not route:
                return  # the recovery routes it again (or it is no longer wanted)
            if route.shard is not None:
                # Routed meanwhile by the other caller (subscribe() and the recovery both route an orphan), maybe to
                # another node on a newer slot map: a second SSUBSCRIBE there would never be undone.
                return
            route.shard = shard
            shard.channels.add(channel)
            shard.confirming[channel] += 1
            try:
                await shard.pubsub.ssubscribe(channel)
            except CONNECTION_ERRORS as error:
                self._lose(shard, error)

    def _lose(self, shard: _Shard, error: BaseException) -> None:
        """Discard a shard connection: its channels wait for the recovery, which subscribes them anew."""
        if shard.lost:
            return
        shard.lost = True
        self._losses += 1
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        loop = asyncio.get_running_loop()
        for channel in shard.channels:
            route = self._routes.get(channel)
            if route is not None and route.shard is shard:
                route.shard = None
                if route.confirmed.done():
                    route.confirmed = loop.create_future()
        if shard.reader is not None and shard.reader is not asyncio.current_task():
            shard.reader.cancel()  # it closes the connection on its way out
        if self._cluster is None:
            return  # disconnecting
        if shard.name not in self._lost_nodes:
            self._lost_nodes.add(shard.name)
            logger.warning(
                "broadcast: lost the subscriptions on Redis Cluster node %s (%s: %s); resubscribing",
                shard.name,
                type(error).__name__,
                error,
            )
        else:
            logger.debug(
                "broadcast: lost Redis Cluster node %s again (%s: %s)", shard.name, type(error).__name__, error
            )
        self._need_recovery()

    def _need_recovery(self) -> None:
        if self._cluster is None:
            return
        if self._healthy:
            self._healthy = False
            self._lost_at = asyncio.get_running_loop().time()
        self._dirty = True
        if self._interrupted is not None and not self._interrupted.done():
            self._interrupted.set_result(None)
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover(), name="tidings-broadcast-cluster-recovery")
            self._recovery.add_done_callback(_log_recovery_failure)

    async def _recover(self) -> None:
        """Reconcile until a pass leaves every channel confirmed with no connection lost meanwhile, then the marker.

        A pass that failed or lost a connection is retried after a growing delay; one that only missed a subscription
        arriving meanwhile is repeated at once.
        """
        delay = self._reconnect_delay
        try:
            while self._dirty:
                self._dirty = False
                losses = self._losses
                failed = False
                try:
                    await self._reconcile()
                except RECOVERY_ERRORS as error:
                    failed = True
                    logger.debug("broadcast: Redis Cluster recovery failed (%s); retrying in %.1fs", error, delay)
                if failed or self._losses != losses:
                    self._dirty = True
                    await asyncio.sleep(delay)
                    # Grows until recovered, so a node that accepts connections and then drops them is not hammered.
                    delay = min(delay * 2, self._reconnect_delay_max)
                elif not self._settled():
                    self._dirty = True
                else:
                    # Whatever else asked for this pass is done too. The marker comes after every confirmation: a
                    # subscriber re-reading the database on it misses nothing published later.
                    self._dirty = False
                    self._recovered()
                    await self._inbox.put(None)
        finally:
            self._recovery = None

    def _settled(self) -> bool:
        """Whether every wanted channel is confirmed on a live connection."""
        return all(
            route.shard is not None and not route.shard.lost and route.confirmed.done()
            for route in self._routes.values()
        )

    async def _reconcile(self) -> None:
        """One pass: a fresh slot map, a connection to every primary, every channel subscribed on its owner."""
        cluster = self._cluster
        assert cluster is not None
        await cluster.nodes_manager.initialize()
        primaries = {node.name: node for node in cluster.get_primaries()}
        unreachable: BaseException | None = None
        for node in primaries.values():
            # The map comes from whichever node answered first, which may not have heard of a failover yet. Then the
            # demoted primary would accept the SSUBSCRIBE (a replica serves its own shard's channels) and nothing
            # would move the subscription to the new primary later.
            try:
                role = await cluster.execute_command("ROLE", target_nodes=node)
            except CONNECTION_ERRORS as error:
                unreachable = error
                continue
            if role[0] != b"master":
                raise RedisClusterException(f"stale slot map: {node.name} is no longer a primary")
        for shard in list(self._shards.values()):
            if shard.name not in primaries:
                self._lose(shard, RedisClusterException("the node is no longer a primary"))
        for name, node in primaries.items():
            if name not in self._shards:
                try:
                    self._shards[name] = await self._open_shard(node)
                except CONNECTION_ERRORS as error:
                    unreachable = error
        for channel, route in list(self._routes.items()):
            owner = cluster.get_node_from_key(channel)
            if route.shard is not None and owner is not None and route.shard.name != owner.name:
                # Normally Redis told us already (SubscriptionEnded); this catches a move it did not announce.
                self._lose(route.shard, RedisClusterException(f"the slot of {channel!r} moved to {owner.name}"))
            if route.shard is None and self._routes.get(channel) is route:
                await self._route(channel, route)
        if unreachable is not None:
            raise unreachable
        await self._confirmations()

    async def _confirmations(self) -> None:
        """Wait until every wanted channel is confirmed, or until something breaks (the pass is then repeated)."""
        pending = {route.confirmed for route in self._routes.values() if not route.confirmed.done()}
        interrupted = self._interrupted = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._confirm_timeout):
                while pending and not self._dirty:
                    await asyncio.wait([*pending, interrupted], return_when=asyncio.FIRST_COMPLETED)
                    pending = {future for future in pending if not future.done()}
        except TimeoutError:
            raise RedisTimeoutError(
                f"{len(pending)} subscriptions not confirmed within {self._confirm_timeout}s"
            ) from None
        finally:
            self._interrupted = None

    def _recovered(self) -> None:
        self._healthy = True
        self._lost_nodes.clear()
        outage = asyncio.get_running_loop().time() - self._lost_at
        logger.info(
            "broadcast: Redis Cluster subscriptions recovered after %.1fs, %d channels on %d shards; "
            "messages sent meanwhile are lost",
            outage,
            len(self._routes),
            len(self._shards),
        )


async def _close_quietly(pubsub: PubSub, pool: ConnectionPool) -> None:
    """Close a subscriber connection that may already be broken."""
    with contextlib.suppress(*CONNECTION_ERRORS):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    with contextlib.suppress(*CONNECTION_ERRORS):
        await pool.aclose()


def _log_recovery_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        # `healthy` stays False, so /readyz reports it and the process gets restarted.
        logger.error("broadcast: the Redis Cluster recovery task failed", exc_info=error)
