"""What arrives from the broker is checked before it reaches a socket: another user's event or garbage never does."""

from __future__ import annotations

import asyncio
import re

import httpx
import redis.asyncio as redis

from tests._client import WAIT, WSClient, create, token
from tests._server import ServerProcess
from tests._services import redis_url


async def _rejected(server: ServerProcess) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    match = re.search(r"^tidings_rejected_wakeups_total (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


async def test_a_foreign_or_undecodable_broker_message_reaches_no_client_and_ends_nothing(
    scaled_server: ServerProcess, user: str
) -> None:
    victim = user + "-victim"
    prefix = scaled_server.env["TIDINGS_CHANNEL_PREFIX"]
    client = redis.Redis.from_url(redis_url())
    listener = client.pubsub()
    try:
        # The victim's real event at position 2, as the broker carried it: the next position of the user's feed.
        await create(scaled_server.graphql_url, victim, "the victim's first")
        await listener.subscribe(f"{prefix}:user:{victim}")
        assert (await listener.get_message(timeout=WAIT))["type"] == "subscribe"
        secret = await create(scaled_server.graphql_url, victim, "the victim's secret")
        message = None
        while message is None or message["type"] != "message":
            message = await listener.get_message(timeout=WAIT)
        stolen: bytes = message["data"]
        assert secret["sequence"] == 2

        before = await _rejected(scaled_server)
        async with await WSClient.connected(scaled_server.ws_url, token(user)) as device:
            operation = await device.subscribe()
            own = await create(scaled_server.graphql_url, user, "first")
            assert (await device.next_event(operation))["notification"]["id"] == own["id"]
            channel = f"{prefix}:user:{user}"
            assert await client.publish(channel, stolen) == 1  # positive control: the server is subscribed
            assert await client.publish(channel, b"{not json") == 1
            assert await client.publish(channel, b'{"user_id": 1}') == 1
            for _ in range(100):  # until the server has looked at all three
                if await _rejected(scaled_server) - before >= 3:
                    break
                await asyncio.sleep(0.05)
            assert await _rejected(scaled_server) - before == 3

            later = await create(scaled_server.graphql_url, user, "second")
            event = await device.next_event(operation)  # the subscription is alive, and the next event is its own
            assert event["notification"]["id"] == later["id"] and event["sequence"] == own["sequence"] + 1
            await device.assert_silent()
        assert "was not an event of that user" in scaled_server.log()
    finally:
        await listener.aclose()
        await client.aclose()
