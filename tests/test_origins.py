"""Cross-site WebSocket hijacking and CORS: one list of allowed origins drives both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests._client import WSClient, token
from tests._server import ServerProcess


async def _handshake(server: ServerProcess, origin: str | None) -> int:
    """The HTTP status of a WebSocket handshake from a page on `origin` (101 when upgraded)."""
    headers = {"Origin": origin} if origin else {}
    try:
        client = await WSClient.open(server.ws_url, additional_headers=headers, origin=None)
    except InvalidStatus as refused:
        return refused.response.status_code
    await client.send({"type": "connection_init", "payload": {"authorization": token("origin-test")}})
    assert (await client.receive())["type"] == "connection_ack"
    await client.close()
    return 101


async def _preflight(server: ServerProcess, origin: str) -> str | None:
    async with httpx.AsyncClient() as client:
        response = await client.options(
            server.graphql_url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    return response.headers.get("access-control-allow-origin")


async def test_embedded_default_allows_same_origin_and_localhost_only(embedded_server: ServerProcess) -> None:
    assert await _handshake(embedded_server, None) == 101  # a backend service sends no Origin
    assert await _handshake(embedded_server, embedded_server.url) == 101  # the dashboard itself
    assert await _handshake(embedded_server, "http://localhost:5173") == 101  # a frontend's dev server
    assert await _handshake(embedded_server, "https://evil.example") == 403
    assert await _handshake(embedded_server, "http://localhost.evil.example") == 403
    assert await _preflight(embedded_server, "http://localhost:5173") == "http://localhost:5173"
    assert await _preflight(embedded_server, "https://evil.example") is None


@pytest.fixture(scope="module")
def listed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_ALLOWED_ORIGINS": "https://app.example.com, https://admin.example.com:8443"}
    server = ServerProcess(tmp_path_factory.mktemp("origins"), env).start()
    yield server
    server.stop()


async def test_an_explicit_list_is_all_that_is_allowed(listed_server: ServerProcess) -> None:
    assert await _handshake(listed_server, "https://app.example.com") == 101
    assert await _handshake(listed_server, "https://admin.example.com:8443") == 101
    assert await _handshake(listed_server, "http://localhost:5173") == 403
    assert await _handshake(listed_server, "https://evil.example") == 403
    assert await _preflight(listed_server, "https://app.example.com") == "https://app.example.com"
    assert await _preflight(listed_server, "http://localhost:5173") is None
