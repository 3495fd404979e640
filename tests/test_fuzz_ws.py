"""Random frames on the WebSocket, on both backends: each gets a documented close code or leaves the socket working;
nothing leaks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests._client import EVENTS, WSClient, token
from tests._fuzz import FuzzRun, fuzz_runs
from tests._server import PostgresDatabase, ServerProcess, scaled_env

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


def _tasks(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("tidings_asyncio_tasks "))


def _wait_for_tasks(server: ServerProcess, done: Callable[[float], bool]) -> float:
    deadline = time.monotonic() + 20
    while not done(tasks := _tasks(server)):
        assert time.monotonic() < deadline, f"tidings_asyncio_tasks stayed at {tasks}"
        time.sleep(0.1)
    return tasks


@pytest.fixture(scope="module", params=["embedded", "postgres-redis"])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"TIDINGS_KEEPALIVE_INTERVAL": "600"}  # no ping of the server's between the frames and the answer
    workdir = tmp_path_factory.mktemp(f"fuzz-ws-{request.param}")
    if request.param == "embedded":
        server = ServerProcess(workdir, env).start()
        yield server
        server.stop()
        return
    with PostgresDatabase() as database:
        server = ServerProcess(workdir, scaled_env(database, **env)).start()
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


async def _subscribed_socket_is_counted(server: ServerProcess, baseline: float) -> None:
    """Positive control for the check below: an open subscription shows in tidings_asyncio_tasks."""
    async with await WSClient.connected(server.ws_url, token("fuzz")) as client:
        await client.subscribe(EVENTS)
        await asyncio.to_thread(_wait_for_tasks, server, lambda tasks: tasks > baseline)


@fuzz_runs(examples=150)
def test_random_frames_get_a_documented_answer_and_leave_nothing_behind(
    fuzz_server: ServerProcess, run: FuzzRun
) -> None:
    log_start = len(fuzz_server.log())
    baseline = _tasks(fuzz_server)
    asyncio.run(_subscribed_socket_is_counted(fuzz_server, baseline))
    answers: set[int | None] = set()

    @given(frames=st.lists(_frames, min_size=1, max_size=4), authenticate=st.booleans())
    def check(frames: list[Any], authenticate: bool) -> None:
        async def exchange() -> None:
            async with await WSClient.open(fuzz_server.ws_url) as client:
                if authenticate:
                    await client.send({"type": "connection_init", "payload": {"authorization": token("fuzz")}})
                    assert (await client.receive())["type"] == "connection_ack"
                code = await _answer(client, frames)
                assert code is None or code in DOCUMENTED_CLOSES, (code, frames)
                answers.add(code)

        asyncio.run(exchange())

    run(check)
    # What the checks below look for was provoked: sockets closed by the server and sockets that carried on.
    assert None in answers and answers - {None}, answers
    _wait_for_tasks(fuzz_server, lambda tasks: tasks <= baseline)  # every connection's tasks are gone again
    log = fuzz_server.log()[log_start:]
    for symptom in ("Traceback", "Task was destroyed but it is pending", "exception was never retrieved"):
        assert symptom not in log, f"{symptom} in the log written while fuzzing:\n{log}"
