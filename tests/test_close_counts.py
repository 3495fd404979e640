"""`tidings_websocket_closes` counts each close the server initiates once, under its code; a client's close is none."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from tests._client import WAIT, WSClient, close_counts, token
from tests._server import ServerProcess
from tidings.protocol import CloseCode


@pytest.fixture(scope="module")
def closing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded server, 1 s to send connection_init; no other test uses it, so its counts are this module's."""
    server = ServerProcess(tmp_path_factory.mktemp("closes"), {"TIDINGS_CONNECTION_INIT_TIMEOUT": "1"}).start()
    try:
        yield server
    finally:
        server.stop()


async def asyncio_tasks(server: ServerProcess) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        metrics = (await client.get(f"{server.url}/metrics")).text
    [line] = [line for line in metrics.splitlines() if line.startswith("tidings_asyncio_tasks ")]
    return float(line.split()[1])


async def subscribed(server: ServerProcess, user: str) -> WSClient:
    """A client with a live subscription: the close cancels its operation too."""
    client = await WSClient.connected(server.ws_url, token(user))
    await client.subscribe()
    await client.send({"type": "ping"})  # answered after the subscribe was handled
    assert (await client.receive())["type"] == "pong"
    return client


async def bad_request(server: ServerProcess, user: str) -> WSClient:
    client = await subscribed(server, user)
    await client.send({"type": "no such message"})
    return client


async def second_init(server: ServerProcess, user: str) -> WSClient:
    client = await subscribed(server, user)
    await client.send({"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}})
    return client


async def subscribe_before_ack(server: ServerProcess, _: str) -> WSClient:
    client = await WSClient.open(server.ws_url)
    await client.subscribe()
    return client


async def bad_token(server: ServerProcess, _: str) -> WSClient:
    client = await WSClient.open(server.ws_url)
    await client.send({"type": "connection_init", "payload": {"authorization": "Bearer not-a-token"}})
    return client


async def no_init(server: ServerProcess, _: str) -> WSClient:
    return await WSClient.open(server.ws_url)


Provoke = Callable[[ServerProcess, str], Awaitable[WSClient]]
CLOSES: list[tuple[Provoke, CloseCode, int]] = [
    (bad_request, CloseCode.BAD_REQUEST, 3),
    (second_init, CloseCode.TOO_MANY_INITIALISATION_REQUESTS, 2),
    (subscribe_before_ack, CloseCode.UNAUTHORIZED, 1),
    (bad_token, CloseCode.FORBIDDEN, 2),
    (no_init, CloseCode.CONNECTION_INITIALISATION_TIMEOUT, 1),
]


async def test_each_close_the_server_initiates_is_counted_once_under_its_code(
    closing_server: ServerProcess, user: str
) -> None:
    before = await close_counts(closing_server)
    idle = await asyncio_tasks(closing_server)
    for provoke, code, times in CLOSES:
        for _ in range(times):
            client = await provoke(closing_server, user)
            try:
                assert (await client.close_frame())[0] == code
            finally:
                await client.close()
    # Closes the client makes are not the server's, whatever the client had going.
    for _ in range(2):
        client = await subscribed(closing_server, user)
        await client.close()
    # Every handler has shut down (it counted twice there before), so nothing more can be counted.
    async with asyncio.timeout(WAIT):
        while await asyncio_tasks(closing_server) > idle:
            await asyncio.sleep(0.05)

    after = await close_counts(closing_server)
    counted = Counter({code: after[code] - before[code] for code in after if after[code] != before[code]})
    assert counted == Counter({str(code): times for _, code, times in CLOSES})
