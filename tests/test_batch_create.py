"""Batch create end to end, on the embedded default and PostgreSQL + Redis.

createNotifications writes each user's inputs in one transaction (in order, one wake-up per user): every device of the
user sees each event in order and a resume after a cursor replays them identically; results come in input order; a
bad input refuses the call and writes nothing; a user whose transaction is refused gets errors at its positions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests._client import WAIT, WSClient, error_codes, gql, service_token, token
from tests._server import ServerProcess
from tests.test_inbox import EVENTS, _frames

ROOT = Path(__file__).resolve().parent.parent
BATCH = (ROOT / "graphql" / "operations" / "CreateNotifications.graphql").read_text()
LIST = "{ notifications(first: 50) { edges { node { title } } unreadCount feedCursor } }"


def test_the_batch_contract_names_are_present() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    assert "createNotifications(inputs: [CreateNotificationInput!]!): [Notification]!" in sdl


async def _published(server: ServerProcess) -> float:
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{server.url}/metrics")).text
    return sum(float(value) for value in re.findall(r"^tidings_events_published_total ([0-9.e+]+)$", text, re.M))


def _input(user: str, title: str, **fields: Any) -> dict[str, Any]:
    return {"userId": user, "title": title, "message": "m", **fields}


async def test_two_devices_see_a_batch_in_order_with_one_wake_up_per_user_and_a_resume_replays_it(
    server: ServerProcess, user: str
) -> None:
    url, me, other = server.graphql_url, token(user), f"{user}-other"
    start = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    inputs = [
        _input(user, "one", collapseKey="thread"),
        _input(other, "theirs"),
        _input(user, "two", idempotencyKey="order-2"),
        _input(user, "one and more", collapseKey="thread"),
        _input(other, "theirs too", category="billing"),
        _input(user, "three", category="comments"),
    ]
    async with (
        await WSClient.connected(server.ws_url, me) as phone,
        await WSClient.connected(server.ws_url, me) as laptop,
    ):
        for device in (phone, laptop):
            await device.subscribe(EVENTS, {"after": start})
        published = await _published(server)
        body = await gql(url, BATCH, {"inputs": inputs}, bearer=service_token())
        assert "errors" not in body, body
        assert await _published(server) - published == 2  # one wake-up per user, not per input
        live = [await _frames(device, 4) for device in (phone, laptop)]
        await phone.assert_silent()
    made = body["data"]["createNotifications"]
    assert [(n["userId"], n["title"]) for n in made] == [(i["userId"], i["title"]) for i in inputs]
    assert made[3]["id"] == made[0]["id"] and made[3]["collapsedCount"] == 1
    assert live[0] == live[1]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    assert [(e["kind"], e["notification"]["title"], e["unreadCount"]) for e in events] == [
        ("CREATED", "one", 1), ("CREATED", "two", 2), ("UPDATED", "one and more", 2), ("CREATED", "three", 3),
    ]  # fmt: skip
    assert [e["sequence"] for e in events] == list(range(events[0]["sequence"], events[0]["sequence"] + 4))
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 4) == live[0]
        await resumed.assert_silent()
    # The retry of the whole batch: the keyed input is the same answer; the others are new creates (no keys).
    again = (await gql(url, BATCH, {"inputs": inputs[2:3]}, bearer=service_token()))["data"]["createNotifications"]
    assert again == [made[2]]
    theirs = (await gql(url, LIST, bearer=token(other)))["data"]["notifications"]
    assert [edge["node"]["title"] for edge in theirs["edges"]] == ["theirs too", "theirs"]


async def test_a_bad_input_refuses_the_whole_call_and_writes_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    for inputs, argument, index in (
        ([_input(user, "fine"), _input(user, "  ")], "title", 1),
        ([_input(user, "fine"), _input(user, "x", category="no spaces")], "category", 1),
        ([_input(user, "x", collapseKey="")], "collapseKey", 0),
    ):
        body = await gql(url, BATCH, {"inputs": inputs}, bearer=service_token())
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument, "index": index}
        assert body["errors"][0]["message"].startswith(f"inputs[{index}]: ")
    for inputs in ([], [_input(user, f"n{n}") for n in range(1001)]):
        body = await gql(url, BATCH, {"inputs": inputs}, bearer=service_token())
        assert error_codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["argument"] == "inputs"
    assert error_codes(await gql(url, BATCH, {"inputs": [_input(user, "mine")]}, bearer=me)) == ["FORBIDDEN"]
    assert (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"] == before


async def test_a_user_whose_transaction_is_refused_gets_errors_at_its_positions_only(
    server: ServerProcess, user: str
) -> None:
    url, other = server.graphql_url, f"{user}-other"
    first = await gql(url, BATCH, {"inputs": [_input(user, "keyed", idempotencyKey="k")]}, bearer=service_token())
    assert "errors" not in first
    before = (await gql(url, LIST, bearer=token(user)))["data"]["notifications"]["feedCursor"]
    inputs = [_input(user, "new"), _input(other, "fine"), _input(user, "changed payload", idempotencyKey="k")]
    body = await gql(url, BATCH, {"inputs": inputs}, bearer=service_token())
    made = body["data"]["createNotifications"]
    assert made[0] is None and made[2] is None and made[1]["title"] == "fine"
    errors = sorted(body["errors"], key=lambda error: error["path"])
    assert [(e["path"], e["extensions"]["code"], e["extensions"]["argument"]) for e in errors] == [
        (["createNotifications", 0], "BAD_USER_INPUT", "inputs"),
        (["createNotifications", 2], "BAD_USER_INPUT", "idempotencyKey"),
    ]
    assert "inputs[2]" in errors[0]["message"]
    assert (await gql(url, LIST, bearer=token(user)))["data"]["notifications"]["feedCursor"] == before
