"""Collapse keys end to end, on the embedded default and PostgreSQL + Redis.

A create with the collapse key of an unread notification updates it in place with an UPDATED event that reaches every
device in order and replays after a cursor as the same frame; lists show it on top; idempotency keys keep their
meaning; bad keys are refused with BAD_USER_INPUT and write nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests._client import WSClient, error_codes, gql, service_token, token, two_devices
from tests._server import ServerProcess
from tests.test_inbox import EVENTS, _frames

ROOT = Path(__file__).resolve().parent.parent
CREATE = (ROOT / "graphql" / "operations" / "CreateNotification.graphql").read_text()
LIST = "{ notifications(first: 20) { edges { node { id title collapsedCount } } unreadCount unseenCount feedCursor } }"
SEEN_ALL = "mutation { markAllNotificationsSeen { count } }"


def test_the_collapse_contract_names_are_present() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    for fragment in ("  collapseKey: String = null\n", "  collapseKey: String\n", "  collapsedCount: Int!\n",
                     "  updatedAt: DateTime\n", "  EXPIRED\n  UPDATED\n"):  # fmt: skip
        assert fragment in sdl, fragment


async def _create(url: str, user: str, title: str, **fields: Any) -> dict[str, Any]:
    body = await gql(
        url, CREATE, {"input": {"userId": user, "title": title, "message": "m", **fields}}, bearer=service_token()
    )
    assert "errors" not in body, body
    made: dict[str, Any] = body["data"]["createNotification"]
    return made


async def test_two_devices_see_a_collapse_update_in_place_in_order_and_a_resume_replays_it(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        alice = await _create(url, user, "Alice commented", collapseKey="post-1", category="comments")
        other = await _create(url, user, "Deploy finished")
        await gql(url, SEEN_ALL, bearer=me)
        two = await _create(url, user, "Alice and Bob commented", collapseKey="post-1", category="comments",
                            data={"who": ["alice", "bob"]}, idempotencyKey="comment-2")  # fmt: skip
        retried = await _create(url, user, "Alice and Bob commented", collapseKey="post-1", category="comments",
                                data={"who": ["alice", "bob"]}, idempotencyKey="comment-2")  # fmt: skip
        assert retried == two  # the same answer, not a second collapse
        three = await _create(url, user, "Alice and 2 others commented", collapseKey="post-1", category="comments")
        live = [await _frames(device, 5) for device in (phone, laptop)]
        await phone.assert_silent()
    assert live[0] == live[1]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    said = [(e["kind"], e["unreadCount"], e["unseenCount"], e["category"]) for e in events]
    assert said == [
        ("CREATED", 1, 1, "comments"), ("CREATED", 2, 2, None), ("ALL_SEEN", 2, 0, None),
        ("UPDATED", 2, 1, "comments"), ("UPDATED", 2, 1, "comments"),
    ]  # fmt: skip
    updated = [e["notification"] for e in events[3:]]
    assert [n["id"] for n in updated] == [alice["id"]] * 2 == [two["id"], three["id"]]
    assert [(n["title"], n["collapsedCount"], n["seen"], n["collapseKey"]) for n in updated] == [
        ("Alice and Bob commented", 1, False, "post-1"), ("Alice and 2 others commented", 2, False, "post-1"),
    ]  # fmt: skip
    assert updated[0]["data"] == {"who": ["alice", "bob"]} and updated[0]["updatedAt"]
    assert updated[1]["createdAt"] == alice["createdAt"]
    assert [n["sequence"] for n in updated] == [e["sequence"] for e in events[3:]]
    assert events[3]["categoryCounts"] == [{"category": "comments", "unreadCount": 1, "unseenCount": 1}]
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 5) == live[0]
        await resumed.assert_silent()
    # One row, on top; one unread, unseen again.
    page = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    assert [(edge["node"]["id"], edge["node"]["collapsedCount"]) for edge in page["edges"]] == [
        (alice["id"], 2), (other["id"], 0),
    ]  # fmt: skip
    assert (page["unreadCount"], page["unseenCount"]) == (2, 1)


async def test_bad_collapse_keys_are_refused_and_write_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    await _create(url, user, "first", collapseKey="k")
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    for key in ("", "k" * 201):
        body = await gql(
            url, CREATE, {"input": {"userId": user, "title": "t", "message": "m", "collapseKey": key}},
            bearer=service_token(),
        )  # fmt: skip
        assert error_codes(body) == ["BAD_USER_INPUT"], (key, body)
        assert body["errors"][0]["extensions"]["argument"] == "collapseKey"
    conflict = {"userId": user, "title": "t", "message": "m", "collapseKey": "k", "idempotencyKey": "i"}
    assert "errors" not in await gql(url, CREATE, {"input": conflict}, bearer=service_token())
    changed = await gql(url, CREATE, {"input": {**conflict, "title": "other"}}, bearer=service_token())
    assert error_codes(changed) == ["BAD_USER_INPUT"], changed
    assert changed["errors"][0]["extensions"]["argument"] == "idempotencyKey"
    user_made = await gql(url, CREATE, {"input": {**conflict, "idempotencyKey": None}}, bearer=me)
    assert error_codes(user_made) == ["FORBIDDEN"], user_made
    after = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    assert [edge["node"]["collapsedCount"] for edge in after["edges"]] == [1]
    assert len(after["edges"]) == len(before["edges"]) == 1
