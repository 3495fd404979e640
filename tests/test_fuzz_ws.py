"""Random frames on the WebSocket: each gets a documented close code or leaves the socket working; nothing leaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests._client import EVENTS, WSClient, token
from tests._server import ServerProcess

# What a graphql-transport-ws server may answer a frame with, besides carrying on.
DOCUMENTED_CLOSES = {4400, 4401, 4403, 4409, 4429, 1009}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_types = st.sampled_from(["connection_init", "ping", "pong", "subscribe", "complete", "next", "error", "bogus"])
_messages = st.fixed_dictionaries(
    {"type": _types},
    optional={
        "id": st.one_of(st.text(max_size=12), st.integers(), st.none()),
        "payload": st.one_of(
            _json,
            st.fixed_dictionaries(
                {"query": st.sampled_from([EVENTS, "{ unreadCount }", "subscription {", "mutation { x }"])},
                optional={"variables": _json, "operationName": st.one_of(st.none(), st.text(max_size=8))},
            ),
        ),
    },
)
_frames = st.one_of(
    _messages.map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=64),
)

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


def _tasks(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("tidings_asyncio_tasks "))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz-ws"), {"TIDINGS_KEEPALIVE_INTERVAL": "600"}).start()
    server.baseline_tasks = _tasks(server)  # type: ignore[attr-defined]
    yield server
    server.stop()


async def _answer(client: WSClient, frames: list[Any]) -> int | None:
    """Send the frames; the close code the server chose, or None when the socket still answers a ping."""
    try:
        for frame in frames:
            await client.conn.send(frame)
        await client.send({"type": "ping"})
        async with asyncio.timeout(5):  # a hang fails here instead of stalling the suite
            while True:
                message = json.loads(await client.conn.recv())
                if message.get("type") == "pong":
                    return None
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"closed without a close frame after {frames!r}"
        return closed.rcvd.code


@FUZZ
@given(frames=st.lists(_frames, min_size=1, max_size=4), authenticate=st.booleans())
def test_random_frames_get_a_documented_answer(
    fuzz_server: ServerProcess, frames: list[Any], authenticate: bool
) -> None:
    async def run() -> None:
        client = await WSClient.open(fuzz_server.ws_url)
        try:
            if authenticate:
                await client.send({"type": "connection_init", "payload": {"authorization": token("fuzz")}})
                assert (await client.receive())["type"] == "connection_ack"
            code = await _answer(client, frames)
            assert code is None or code in DOCUMENTED_CLOSES, (code, frames)
        finally:
            await client.close()

    asyncio.run(run())


async def test_fuzzing_left_no_tasks_and_no_tracebacks(fuzz_server: ServerProcess) -> None:
    baseline: float = fuzz_server.baseline_tasks  # type: ignore[attr-defined]
    async with asyncio.timeout(20):
        while _tasks(fuzz_server) > baseline:  # every connection's tasks are gone again
            await asyncio.sleep(0.2)
    log = fuzz_server.log()
    for symptom in ("Traceback", "Task was destroyed but it is pending", "exception was never retrieved"):
        assert symptom not in log, symptom
