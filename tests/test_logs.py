"""TIDINGS_LOG_FORMAT=json: every line a real server writes is one JSON object, with ids, and no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._client import WSClient, create, error_codes, gql, token
from tests._server import ServerProcess

SECRET_TITLE = "Quarterly numbers for Zanzibar"
SECRET_MESSAGE = "The password to the vault is hunter2-body"


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, {"TIDINGS_LOG_FORMAT": "json"}).start()
    try:
        yield server
    finally:
        server.stop()


def entries(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [line for line in server.log().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    for entry in parsed:
        assert isinstance(entry, dict), entry
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    return parsed


async def test_json_logs_are_one_object_per_line_with_request_and_connection_ids(
    json_server: ServerProcess, user: str
) -> None:
    forged = token(user)[:-6] + "AAAAAA"  # a bad signature: refused, and logged without the token
    refused = await gql(json_server.graphql_url, "{ unreadCount }", bearer=forged)
    assert error_codes(refused) == ["UNAUTHENTICATED"]
    socket = await WSClient.open(json_server.ws_url)
    await socket.send({"type": "connection_init", "payload": {"authorization": f"Bearer {forged}"}})
    await socket.conn.wait_closed()
    assert socket.conn.close_code == 4403
    device = await WSClient.connected(json_server.ws_url, token(user))
    operation = await device.subscribe()
    await create(json_server.graphql_url, user, SECRET_TITLE, message=SECRET_MESSAGE)
    assert (await device.next_event(operation))["notification"]["title"] == SECRET_TITLE
    await device.conn.close()
    json_server.stop()

    logged = entries(json_server)
    messages = [entry["message"] for entry in logged]
    assert any("dashboard at" in message for message in messages)  # the banner too, as JSON
    assert any(entry["logger"].startswith("uvicorn") for entry in logged)  # uvicorn's lines too
    http_refusal = [entry for entry in logged if "refused the token of an HTTP request" in entry["message"]]
    ws_refusal = [entry for entry in logged if "refused the token of a WebSocket" in entry["message"]]
    assert len(http_refusal) == 1 and len(ws_refusal) == 1, messages
    assert http_refusal[0]["level"] == "info" and http_refusal[0]["request_id"]
    assert ws_refusal[0]["connection_id"] and "request_id" not in ws_refusal[0]
    text = json_server.log()
    for secret in (forged, forged.split(".")[2], SECRET_TITLE, SECRET_MESSAGE):
        assert secret not in text


PER_SOCKET_LINES = ('"WebSocket /graphql" [accepted]', "connection open")


@pytest.mark.parametrize("access_log", [False, True], ids=["default", "access-log"])
async def test_lines_per_request_and_socket_follow_the_access_log_setting(
    tmp_path: Path, user: str, access_log: bool
) -> None:
    """With thousands of sockets, uvicorn's lines for each (accepted, open, closed) are an access log: off by default
    like the one per HTTP request, all there with TIDINGS_ACCESS_LOG=true."""
    env = {"TIDINGS_ACCESS_LOG": "true"} if access_log else {}
    server = ServerProcess(tmp_path, env).start()
    try:
        device = await WSClient.connected(server.ws_url, token(user))
        operation = await device.subscribe()
        made = await create(server.graphql_url, user)
        assert (await device.next_event(operation))["notification"]["id"] == made["id"]
        await device.conn.close()
    finally:
        server.stop()
    text = server.log()
    assert "Application startup complete" in text  # uvicorn's own lines are there either way
    for line in (*PER_SOCKET_LINES, '"POST /graphql HTTP/1.1" 200'):
        assert (line in text) == access_log, (line, text)
    if not access_log:
        assert "connection closed" not in text  # written once the close handshake is through: only when on
