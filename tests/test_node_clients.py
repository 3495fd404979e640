"""Real npm clients (graphql-ws, urql, Apollo Client) and graphql-http's audit against real servers, run with Node."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._client import WAIT, create, gql, token
from tests._faults import TcpProxy
from tests._node import NodeScript, node_env, require_node
from tests._server import PostgresDatabase, ServerProcess, free_port, scaled_env


@pytest.fixture(scope="module", params=["embedded", "postgres-redis"])
def restartable_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server of this module's own on each backend, which tests stop and start again on the same port and data."""
    require_node()  # before starting a server the tests would not use
    workdir = tmp_path_factory.mktemp(f"node-clients-{request.param}")
    with contextlib.ExitStack() as stack:
        env = {} if request.param == "embedded" else scaled_env(stack.enter_context(PostgresDatabase()))
        server = ServerProcess(workdir, env).start()
        try:
            yield server
        finally:
            server.stop()


def create_while_away(server: ServerProcess, user: str, titles: list[str]) -> None:
    """While `server` is stopped, another process on its database (and broker) creates notifications it missed."""
    settings = {name: value for name, value in server.env.items() if name.startswith("TIDINGS_")}
    elsewhere = ServerProcess(server.workdir, settings, port=free_port()).start()
    try:
        for title in titles:
            asyncio.run(create(elsewhere.graphql_url, user, title))
    finally:
        elsewhere.stop()


def restart(server: ServerProcess) -> None:
    """Stop (SIGTERM: WebSockets close with 1012) and start again on the same port, database and secret."""
    server.stop()
    server.start()


def test_graphql_ws_reconnects_on_4403_with_a_fresh_token_and_on_1012_after_restart(
    restartable_server: ServerProcess, user: str
) -> None:
    with NodeScript("graphql-ws.test.mjs", node_env(restartable_server, user)) as script:
        script.paused("restart")
        restart(restartable_server)
        script.resume("restart")
        script.finish()


def test_urql_two_devices_created_read_and_all_read(restartable_server: ServerProcess, user: str) -> None:
    with NodeScript("urql.test.mjs", node_env(restartable_server, user)) as script:
        script.finish()


def test_apollo_two_devices_read_updates_the_other_normalized_cache(
    restartable_server: ServerProcess, user: str
) -> None:
    with NodeScript("apollo.test.mjs", node_env(restartable_server, user)) as script:
        script.finish()


STRICT_ENV = {
    "TIDINGS_MAX_TOKENS": "10",  # the client's subscription is refused with 4400
    "TIDINGS_MAX_CONNECTIONS_PER_USER": "1",  # a second connection of a user is refused with 4403
}


# The tests of tidings-client.test.mjs that go through the store and the broker: on PostgreSQL + Redis, only these.
BACKEND_TESTS = (
    "a 4403 gets a fresh token; a server restart",
    "a cursor of another database",
    "two clients of one user: a collapse key, snooze and unsnooze",
)


