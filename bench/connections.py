"""How many subscribed sockets one tidings process holds, and what each costs.

Starts `tidings serve` on PostgreSQL + Redis, opens N subscribed WebSockets (N/10 users, 10 devices each), and reports
the server's resident memory per socket, then creates one notification per user and reports how long fan-out to all
sockets took. Run: `.venv/bin/python bench/connections.py 5000`. Numbers depend on the machine: compare runs, or
ratios against a peer run the same way, never absolute times across machines.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._client import EVENTS, WSClient, create, gql, token
from tests._server import PostgresDatabase, ServerProcess
from tests._services import redis_url


async def _metric(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{server.url}/metrics")).text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


async def _rss(server: ServerProcess) -> float:
    return await _metric(server, "process_resident_memory_bytes")


async def main(sockets: int) -> None:
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(max(1, sockets // 10))]
    database = PostgresDatabase()
    await database.create()
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            "TIDINGS_DATABASE_URL": database.url,
            "TIDINGS_BROADCAST_URL": redis_url(),
            "TIDINGS_CHANNEL_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "TIDINGS_AUTO_MIGRATE": "true",
            "TIDINGS_LOG_LEVEL": "warning",
            "TIDINGS_MAX_CONNECTIONS_PER_USER": "1000",
            "TIDINGS_DATABASE_POOL_SIZE": "10",
            "TIDINGS_KEEPALIVE_INTERVAL": "600",  # these test clients answer pings only while reading
        }
        server = ServerProcess(Path(workdir), env).start()
        clients: list[tuple[WSClient, str]] = []
        try:
            before = await _rss(server)
            slots = asyncio.Semaphore(100)

            async def open_one(user: str) -> None:
                async with slots:
                    client = await WSClient.connected(server.ws_url, token(user))
                    clients.append((client, await client.subscribe(EVENTS)))

            started = time.perf_counter()
            await asyncio.gather(*(open_one(users[i % len(users)]) for i in range(sockets)))
            opened = time.perf_counter() - started
            await asyncio.sleep(2)
            after = await _rss(server)
            await gql(server.graphql_url, "{ __typename }", bearer=token(users[0]))
            cpu_before = await _metric(server, "process_cpu_seconds_total")
            started = time.perf_counter()
            writers = asyncio.Semaphore(16)  # a backend with a bounded worker pool

            async def notify(user: str) -> None:
                async with writers:
                    await create(server.graphql_url, user, "bench")

            await asyncio.gather(*(notify(user) for user in users))
            await asyncio.gather(*(client.next_event(operation, timeout=120) for client, operation in clients))
            fanned = time.perf_counter() - started
            cpu = await _metric(server, "process_cpu_seconds_total") - cpu_before
            print(f"sockets: {len(clients)} ({len(users)} users x 10 devices)")
            print(f"opened and subscribed in {opened:.1f}s")
            per_socket = (after - before) / len(clients) / 1024
            print(f"server RSS: {before / 2**20:.0f} MiB -> {after / 2**20:.0f} MiB, {per_socket:.1f} KiB per socket")
            print(f"{len(users)} notifications delivered to all {len(clients)} sockets in {fanned:.2f}s (client-bound)")
            print(f"server CPU: {cpu:.2f}s for {len(users)} creates and {len(clients)} deliveries")
        finally:
            await asyncio.gather(*(client.close() for client, _ in clients), return_exceptions=True)
            server.stop()
            await database.drop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
