"""Bulk delete end to end, on the embedded default and PostgreSQL + Redis.

deleteNotifications is one BULK_DELETED event naming what it deleted (a filter, up to a position) that reaches every
device in order and replays after a cursor as the same frame; it is bounded by TIDINGS_MAX_BULK_DELETE (the oldest go
first, `hasMore` says so); bad input is refused with BAD_USER_INPUT and deletes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests._client import WSClient, create, error_codes, gql, service_token, token, two_devices
from tests._server import ServerProcess
from tests.test_inbox import EVENTS, _frames

ROOT = Path(__file__).resolve().parent.parent
DELETE = (ROOT / "graphql" / "operations" / "DeleteNotifications.graphql").read_text()
LIST = """query { notifications(first: 20, filter: {archived: null}) {
  edges { node { title } } unreadCount unseenCount feedCursor } }"""
READ = "mutation($id: ID!) { markNotificationRead(id: $id) { id } }"


def test_the_bulk_delete_contract_names_are_present() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    for fragment in (
        "deleteNotifications(filter: DeleteNotificationsFilter!, upTo: String = null, userId: ID = null): "
        "DeleteNotificationsResult!",
        "  deleted: DeletedNotificationsFilter\n",
        "  PREFERENCES\n  BULK_DELETED\n",
    ):
        assert fragment in sdl, fragment


def _titles(body: dict[str, object]) -> list[str]:
    return [edge["node"]["title"] for edge in body["data"]["notifications"]["edges"]]  # type: ignore[index]


async def test_two_devices_see_one_bulk_deleted_event_in_order_and_a_resume_replays_it(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        old = await create(url, user, "old", category="comments")
        await create(url, user, "fresh", category="comments")
        await create(url, user, "bill", category="billing")
        await gql(url, READ, {"id": old["id"]}, bearer=me)
        looked = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
        await create(url, user, "later", category="comments")
        body = await gql(url, DELETE, {"filter": {"category": "comments"}, "upTo": looked}, bearer=me)
        assert body["data"]["deleteNotifications"] == {
            "count": 2, "hasMore": False, "unreadCount": 2, "unseenCount": 2,
            "cursor": body["data"]["deleteNotifications"]["cursor"],
        }  # fmt: skip
        nothing = await gql(url, DELETE, {"filter": {"read": True}}, bearer=me)  # the read one is gone: no event
        assert nothing["data"]["deleteNotifications"]["count"] == 0
        live = [await _frames(device, 6) for device in (phone, laptop)]
        await phone.assert_silent()
    assert live[0] == live[1]
    event = orjson.loads(live[0][-1])["payload"]["data"]["notificationEvents"]
    assert (event["kind"], event["count"], event["unreadCount"], event["unseenCount"]) == ("BULK_DELETED", 2, 2, 2)
    assert event["deleted"] == {"read": None, "archived": None, "category": "comments"}
    # The range ends at the last one deleted ("fresh"), not at the cursor: exactly what matched up to it went.
    assert event["upToSequence"] == orjson.loads(live[0][1])["payload"]["data"]["notificationEvents"]["sequence"]
    assert event["categoryCounts"] == [{"category": "comments", "unreadCount": 1, "unseenCount": 1}]
    assert event["notification"] is None and event["category"] is None
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 6) == live[0]
        await resumed.assert_silent()
    assert _titles(await gql(url, LIST, bearer=me)) == ["later", "bill"]


async def test_bad_bulk_deletes_are_refused_and_delete_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    await create(url, user, "keep", category="comments")
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    for variables, argument in (
        ({"filter": {"category": "no spaces"}}, "category"),
        ({"filter": {}, "upTo": "not-a-cursor"}, "upTo"),
    ):
        body = await gql(url, DELETE, variables, bearer=me)
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["argument"] == argument
    someone_else = "mutation($u: ID) { deleteNotifications(filter: {}, userId: $u) { count } }"
    assert error_codes(await gql(url, someone_else, {"u": user}, bearer=token(f"{user}-x"))) == ["FORBIDDEN"]
    assert error_codes(await gql(url, DELETE, {"filter": {}}, bearer=service_token())) == ["BAD_USER_INPUT"]
    after = await gql(url, LIST, bearer=me)
    assert after["data"]["notifications"]["feedCursor"] == before and _titles(after) == ["keep"]


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("bounded-delete"), {"TIDINGS_MAX_BULK_DELETE": "2"}).start()
    try:
        yield server
    finally:
        server.stop()


async def test_past_tidings_max_bulk_delete_the_oldest_go_and_has_more_says_so(
    bounded: ServerProcess, user: str
) -> None:
    url, me = bounded.graphql_url, token(user)
    for title in ("a", "b", "c"):
        await create(url, user, title)
    first = (await gql(url, DELETE, {"filter": {}}, bearer=me))["data"]["deleteNotifications"]
    assert (first["count"], first["hasMore"], first["unreadCount"]) == (2, True, 1)
    assert _titles(await gql(url, LIST, bearer=me)) == ["c"]
    last = (await gql(url, DELETE, {"filter": {}}, bearer=me))["data"]["deleteNotifications"]
    assert (last["count"], last["hasMore"], last["unreadCount"]) == (1, False, 0)
