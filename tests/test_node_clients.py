"""Real npm clients (graphql-ws, urql, Apollo Client) against a real tidings server, run with Node from tests/node/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._client import gql, token
from tests._node import NodeScript, create_while_away, node_env, require_node
from tests._server import ServerProcess


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An embedded server of this module's own, which tests stop and start again on the same port and data."""
    require_node()  # before starting a server the tests would not use
    server = ServerProcess(tmp_path_factory.mktemp("node-clients"), {}).start()
    try:
        yield server
    finally:
        server.stop()


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


def test_tidings_client_loses_nothing_across_a_restart_and_resyncs_a_foreign_cursor(
    restartable_server: ServerProcess, embedded_server: ServerProcess, user: str
) -> None:
    foreign = asyncio.run(gql(embedded_server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user)))
    env = {
        **node_env(restartable_server, user),
        "TIDINGS_FOREIGN_CURSOR": foreign["data"]["notifications"]["feedCursor"],
    }
    with NodeScript("tidings-client.test.mjs", env) as script:
        script.paused("restart")
        restartable_server.stop()
        created = [f"gap {i}" for i in range(1, 5)]
        create_while_away(restartable_server, user, created)
        restartable_server.start()
        script.resume("restart", created=created)
        script.finish()


def test_js_client_sends_the_documented_operations() -> None:
    """clients/js/src/operations.ts holds graphql/operations/*.graphql verbatim (less their comment lines)."""
    source = (Path(__file__).parent.parent / "clients" / "js" / "src" / "operations.ts").read_text()
    operations = Path(__file__).parent.parent / "graphql" / "operations"
    for name in ("Notifications", "NotificationEvents", "MarkNotificationRead", "MarkAllNotificationsRead"):
        text = "\n".join(line for line in (operations / f"{name}.graphql").read_text().splitlines() if line[:1] != "#")
        assert f"export const {name} = /* GraphQL */ `\n{text.strip()}\n`;" in source, name


def test_node_scripts_use_the_documented_operations() -> None:
    """Every operation file is used by a Node test: the documented operations are the tested ones."""
    scripts = "".join(path.read_text() for path in (Path(__file__).parent / "node").glob("*.test.mjs"))
    operations = Path(__file__).parent.parent / "graphql" / "operations"
    unused = [p.stem for p in operations.glob("*.graphql") if f"operations.{p.stem}" not in scripts]
    assert not unused, f"operations no Node test runs: {unused}"
