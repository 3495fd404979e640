"""A throwaway Redis Cluster: three masters from the redis-server binary on free loopback ports, once per session.

Test modules load this as a plugin (`pytest_plugins = ["tests._cluster"]`), so they share one cluster; they import
from it only for annotations (a module imported before pytest loads it as a plugin escapes assertion rewriting).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tests._server import free_port
from tests._services import in_ci

# Bound on starting the cluster or one node: a broken setup fails the session instead of hanging it.
START_TIMEOUT = 30.0
# How long the other nodes wait before declaring a silent node failed. Short, so a test that stops a node sees the
# cluster settle quickly; long enough that a loaded two-core machine does not fail nodes spuriously.
NODE_TIMEOUT_MS = 3000


class LocalCluster:
    """Redis Cluster masters in a temp dir; a test may stop and restart a node (named by its port), or add a replica
    and fail over to it."""

    def __init__(self, server: str, cli: str, directory: Path, *, masters: int = 3) -> None:
        self._server = server
        self._cli = cli
        self._directory = directory
        self.ports = [free_port() for _ in range(masters)]
        # Redis 7 lets the cluster bus listen on any port (otherwise port + 10000, which may be taken or too high).
        self._bus_ports = dict(zip(self.ports, (free_port() for _ in range(masters)), strict=True))
        self.replicas: list[int] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The broadcast URL naming every node, as an operator would write it."""
        return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        """Start every node, join them into one cluster owning all slots, and wait until it serves."""
        for port in self.ports:
            self.start_node(port)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        self._redis_cli("--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes")
        self.wait_until_ok()

    def start_node(self, port: int) -> None:
        """(Re)start one node and wait until it answers; its nodes.conf keeps its identity and slots."""
        directory = self._directory / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        options = {
            "port": port,
            "bind": "127.0.0.1",
            "dir": directory,
            "save": "",
            "appendonly": "no",
            "cluster-enabled": "yes",
            "cluster-port": self._bus_ports[port],
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": NODE_TIMEOUT_MS,
            "repl-diskless-sync-delay": 0,  # a new replica syncs at once instead of after 5 s
            "logfile": "redis.log",
        }
        command = [self._server]
        for name, value in options.items():
            command += [f"--{name}", str(value)]
        self._processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(lambda: self._ping(port), f"node {port} to accept connections")

    def add_replica(self, master: int) -> int:
        """Start a node, make it a replica of `master` and wait until it has synced; returns its port."""
        port = free_port()
        self._bus_ports[port] = free_port()
        self.start_node(port)
        self.replicas.append(port)
        master_id = self._node_id(master)
        self._redis_cli(
            "--cluster",
            "add-node",
            f"127.0.0.1:{port}",
            f"127.0.0.1:{master}",
            "--cluster-slave",
            "--cluster-master-id",
            master_id,
        )
        self._wait(lambda: self._info(port, "replication").get("master_link_status") == "up", f"{port} to sync")
        # Until every node sees it as a replica over the cluster bus, a failover would time out or be refused votes.
        self._wait(
            lambda: all(self._sees_replica(node, port, master_id) for node in self._running()),
            f"every node to know {port} as a replica",
        )
        self.wait_until_ok()
        return port

    def fail_over(self, replica: int, *, takeover: bool = False) -> None:
        """Promote a replica and wait until every node knows: CLUSTER FAILOVER, coordinated with its primary as in a
        planned switchover, or with TAKEOVER (no handshake, no election) to put things back quickly afterwards."""
        command = ["CLUSTER", "FAILOVER", *(["TAKEOVER"] if takeover else [])]
        deadline = time.monotonic() + START_TIMEOUT
        while self._info(replica, "replication").get("role") != "master":
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {START_TIMEOUT}s waiting for {replica} to be promoted")
            with redis.Redis(port=replica, socket_timeout=START_TIMEOUT) as client:
                client.execute_command(*command)
            # A coordinated failover gives up after 5 s in Redis (e.g. the primary did not answer): then ask again.
            promoted_by = time.monotonic() + 6
            while time.monotonic() < promoted_by and self._info(replica, "replication").get("role") != "master":
                time.sleep(0.05)
        self._wait(
            lambda: all(self._primary_ports(port) == self._primary_ports(replica) for port in self._running()),
            "every node to agree on the primaries",
        )
        self.wait_until_ok()

    def remove_replica(self, port: int) -> None:
        """Take a replica out of the cluster: every node forgets it, then it stops."""
        self._redis_cli("--cluster", "del-node", f"127.0.0.1:{self.ports[0]}", self._node_id(port))
        self.replicas.remove(port)
        self.stop_node(port)
        self.wait_until_ok()

    def stop_node(self, port: int) -> None:
        """Stop one node (SIGTERM, as a restart would)."""
        process = self._processes.pop(port, None)
        if process is not None:
            process.terminate()
            process.wait(timeout=START_TIMEOUT)

    def restore(self) -> None:
        """Restart any stopped node and wait until the whole cluster is ok again."""
        for port in self.ports:
            if port not in self._processes:
                self.start_node(port)
        self.wait_until_ok()

    def wait_until_ok(self) -> None:
        """Wait until every node reports the cluster ok with all its nodes known."""
        for port in [*self.ports, *self.replicas]:
            self._wait(lambda port=port: self._cluster_ok(port), f"node {port} to report cluster_state:ok")

    def stop(self) -> None:
        for port in [*self.ports, *self.replicas]:
            self.stop_node(port)

    def _redis_cli(self, *args: str) -> None:
        subprocess.run([self._cli, *args], check=True, capture_output=True, timeout=START_TIMEOUT)

    def _running(self) -> list[int]:
        return [port for port in [*self.ports, *self.replicas] if port in self._processes]

    def _node_id(self, port: int) -> str:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client:
            return str(client.execute_command("CLUSTER MYID"))

    def _info(self, port: int, section: str) -> dict[str, object]:
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
                return dict(client.info(section))
        except redis.RedisError:
            return {}

    def _sees_replica(self, port: int, replica: int, master_id: str) -> bool:
        """Whether one node's CLUSTER NODES shows `replica` as a replica of `master_id`."""
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
                nodes = client.execute_command("CLUSTER NODES")  # parsed into {"host:port": {...}}
        except redis.RedisError:
            return False
        node = nodes.get(f"127.0.0.1:{replica}", {})
        return "slave" in node.get("flags", "") and node.get("master_id") == master_id

    def _primary_ports(self, port: int) -> set[int]:
        """The primaries (with slots) as one node sees them."""
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
                slots = client.execute_command("CLUSTER SLOTS")
        except redis.RedisError:
            return set()
        return {int(primary[1]) for _, _, primary, *_ in slots}

    def _ping(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _cluster_ok(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
                info = client.execute_command("CLUSTER INFO")  # parsed into a dict of strings
        except redis.RedisError:
            return False
        nodes = len(self.ports) + len(self.replicas)
        return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == nodes)

    def _wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not condition():
            for port, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server on {port} exited with {process.returncode}; see {self._directory}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {START_TIMEOUT}s waiting for {what}; see {self._directory}")
            time.sleep(0.05)


class ClusterAdmin:
    """The cluster seen from outside the code under test: who owns a channel, who subscribes where, moving slots."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        # redis-py's own slot map, independent of the backend's, to find the node that owns a channel.
        self._router = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in cluster.ports])
        self._nodes: dict[int, Redis] = {}

    async def __aenter__(self) -> ClusterAdmin:
        await self._router.initialize()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._router.aclose()
        for node in self._nodes.values():
            await node.aclose()

    def node(self, port: int) -> Redis:
        """A client of one node (primary or replica)."""
        if port not in self._nodes:
            self._nodes[port] = Redis(port=port, socket_timeout=10, socket_connect_timeout=10)
        return self._nodes[port]

    def owner(self, channel: str) -> int:
        """The port of the primary whose slots include the channel's (as of the last refresh)."""
        node = self._router.get_node_from_key(channel)
        assert node is not None
        return int(node.port)

    def names_on_every_node(self, prefix: str, per_node: int = 1) -> dict[int, list[str]]:
        """Channel names (without `prefix:`) whose prefixed channels land on each node, `per_node` of each."""
        found: dict[int, list[str]] = {port: [] for port in self.cluster.ports}
        for number in range(10_000):
            names = found[self.owner(f"{prefix}:channel-{number}")]
            if len(names) < per_node:
                names.append(f"channel-{number}")
            if all(len(names) == per_node for names in found.values()):
                return found
        raise AssertionError("no channel names spread over every node")

    async def shard_subscribers(self, channel: str) -> dict[int, int]:
        """PUBSUB SHARDNUMSUB on every node, by port, leaving out zeros."""
        counts = {}
        for port in [*self.cluster.ports, *self.cluster.replicas]:
            [(_, count)] = await self.node(port).pubsub_shardnumsub(channel)
            if count:
                counts[port] = count
        return counts

    async def shard_channels(self, prefix: str) -> dict[str, int]:
        """How many channels named `prefix:...` each node holds a shard subscription to (PUBSUB SHARDCHANNELS), by
        port, leaving out zeros."""
        counts = {}
        for port in [*self.cluster.ports, *self.cluster.replicas]:
            if held := len(await self.node(port).pubsub_shardchannels(f"{prefix}:*")):
                counts[str(port)] = held
        return counts

    async def plain_subscribers(self, channel: str) -> dict[int, int]:
        """PUBSUB NUMSUB (classic Pub/Sub, which reaches every node) on every node, by port, leaving out zeros."""
        counts = {}
        for port in [*self.cluster.ports, *self.cluster.replicas]:
            [(_, count)] = await self.node(port).pubsub_numsub(channel)
            if count:
                counts[port] = count
        return counts

    async def pause(self, port: int, *, seconds: float) -> None:
        """Make one node hold every client command for a while (CLIENT PAUSE ALL)."""
        await self.node(port).client_pause(int(seconds * 1000), all=True)

    async def kill_subscribers(self, port: int) -> int:
        """Drop every Pub/Sub connection to one node, as a proxy or a network blip would."""
        return int(await self.node(port).client_kill_filter(_type="pubsub"))

    async def move_slot(self, channel: str, port: int) -> None:
        """Hand the channel's slot (holding no keys) to another primary, as resharding does."""
        slot = self._router.keyslot(channel)
        source, target = self.node(self.owner(channel)), self.node(port)
        source_id = await source.execute_command("CLUSTER MYID")
        target_id = await target.execute_command("CLUSTER MYID")
        await target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        await source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        for node in (target, source):
            await node.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        await self._router.nodes_manager.initialize()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster for the whole session (tests that stop a node restart it and wait until it is ok)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        reason = "redis-server and redis-cli are needed to start a Redis Cluster"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
        pytest.skip(reason)
    cluster = LocalCluster(server, cli, tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster_admin(redis_cluster: LocalCluster) -> AsyncIterator[ClusterAdmin]:
    async with ClusterAdmin(redis_cluster) as admin:
        yield admin
