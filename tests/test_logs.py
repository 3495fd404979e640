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
