"""Presence in Redis, for the scaled-out configuration: each process vouches for its own devices, with expiry.

One sorted set per user: a member per device, `<process>:<n>`, scored with the time until which its process vouches
for it. Every process refreshes the scores of its own members every `interval` seconds (one pipeline for all its
users), removes a member when its socket closes, and withdraws all of them at shutdown; a lookup counts the members
whose time has not passed. A process that is killed stops refreshing, so its devices stop counting within three
intervals, with nothing to clean up by anyone: the sorted set needs no per-member expiry (Redis 7.0 has none for
hash fields either), and no other process has to notice the death. Beside it, one key per user holds the last time
a device was seen, kept for `seen_ttl`. Both keys share the user's hash tag, so on Redis Cluster a lookup is one
slot. Scores are wall-clock times of the processes: their clocks are assumed to agree within an interval (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError

from tidings.broadcast.cluster import parse_cluster_url

from . import PresenceRecord, PresenceUnavailable

logger = logging.getLogger(__name__)

EXPIRY_INTERVALS = 3  # a member counts until this many refresh intervals after its last refresh
# Users per pipeline. Building and reading one is synchronous work: 500 users (2,000 commands) held the event loop
# for ~60 ms at every refresh, a stall every delivery in flight waited out; 50 hold it for ~5 ms.
FLUSH_BATCH = 50
# On a single Redis server a refresh is one script call per batch instead of four commands per user: redis-py packs,
# sends and parses each command of a pipeline in Python, which cost a process with 2,000 devices about 120 ms of CPU
# at every refresh. Redis runs a script atomically, so a batch is kept to what it runs in about a millisecond.
SCRIPT_BATCH = 200
# KEYS: per user, the devices key and the seen key. ARGV: now, the members' new score, the devices key's expiry
# (ms), the seen value and its expiry (s); then per user: how many members are gone, how many are here, the gone
# ones, those here. The same commands, in the same order, as the pipeline of a cluster.
REFRESH_SCRIPT = """
local now, score, pexpire, seen, seen_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local at = 6
for k = 1, #KEYS, 2 do
  local devices = KEYS[k]
  local gone, here = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  at = at + 2
  for m = at, at + gone - 1 do redis.call('ZREM', devices, ARGV[m]) end
  at = at + gone
  for m = at, at + here - 1 do redis.call('ZADD', devices, score, ARGV[m]) end
  if here > 0 then redis.call('PEXPIRE', devices, pexpire) end
  at = at + here
  redis.call('ZREMRANGEBYSCORE', devices, '-inf', now)
  redis.call('SET', KEYS[k + 1], seen, 'EX', seen_ttl)