def test_tidings_client_loses_nothing_across_a_restart_resyncs_a_foreign_cursor_and_stops_on_fatal_closes(
    restartable_server: ServerProcess,
    embedded_server: ServerProcess,
    user: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    everything = request.node.callspec.params["restartable_server"] == "embedded"
    foreign = asyncio.run(gql(embedded_server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))
    # The strict server's tests (limits of one process) run on the embedded default only.
    strict = ServerProcess(tmp_path, STRICT_ENV).start() if everything else restartable_server
    env = {
        **node_env(restartable_server, user),
        "TIDINGS_FOREIGN_CURSOR": foreign["data"]["notifications"]["feedCursor"],
        "TIDINGS_STRICT_URL": strict.url,
        "TIDINGS_SECOND_USER_TOKEN": token(f"{user}-2"),
    }
    pattern = () if everything else (f"--test-name-pattern=^({'|'.join(map(re.escape, BACKEND_TESTS))})",)
    try:
        with NodeScript("tidings-client.test.mjs", env, args=pattern) as script:
            script.paused("restart")
            restartable_server.stop()
            created = [f"gap {i}" for i in range(1, 5)]
            create_while_away(restartable_server, user, created)
            restartable_server.start()
            script.resume("restart", created=created)
            script.finish(tests=None if everything else len(BACKEND_TESTS))
    finally:
        if strict is not restartable_server:
            strict.stop()


def test_graphql_http_audit_passes_without_an_error_or_warning(
    embedded_server: ServerProcess, tmp_path: Path, user: str
) -> None:
    """graphql-http's `auditServer` (the GraphQL over HTTP specification's reference audit) on both backends.

    A few of its requests introspect (`__schema`), which deployments refuse by default: the PostgreSQL + Redis server
    here allows it, so that the audit checks the HTTP semantics and not that policy."""
    with NodeScript("graphql-http-audit.test.mjs", node_env(embedded_server, user)) as script:
        script.finish()
    with PostgresDatabase() as database:
        scaled = ServerProcess(tmp_path, scaled_env(database, TIDINGS_INTROSPECTION="true")).start()
        try:
            with NodeScript("graphql-http-audit.test.mjs", node_env(scaled, user)) as script:
                script.finish()
        finally:
            scaled.stop()


def test_graphql_http_audit_passes_through_the_router_too(tmp_path: Path, user: str) -> None:
    """With TIDINGS_HTTP_FAST_PATH=false every POST takes FastAPI's routing to the GraphQL view: the same answers."""
    require_node()
    server = ServerProcess(tmp_path, {"TIDINGS_HTTP_FAST_PATH": "false"}).start()
    try:
        with NodeScript("graphql-http-audit.test.mjs", node_env(server, user)) as script:
            script.finish()
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


SLOW_CONSUMER_ENV = {
    "TIDINGS_SEND_QUEUE_SIZE": "4",  # four messages queued, then senders wait
    "TIDINGS_SEND_TIMEOUT": "2",  # a write that does not finish in 2 s: 1013 (and 2 s more to send the close)
    "TIDINGS_KEEPALIVE_INTERVAL": "600",  # no ping in the way
}
PADDING = {"padding": "x" * 16_000}  # data of almost 16 KiB: the buffers fill after a few dozen notifications


async def subscriptions(http: httpx.AsyncClient) -> int:
    """The server's `tidings_subscriptions`: a socket's operations end as soon as the server decides to close it."""
    text = (await http.get("/metrics")).text
    match = re.search(r"^tidings_subscriptions (\S+)$", text, re.MULTILINE)
    assert match is not None, text
    return int(float(match.group(1)))


async def until_subscriptions(http: httpx.AsyncClient, count: int) -> None:
    while await subscriptions(http) != count:
        await asyncio.sleep(0.02)


async def overflow(server: ServerProcess, proxy: TcpProxy, user: str) -> list[str]:
    """Stall the proxy and create notifications until the server gives up on the socket, then let it flow again.

    The server's socket buffer fills, then uvicorn's: once a write has waited TIDINGS_SEND_TIMEOUT for room there,
    the server decides on 1013 and ends the subscription. The close frame waits behind the buffered frames and has
    one more TIDINGS_SEND_TIMEOUT to be written (after that the server drops the socket without it): the proxy
    resumes as soon as the subscription has ended, so the client reads everything that was buffered, then the 1013.
    Returns the titles created, in order.
    """
    created: list[str] = []
    closed = asyncio.Event()

    async def notify() -> None:
        while not closed.is_set():
            title = f"slow {len(created) + 1}"
            await create(server.graphql_url, user, title, data=PADDING)
            created.append(title)

    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        async with asyncio.timeout(WAIT):
            await until_subscriptions(http, 1)  # the client's, and no other
        proxy.stall()
        try:
            async with asyncio.TaskGroup() as tasks:  # a failed create ends the wait
                tasks.create_task(notify())
                try:
                    async with asyncio.timeout(30):
                        await until_subscriptions(http, 0)
                except TimeoutError:
                    raise AssertionError(f"no close after {len(created)} notifications:\n{server.log()}") from None
                closed.set()  # the create in flight finishes: it may have committed
                proxy.resume()
        finally:
            proxy.resume()
    return created


def test_graphql_ws_and_tidings_client_reconnect_on_1013_as_slow_consumers(tmp_path: Path, user: str) -> None:
    """A client that stops reading (a stalled proxy) is closed with 1013; both clients come back and lose nothing."""
    require_node()
    server = ServerProcess(tmp_path, SLOW_CONSUMER_ENV).start()
    try:
        asyncio.run(slow_consumers(server, user))
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()


async def slow_consumers(server: ServerProcess, user: str) -> None:
    # Narrow towards the server: its send buffer holds some 100 KiB, not the 4 MiB of loopback.
    proxy = await TcpProxy("127.0.0.1", server.port, narrow_upstream=True).start()
    try:
        env = {**node_env(server, user), "TIDINGS_WS_URL": f"ws://127.0.0.1:{proxy.port}/graphql"}
        with NodeScript("slow-consumer.test.mjs", env) as script:
            for _client in ("graphql-ws", "@tidings/client"):
                await asyncio.to_thread(script.paused, "slow consumer")
                created = await overflow(server, proxy, user)
                script.resume("slow consumer", created=created)
            await asyncio.to_thread(script.finish)
    finally:
        await proxy.close()


def test_node_scripts_use_the_documented_operations() -> None:
    """Every operation file is used by a Node test: the documented operations are the tested ones."""
    scripts = "".join(path.read_text() for path in (Path(__file__).parent / "node").glob("*.test.mjs"))
    operations = Path(__file__).parent.parent / "graphql" / "operations"
    unused = [p.stem for p in operations.glob("*.graphql") if f"operations.{p.stem}" not in scripts]
    assert not unused, f"operations no Node test runs: {unused}"
