"""The bench's floor (bench/floor.py) answers the bench's traffic with frames the size and shape of tidings'."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests._client import WSClient, service_token, token
from tests._server import TEST_SECRET, ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
# What bench/loadgen sends: lib/subscriber.mjs and lib/sender.mjs.
SUBSCRIPTION = (
    "subscription { notificationEvents { kind cursor unreadCount "
    "notification { id userId type title message data createdAt } } }"
)
MUTATION = "mutation Create($input: CreateNotificationInput!) { createNotification(input: $input) { id } }"


@pytest.fixture
def floor_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with (tmp_path / "floor.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "TIDINGS_JWT_SECRET": TEST_SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "floor.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the floor did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _first_frame(base_url: str, user: str) -> tuple[bytes, dict[str, Any]]:
    """The raw `next` frame a subscribed device of `user` receives for one createNotification, and the reply."""
    ws_url = base_url.replace("http", "ws", 1) + "/graphql"
    async with (
        await WSClient.connected(ws_url, token(user)) as device,
        await WSClient.connected(ws_url, token(user + "-else")) as stranger,
    ):
        for client in (device, stranger):
            await client.send({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        await asyncio.sleep(0.2)  # let the subscriptions start live
        notification = {
            "userId": user,
            "type": "INFO",
            "title": "Build finished",
            "message": "Pipeline #7 passed: 148 tests, 3 artifacts.",
            "data": {"sentAt": "123456789012345", "msgId": 7},
        }
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{base_url}/graphql",
                json={"query": MUTATION, "operationName": "Create", "variables": {"input": notification}},
                headers={"Authorization": f"Bearer {service_token()}"},
            )
        assert response.status_code == 200, response.text
        frame = await asyncio.wait_for(device.conn.recv(decode=False), 10)
        await stranger.assert_silent()
    return frame, response.json()


def _shape(value: Any) -> Any:
    """Keys in order and the types of the values: what must match whatever the ids and times are."""
    if isinstance(value, dict):
        return [(key, _shape(item)) for key, item in value.items()]
    return type(value).__name__


async def test_floor_sends_the_frame_tidings_sends(embedded_server: ServerProcess, floor_url: str, user: str) -> None:
    tidings_frame, tidings_reply = await _first_frame(embedded_server.url, user)
    floor_frame, floor_reply = await _first_frame(floor_url, user)
    tidings_message, floor_message = orjson.loads(tidings_frame), orjson.loads(floor_frame)
    assert _shape(floor_message) == _shape(tidings_message)
    assert _shape(floor_reply) == _shape(tidings_reply)
    event = floor_message["payload"]["data"]["notificationEvents"]
    assert event["notification"]["id"] == floor_reply["data"]["createNotification"]["id"]
    assert (event["kind"], event["unreadCount"]) == ("CREATED", 1)
    assert event["notification"]["data"] == {"sentAt": "123456789012345", "msgId": 7}
    # Same size: ids, cursor and unread count of the same length; createdAt is ISO-8601 without a fixed width.
    created = [
        m["payload"]["data"]["notificationEvents"]["notification"]["createdAt"]
        for m in (tidings_message, floor_message)
    ]
    assert len(floor_frame) - len(created[1]) == len(tidings_frame) - len(created[0])