end
return #KEYS / 2
"""
SOCKET_TIMEOUT = 2.0
CLOSE_TIMEOUT = 2.0  # seconds the shutdown waits to withdraw this process's devices


class RedisPresence:
    """Devices counted in Redis sorted sets that this process refreshes, written in batches by one task."""

    def __init__(self, url: str, *, prefix: str, interval: float, seen_ttl: float) -> None:
        self._url = url
        self._prefix = prefix
        self._interval = interval
        self._ttl = interval * EXPIRY_INTERVALS
        self._seen_ttl = max(1, int(seen_ttl))
        self._process = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._members: dict[str, set[str]] = {}  # user -> this process's members for them
        self._gone: dict[str, set[str]] = {}  # members to remove at the next write
        self._dirty: set[str] = set()  # users whose entries changed since the last write
        self._wake = asyncio.Event()
        self._client: Any = None  # Redis or RedisCluster
        self._refresh_script: Any = None  # on a single server: the refresh as one script call per batch
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def connected(self, user_id: str) -> str:
        member = f"{self._process}:{next(self._ids)}"
        self._members.setdefault(user_id, set()).add(member)
        self._changed(user_id)
        return member

    def disconnected(self, user_id: str, handle: str) -> None:
        members = self._members.get(user_id)
        if members is None or handle not in members:
            return
        members.discard(handle)
        if not members:
            del self._members[user_id]
        self._gone.setdefault(user_id, set()).add(handle)
        self._changed(user_id)

    async def lookup(self, user_id: str) -> PresenceRecord:
        now = time.time()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zcount(self._devices_key(user_id), f"({now}", "+inf")
                pipe.get(self._seen_key(user_id))
                devices, seen = await pipe.execute()
        except (RedisError, OSError) as error:
            raise PresenceUnavailable(str(error)) from None
        if devices:
            return PresenceRecord(int(devices), datetime.fromtimestamp(now, UTC))
        return PresenceRecord(0, None if seen is None else datetime.fromtimestamp(float(seen), UTC))

    async def start(self) -> None:
        if self._url.startswith("redis-cluster://"):
            address = parse_cluster_url(self._url)
            self._client = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
                username=address.username,
                password=address.password,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
            )
        else:
            self._client = Redis.from_url(
                self._url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
            )
            # EVALSHA, loaded again by redis-py whenever the server answers NOSCRIPT (after a restart, say).
            self._refresh_script = self._client.register_script(REFRESH_SCRIPT)
        self._task = asyncio.create_task(self._run(), name="tidings-presence")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Withdraw every device still counted here: the sockets are closing with the process.
        for user_id, members in self._members.items():
            self._gone.setdefault(user_id, set()).update(members)
            self._dirty.add(user_id)
        self._members.clear()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._write(self._dirty)
        except (TimeoutError, RedisError, OSError) as error:
            logger.warning("presence: could not withdraw this process's devices (%s); they expire on their own", error)
        self._dirty = set()
        await self._client.aclose()

    def _changed(self, user_id: str) -> None:
        self._dirty.add(user_id)
        self._wake.set()

    async def _run(self) -> None:
        """Write what changed at once (a connection storm is one pipeline); refresh everything each interval."""
        loop = asyncio.get_running_loop()
        refresh_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, refresh_at - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            users, self._dirty = self._dirty, set()
            if loop.time() >= refresh_at:
                users.update(self._members)
                refresh_at = loop.time() + self._interval
            try:
                await self._write(users)
            except (RedisError, OSError) as error:
                self._dirty.update(users)  # written at the next refresh, or the next change
                if not self._failing:
                    logger.warning("presence: cannot write to Redis (%s); retrying", error)
                self._failing = True
                continue
            if self._failing:
                logger.info("presence: writing to Redis again")
                self._failing = False

    async def _write(self, users: Iterable[str]) -> None:
        """Per batch of users: withdraw gone devices, refresh the others, drop members of processes that stopped
        vouching for theirs, note the time seen. One script call per batch on a single server, one pipeline (of
        the same commands) per batch on a cluster, whose users' keys live on different nodes."""
        pending = list(users)
        size = FLUSH_BATCH if self._refresh_script is None else SCRIPT_BATCH
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            gone = {user: self._gone.pop(user) for user in batch if user in self._gone}
            try:
                if self._refresh_script is None:
                    await self._write_pipelined(batch, gone)
                else:
                    await self._write_scripted(batch, gone)
            except BaseException:
                for user_id, members in gone.items():
                    self._gone.setdefault(user_id, set()).update(members)
                raise

    async def _write_scripted(self, batch: list[str], gone: dict[str, set[str]]) -> None:
        now = time.time()
        keys: list[str] = []
        args: list[object] = [repr(now), repr(now + self._ttl), int(self._ttl * 1000) + 1000, repr(now), self._seen_ttl]
        for user_id in batch:
            keys += (self._devices_key(user_id), self._seen_key(user_id))
            withdrawn, members = gone.get(user_id, ()), self._members.get(user_id, ())
            args += (len(withdrawn), len(members), *withdrawn, *members)
        await self._refresh_script(keys=keys, args=args)

    async def _write_pipelined(self, batch: list[str], gone: dict[str, set[str]]) -> None:
        now = time.time()
        async with self._client.pipeline(transaction=False) as pipe:
            for user_id in batch:
                key = self._devices_key(user_id)
                if user_id in gone:
                    pipe.zrem(key, *gone[user_id])
                members = self._members.get(user_id)
                if members:
                    pipe.zadd(key, dict.fromkeys(members, now + self._ttl))
                    pipe.pexpire(key, int(self._ttl * 1000) + 1000)
                pipe.zremrangebyscore(key, "-inf", now)  # members of processes that stopped vouching
                pipe.set(self._seen_key(user_id), repr(now), ex=self._seen_ttl)
            await pipe.execute()

    def _devices_key(self, user_id: str) -> str:
        return f"{self._prefix}:presence:{{{user_id}}}"

    def _seen_key(self, user_id: str) -> str:
        return f"{self._prefix}:seen:{{{user_id}}}"
