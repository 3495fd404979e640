"""Seen vs read, unread again, archive and categories end to end, on the embedded default and PostgreSQL + Redis.

Every new change is an event that reaches every device of the user in order and replays after a cursor as the same
frame; lists, filters and counts follow; bad input is refused with BAD_USER_INPUT and writes nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from tests._client import WAIT, WSClient, create, error_codes, gql, service_token, token, two_devices
from tests._node import NodeScript, node_env
from tests._server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "graphql" / "schema.graphql"
EVENTS = (ROOT / "graphql" / "operations" / "NotificationEvents.graphql").read_text()

LIST = """
query($filter: NotificationFilter) {
  notifications(first: 20, filter: $filter) {
    edges { node { title read seen archived category } } unreadCount unseenCount feedCursor
  }
}"""
COUNTS = """
query($category: String) {
  unreadCount unseenCount
  tabUnread: unreadCount(category: $category) tabUnseen: unseenCount(category: $category)
  categoryCounts { category unreadCount unseenCount }
}"""
ONE = {
    action: f"mutation($id: ID!) {{ {action}(id: $id) {{ id read seen archived }} }}"
    for action in ("markNotificationRead", "markNotificationUnread", "archiveNotification", "unarchiveNotification")
}
SEEN_ALL = "mutation($upTo: String) { markAllNotificationsSeen(upTo: $upTo) { count unseenCount cursor } }"
ARCHIVE_READ = "mutation($upTo: String) { archiveAllRead(upTo: $upTo) { count unreadCount unseenCount cursor } }"


def test_the_inbox_contract_names_are_present() -> None:
    sdl = SCHEMA_FILE.read_text()
    for fragment in (
        "markAllNotificationsSeen(userId: ID = null, upTo: String = null): MarkAllSeenResult!",
        "markNotificationUnread(id: ID!): Notification!",
        "archiveNotification(id: ID!): Notification!",
        "unarchiveNotification(id: ID!): Notification!",
        "archiveAllRead(userId: ID = null, upTo: String = null): ArchiveAllResult!",
        "unreadCount(userId: ID = null, category: String = null): Int!",
        "unseenCount(userId: ID = null, category: String = null): Int!",
        "categoryCounts(userId: ID = null): [CategoryCount!]!",
        "  archived: Boolean = false\n",
        "  category: String = null\n",
        "  seen: Boolean!\n",
        "  seenAt: DateTime\n",
        "  unseenCount: Int!\n",
        "  RESYNC\n  ALL_SEEN\n  UNREAD\n  ARCHIVED\n  UNARCHIVED\n  ALL_ARCHIVED\n",
    ):
        assert fragment in sdl, fragment


async def _frames(client: WSClient, count: int) -> list[str]:
    """The next `count` frames other than pings, as the text the server sent."""
    frames: list[str] = []
    async with asyncio.timeout(WAIT * 2):
        while len(frames) < count:
            text = await client.conn.recv()
            assert isinstance(text, str)
            if orjson.loads(text)["type"] == "ping":
                await client.send({"type": "pong"})
                continue
            frames.append(text)
    return frames


async def _one(url: str, action: str, notification_id: str, bearer: str) -> dict[str, Any]:
    body = await gql(url, ONE[action], {"id": notification_id}, bearer=bearer)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"][action]
    return result


Said = tuple[str, int, int, str | None, int | None, list[tuple[str, int, int]]]


async def _make_inbox_events(url: str, user: str) -> list[Said]:
    """Every new kind of event, and what each must say: (kind, unreadCount, unseenCount, category, count,
    categoryCounts)."""
    me = token(user)
    a = await create(url, user, "a", category="comments")
    b = await create(url, user, "b", category="comments")
    c = await create(url, user, "c", category="billing")
    await create(url, user, "d")
    looked = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    e = await create(url, user, "e", category="comments")
    seen = (await gql(url, SEEN_ALL, {"upTo": looked}, bearer=me))["data"]["markAllNotificationsSeen"]
    assert (seen["count"], seen["unseenCount"]) == (4, 1)  # e arrived after the user looked
    assert (await _one(url, "markNotificationRead", a["id"], me))["seen"] is True
    unread_again = await _one(url, "markNotificationUnread", a["id"], me)
    assert unread_again == {"id": a["id"], "read": False, "seen": True, "archived": False}
    await _one(url, "markNotificationRead", a["id"], me)
    await _one(url, "markNotificationRead", c["id"], me)
    assert (await _one(url, "archiveNotification", b["id"], me))["archived"] is True
    assert (await _one(url, "unarchiveNotification", b["id"], me))["archived"] is False
    archived = (await gql(url, ARCHIVE_READ, bearer=me))["data"]["archiveAllRead"]
    assert (archived["count"], archived["unreadCount"], archived["unseenCount"]) == (2, 3, 1)
    await _one(url, "archiveNotification", e["id"], me)
    return [
        ("CREATED", 1, 1, "comments", None, [("comments", 1, 1)]),
        ("CREATED", 2, 2, "comments", None, [("comments", 2, 2)]),
        ("CREATED", 3, 3, "billing", None, [("billing", 1, 1)]),
        ("CREATED", 4, 4, None, None, []),
        ("CREATED", 5, 5, "comments", None, [("comments", 3, 3)]),
        ("ALL_SEEN", 5, 1, None, 4, [("billing", 1, 0), ("comments", 3, 1)]),
        ("READ", 4, 1, "comments", None, [("comments", 2, 1)]),
        ("UNREAD", 5, 1, "comments", None, [("comments", 3, 1)]),
        ("READ", 4, 1, "comments", None, [("comments", 2, 1)]),
        ("READ", 3, 1, "billing", None, [("billing", 0, 0)]),
        ("ARCHIVED", 2, 1, "comments", None, [("comments", 1, 1)]),
        ("UNARCHIVED", 3, 1, "comments", None, [("comments", 2, 1)]),
        ("ALL_ARCHIVED", 3, 1, None, 2, []),
        ("ARCHIVED", 2, 0, "comments", None, [("comments", 1, 0)]),
    ]


async def test_two_devices_see_every_inbox_event_in_order_and_a_resume_replays_the_same_frames(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        expected = await _make_inbox_events(url, user)
        live = await asyncio.gather(_frames(phone, len(expected)), _frames(laptop, len(expected)))
    assert live[0] == live[1]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    said = [
        (e["kind"], e["unreadCount"], e["unseenCount"], e["category"], e["count"],
         [(c["category"], c["unreadCount"], c["unseenCount"]) for c in e["categoryCounts"]])
        for e in events
    ]  # fmt: skip
    assert said == expected
    assert [e["sequence"] for e in events] == list(range(events[0]["sequence"], events[0]["sequence"] + len(events)))
    unread_again = events[7]["notification"]
    assert (unread_again["read"], unread_again["seen"], unread_again["archived"]) == (False, True, False)
    assert events[10]["notification"]["archived"] is True and events[10]["notification"]["archivedAt"]
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, len(expected)) == live[0]
        await resumed.assert_silent()

    # Lists and counts agree with the last event: archived ones left out by default and not counted.
    def titles(body: dict[str, Any]) -> list[str]:
        return [edge["node"]["title"] for edge in body["data"]["notifications"]["edges"]]

    inbox = await gql(url, LIST, bearer=me)
    assert titles(inbox) == ["d", "b"]
    assert (inbox["data"]["notifications"]["unreadCount"], inbox["data"]["notifications"]["unseenCount"]) == (2, 0)
    assert titles(await gql(url, LIST, {"filter": {"archived": True}}, bearer=me)) == ["e", "c", "a"]
    assert titles(await gql(url, LIST, {"filter": {"archived": None}}, bearer=me)) == ["e", "d", "c", "b", "a"]
    assert titles(await gql(url, LIST, {"filter": {"category": "comments"}}, bearer=me)) == ["b"]
    both = {"category": "comments", "archived": None, "read": True}
    assert titles(await gql(url, LIST, {"filter": both}, bearer=me)) == ["a"]
    counts = (await gql(url, COUNTS, {"category": "comments"}, bearer=me))["data"]
    assert (counts["unreadCount"], counts["unseenCount"], counts["tabUnread"], counts["tabUnseen"]) == (2, 0, 1, 0)
    assert counts["categoryCounts"] == [
        {"category": "billing", "unreadCount": 0, "unseenCount": 0},
        {"category": "comments", "unreadCount": 1, "unseenCount": 0},
    ]
    unknown = (await gql(url, COUNTS, {"category": "never-used"}, bearer=me))["data"]
    assert (unknown["tabUnread"], unknown["tabUnseen"]) == (0, 0)


async def test_changes_that_change_nothing_make_no_event(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    made = await create(url, user, "once", category="comments")
    page = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    async with await WSClient.connected(server.ws_url, me) as device:
        operation = await device.subscribe(EVENTS, {"after": page["feedCursor"]})
        await _one(url, "markNotificationUnread", made["id"], me)  # unread already
        await _one(url, "unarchiveNotification", made["id"], me)  # not archived
        assert (await gql(url, ARCHIVE_READ, bearer=me))["data"]["archiveAllRead"]["cursor"] == page["feedCursor"]
        await _one(url, "archiveNotification", made["id"], me)
        await _one(url, "archiveNotification", made["id"], me)  # archived already
        seen = (await gql(url, SEEN_ALL, bearer=me))["data"]["markAllNotificationsSeen"]
        assert seen["count"] == 0  # the only unseen one is archived: not in the inbox
        assert [(await device.next_event(operation))["kind"]] == ["ARCHIVED"]
        await device.assert_silent()


async def test_bad_categories_are_refused_and_write_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    mutation = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }"
    for category in ("", " comments", "com ments", "ünïcode", "a" * 65, "-dash-first", "new\nline", "tab\t"):
        body = await gql(
            url,
            mutation,
            {"input": {"userId": user, "title": "t", "message": "m", "category": category}},
            bearer=service_token(),
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], (category, body)
        assert body["errors"][0]["extensions"]["argument"] == "category"
        assert "64" in body["errors"][0]["message"]
        listed = await gql(url, LIST, {"filter": {"category": category}}, bearer=me)
        assert error_codes(listed) == ["BAD_USER_INPUT"], (category, listed)
        counted = await gql(url, COUNTS, {"category": category}, bearer=me)
        assert set(error_codes(counted)) == {"BAD_USER_INPUT"}, (category, counted)
    assert (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"] == before
    made = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { category } }"
    for category in ("a", "a" * 64, "billing.invoices", "team:42/mentions", "Build_Results-2"):
        body = await gql(
            url,
            made,
            {"input": {"userId": user, "title": "t", "message": "m", "category": category}},
            bearer=service_token(),
        )
        assert body == {"data": {"createNotification": {"category": category}}}


async def test_someone_elses_notification_cannot_be_archived_or_marked_unread(server: ServerProcess, user: str) -> None:
    url = server.graphql_url
    made = await create(url, user, "mine", category="comments")
    intruder = token(f"{user}-intruder")
    for action in ONE:
        body = await gql(url, ONE[action], {"id": made["id"]}, bearer=intruder)
        assert error_codes(body) == ["NOT_FOUND"], (action, body)
        bad = await gql(url, ONE[action], {"id": "not-an-id"}, bearer=intruder)
        assert error_codes(bad) == ["BAD_USER_INPUT"], (action, bad)
    for bulk in (SEEN_ALL, ARCHIVE_READ):
        someone_else = bulk.replace("($upTo: String)", "($u: ID)").replace("upTo: $upTo", "userId: $u")
        body = await gql(url, someone_else, {"u": user}, bearer=intruder)
        assert error_codes(body) == ["FORBIDDEN"], body
        foreign = await gql(url, bulk, {"upTo": "not-a-cursor"}, bearer=intruder)
        assert error_codes(foreign) == ["BAD_USER_INPUT"], foreign
    # A service acts on any user's notification, and on any user's inbox with userId.
    assert (await _one(url, "archiveNotification", made["id"], service_token()))["archived"] is True
    tabs = "query($u: ID) { categoryCounts(userId: $u) { category unreadCount } }"
    counts = await gql(url, tabs, {"u": user}, bearer=service_token())
    assert counts["data"]["categoryCounts"] == [{"category": "comments", "unreadCount": 0}]


def test_graphql_ws_runs_the_documented_inbox_operations_on_two_devices(server: ServerProcess, user: str) -> None:
    with NodeScript("inbox.test.mjs", node_env(server, user)) as script:
        script.finish(tests=4)
