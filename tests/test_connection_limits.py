"""tidings serve drops what uvicorn alone keeps: silent, slow and oversized requests, and sockets beyond a bound."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests._client import WAIT, WSClient, token
from tests._server import ServerProcess

MAX_CONNECTIONS = 6
LIMITS = {"TIDINGS_REQUEST_TIMEOUT": "1", "TIDINGS_MAX_HEADER_BYTES": "4096"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("limits"), LIMITS).start()
    try:
        yield server
    finally:
        server.stop()


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a socket the server keeps open fails with a timeout."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_connection_that_sends_nothing_is_closed(limited: ServerProcess) -> None:
    with closing(_connect(limited)) as sock:
        assert _read_until_closed(sock) == b""
    assert "no whole request in 1.0s" in limited.log()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HT",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    ],
    ids=["half-a-request-line", "half-a-header", "half-a-websocket-upgrade"],
)
def test_a_request_that_never_completes_is_closed(limited: ServerProcess, head: bytes) -> None:
    with closing(_connect(limited)) as sock:
        sock.sendall(head)
        assert _read_until_closed(sock) == b""


def test_a_request_trickled_a_byte_at_a_time_is_closed(limited: ServerProcess) -> None:
    """Every byte used to restart uvicorn's clock: now the whole request must arrive within the deadline."""
    with closing(_connect(limited)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.2)
        for _ in range(int(WAIT / 0.2)):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                if sock.recv(1) == b"":
                    return  # closed
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return
        pytest.fail("a request trickled in over ten seconds was still open")


def test_an_oversized_head_gets_431_and_is_closed(limited: ServerProcess) -> None:
    with closing(_connect(limited)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer


def test_a_head_under_the_bound_and_a_slow_keep_alive_client_are_served(limited: ServerProcess) -> None:
    """Positive control: the deadline runs per request, and a full head just under the bound is a normal request."""
    with httpx.Client(base_url=limited.url, timeout=WAIT) as client:
        assert client.get("/healthz", headers={"X-Big": "a" * 3000}).status_code == 200
        for _ in range(3):  # one connection, idle for less than the keep-alive between requests
            assert client.get("/healthz").text.strip() != ""


async def test_connections_beyond_the_bound_are_refused_until_one_closes(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"TIDINGS_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}).start()
    devices: list[WSClient] = []
    try:
        devices = [await WSClient.connected(server.ws_url, token("crowd")) for _ in range(MAX_CONNECTIONS)]
        with closing(_connect(server)) as sock:
            answer = _read_until_closed(sock)  # refused before it says anything: no descriptor is kept for it
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer, answer
        assert f"TIDINGS_MAX_CONNECTIONS ({MAX_CONNECTIONS}) are open" in server.log()

        await devices.pop().close()
        async with httpx.AsyncClient(timeout=WAIT) as client:
            for _ in range(100):  # until the server has seen the close
                response = await client.get(f"{server.url}/healthz", headers={"Connection": "close"})
                if response.status_code == 200:
                    break
                await asyncio.sleep(0.05)
        assert response.status_code == 200
    finally:
        for device in devices:
            await device.close()
        server.stop()
