"""Subscribes spend from the caller's own bucket: one user looping subscribe / complete is refused, others are not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._client import EVENTS, WSClient, create, token
from tests._server import ServerProcess


@pytest.fixture(scope="module")
def metered_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_USER_SUBSCRIBES_PER_SECOND": "0.01", "TIDINGS_SERVICE_SUBSCRIBES_PER_SECOND": "0"}
    server = ServerProcess(tmp_path_factory.mktemp("metered"), env).start()
    try:
        yield server
    finally:
        server.stop()


def _subscribe(operation_id: str) -> dict[str, object]:
    return {"id": operation_id, "type": "subscribe", "payload": {"query": EVENTS}}


async def test_subscribes_past_the_bucket_get_rate_limited_and_the_socket_lives_on(
    metered_server: ServerProcess, user: str
) -> None:
    async with await WSClient.connected(metered_server.ws_url, token(user)) as device:
        first = await device.subscribe()  # a bucket holds at least one; the next refills in 100 s
        await device.complete(first)
        await device.send(_subscribe("again"))
        refused = await device.receive()
        assert refused["type"] == "error" and refused["id"] == "again", refused
        (error,) = refused["payload"]
        assert error["extensions"]["code"] == "RATE_LIMITED" and error["extensions"]["retryAfter"] > 0
        assert error["message"].startswith("Too many subscribes: at most 0.01 per second")

        async with await WSClient.connected(metered_server.ws_url, token(user + "-other")) as other:
            operation = await other.subscribe()  # buckets are per caller
            made = await create(metered_server.graphql_url, user + "-other")
            assert (await other.next_event(operation))["notification"]["id"] == made["id"]
        await device.send({"type": "ping"})
        assert await device.receive() == {"type": "pong"}  # refused operations end nothing else


async def test_services_are_unlimited_when_their_rate_is_zero(metered_server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(metered_server.ws_url, token("backend", service=True)) as backend:
        for i in range(5):
            operation = await backend.subscribe(variables={"userId": user})
            made = await create(metered_server.graphql_url, user, f"n{i}")
            assert (await backend.next_event(operation))["notification"]["id"] == made["id"]
            await backend.complete(operation)
