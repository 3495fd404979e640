"""Snooze and expiry end to end, on the embedded default and PostgreSQL + Redis, and with two processes sharing one
database: the timer fires on the server (no client timer), every device sees SNOOZED, UNSNOOZED and EXPIRED in order,
a resume replays them as the same frames, and each timer fires once however many processes run it.

The times are a few seconds ahead and the tests wait for the events, not for the clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests._client import WAIT, WSClient, create, error_codes, gql, service_token, token, two_devices
from tests._server import PostgresDatabase, ServerProcess, scaled_env
from tests.test_inbox import _frames

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "graphql" / "operations"
EVENTS = (OPERATIONS / "NotificationEvents.graphql").read_text()
SNOOZE = (OPERATIONS / "SnoozeNotification.graphql").read_text()
UNSNOOZE = (OPERATIONS / "UnsnoozeNotification.graphql").read_text()
LIST = """
query($filter: NotificationFilter) {
  notifications(first: 20, filter: $filter) {
    edges { node { title read seen archived snoozed snoozedUntil expiresAt category } }
    unreadCount unseenCount feedCursor
  }
}"""
COUNTS = "{ unreadCount unseenCount categoryCounts { category unreadCount unseenCount } }"
CREATE = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id expiresAt } }"
TIMER_WAIT = WAIT * 3  # frames that wait for a timer a few seconds ahead, on a loaded machine


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _said(frames: list[str]) -> list[tuple[Any, ...]]:
    said = []
    for text in frames:
        event = orjson.loads(text)["payload"]["data"]["notificationEvents"]
        counts = [(c["category"], c["unreadCount"], c["unseenCount"]) for c in event["categoryCounts"]]
        said.append(
            (event["kind"], event["notification"]["message"], event["unreadCount"], event["unseenCount"], counts)
        )
    return said


def test_the_timer_contract_names_are_present() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    for fragment in (
        "snoozeNotification(id: ID!, until: DateTime!): Notification!",
        "unsnoozeNotification(id: ID!): Notification!",
        "  expiresAt: DateTime = null\n",
        "  snoozed: Boolean = false\n",
        "  snoozedUntil: DateTime\n",
        "  ALL_ARCHIVED\n  SNOOZED\n  UNSNOOZED\n  EXPIRED\n",
    ):
        assert fragment in sdl, fragment


async def _snooze(url: str, notification_id: str, until: str, bearer: str) -> dict[str, Any]:
    body = await gql(url, SNOOZE, {"id": notification_id, "until": until}, bearer=bearer)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["snoozeNotification"]
    return result


async def test_two_devices_see_a_snooze_return_and_an_expiry_in_order_and_a_resume_replays_them(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        # One origin for both times, so the snooze ends before the expiry however long the requests take.
        origin = datetime.now(UTC)
        until, expires = origin + timedelta(seconds=3), origin + timedelta(seconds=5)
        a = await create(url, user, "a", message="a", category="comments")
        await create(url, user, "b", message="b", expiresAt=expires.isoformat())
        await create(url, user, "c", message="c")
        snoozed = await _snooze(url, a["id"], until.isoformat(), me)
        assert snoozed == {"id": a["id"], "snoozed": True, "snoozedUntil": until.isoformat()}
        async with asyncio.timeout(TIMER_WAIT):
            live = await asyncio.gather(_frames(phone, 6), _frames(laptop, 6))
    assert live[0] == live[1]
    assert _said(live[0]) == [
        ("CREATED", "a", 1, 1, [("comments", 1, 1)]),
        ("CREATED", "b", 2, 2, []),
        ("CREATED", "c", 3, 3, []),
        ("SNOOZED", "a", 2, 2, [("comments", 0, 0)]),
        ("UNSNOOZED", "a", 3, 3, [("comments", 1, 1)]),
        ("EXPIRED", "b", 2, 2, []),
    ]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    back = events[4]["notification"]
    assert (back["read"], back["seen"], back["snoozed"], back["snoozedUntil"]) == (False, False, False, None)
    assert back["sequence"] == events[4]["sequence"]  # on top: at the position it came back at
    assert events[5]["notification"]["expiresAt"] == expires.isoformat()
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 6) == live[0]
        await resumed.assert_silent()

    page = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    assert [edge["node"]["title"] for edge in page["edges"]] == ["a", "c"]
    assert (page["unreadCount"], page["unseenCount"]) == (2, 2)
    everything = {"archived": None, "snoozed": None}
    assert [e["node"]["title"] for e in (await gql(url, LIST, {"filter": everything}, bearer=me))["data"][
        "notifications"]["edges"]] == ["a", "c"]  # fmt: skip
    assert (await gql(url, "query($id: ID!) { notification(id: $id) { id } }", {"id": a["id"]}, bearer=me))["data"][
        "notification"
    ] == {"id": a["id"]}


async def test_two_devices_see_an_unsnooze_as_the_timer_would_send_it_and_a_resume_replays_it(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        a = await create(url, user, "a", message="a", category="comments")
        await create(url, user, "b", message="b")
        await gql(url, "mutation($id: ID!) { markNotificationRead(id: $id) { id } }", {"id": a["id"]}, bearer=me)
        await _snooze(url, a["id"], _at(3600), me)
        body = await gql(url, UNSNOOZE, {"id": a["id"]}, bearer=me)
        back = body["data"]["unsnoozeNotification"]
        assert {key: back[key] for key in ("id", "read", "seen", "snoozed", "snoozedUntil")} == {
            "id": a["id"], "read": False, "seen": False, "snoozed": False, "snoozedUntil": None,
        }  # fmt: skip
        # Not snoozed any more: returned as it is, no event (the devices hear nothing more below).
        assert (await gql(url, UNSNOOZE, {"id": a["id"]}, bearer=service_token()))["data"][
            "unsnoozeNotification"] == back  # fmt: skip
        live = await asyncio.gather(_frames(phone, 5), _frames(laptop, 5))
        await phone.assert_silent(1.0)
    assert live[0] == live[1]
    assert _said(live[0]) == [
        ("CREATED", "a", 1, 1, [("comments", 1, 1)]),
        ("CREATED", "b", 2, 2, []),
        ("READ", "a", 1, 1, [("comments", 0, 0)]),
        ("SNOOZED", "a", 1, 1, []),
        ("UNSNOOZED", "a", 2, 2, [("comments", 1, 1)]),
    ]
    event = orjson.loads(live[0][4])["payload"]["data"]["notificationEvents"]
    assert back["sequence"] == event["sequence"] == event["notification"]["sequence"]  # on top
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 5) == live[0]
        await resumed.assert_silent()
    page = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    assert [edge["node"]["title"] for edge in page["edges"]] == ["a", "b"]
    assert (page["unreadCount"], page["unseenCount"]) == (2, 2)

    # Someone else's, not an id, a deleted one: refused, nothing written.
    before = page["feedCursor"]
    other = await gql(url, UNSNOOZE, {"id": a["id"]}, bearer=token(f"{user}-intruder"))
    assert error_codes(other) == ["NOT_FOUND"], other
    bad = await gql(url, UNSNOOZE, {"id": "nope"}, bearer=me)
    assert error_codes(bad) == ["BAD_USER_INPUT"] and bad["errors"][0]["extensions"]["argument"] == "id", bad
    assert error_codes(await gql(url, UNSNOOZE, {"id": a["id"]})) == ["UNAUTHENTICATED"]
    assert (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"] == before
    await gql(url, "mutation($id: ID!) { deleteNotification(id: $id) }", {"id": a["id"]}, bearer=me)
    assert error_codes(await gql(url, UNSNOOZE, {"id": a["id"]}, bearer=me)) == ["NOT_FOUND"]


async def test_a_snoozed_notification_is_only_in_the_snoozed_tab_and_counts_nothing_until_it_returns(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    a = await create(url, user, "a", category="comments")
    await create(url, user, "b", category="comments")
    later = _at(3600)
    await _snooze(url, a["id"], later, me)

    def titles(body: dict[str, Any]) -> list[str]:
        return [edge["node"]["title"] for edge in body["data"]["notifications"]["edges"]]

    inbox = await gql(url, LIST, bearer=me)
    assert titles(inbox) == ["b"] and inbox["data"]["notifications"]["unreadCount"] == 1
    tab = (await gql(url, LIST, {"filter": {"snoozed": True}}, bearer=me))["data"]["notifications"]["edges"]
    assert [(e["node"]["title"], e["node"]["snoozed"], e["node"]["snoozedUntil"]) for e in tab] == [("a", True, later)]
    counts = (await gql(url, COUNTS, bearer=me))["data"]
    assert counts == {
        "unreadCount": 1,
        "unseenCount": 1,
        "categoryCounts": [{"category": "comments", "unreadCount": 1, "unseenCount": 1}],
    }
    unread = await gql(url, "{ unreadNotifications { title } }", bearer=me)
    assert unread["data"]["unreadNotifications"] == [{"title": "b"}]
    # Bulk actions are for the inbox: the snoozed one stays unread and snoozed.
    assert (await gql(url, "mutation { markAllNotificationsRead { count } }", bearer=me))["data"][
        "markAllNotificationsRead"]["count"] == 1  # fmt: skip
    assert titles(await gql(url, LIST, {"filter": {"snoozed": True, "read": False}}, bearer=me)) == ["a"]
    # Archiving ends the snooze; snoozing an archived one takes it out of the archive.
    archive = "mutation($id: ID!) { archiveNotification(id: $id) { archived snoozed } }"
    body = await gql(url, archive, {"id": a["id"]}, bearer=me)
    assert body["data"]["archiveNotification"] == {"archived": True, "snoozed": False}
    assert (await _snooze(url, a["id"], later, me))["snoozed"] is True
    assert titles(await gql(url, LIST, {"filter": {"archived": True}}, bearer=me)) == []
    assert titles(await gql(url, LIST, {"filter": {"snoozed": True}}, bearer=me)) == ["a"]


async def test_bad_times_are_refused_and_write_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    made = await create(url, user, "mine")
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    refusals = {_at(-60): "in the future", _at(367 * 86400): "366 days", naive: "UTC offset"}
    for when, why in refusals.items():
        snoozed = await gql(url, SNOOZE, {"id": made["id"], "until": when}, bearer=me)
        assert error_codes(snoozed) == ["BAD_USER_INPUT"], (when, snoozed)
        assert snoozed["errors"][0]["extensions"]["argument"] == "until" and why in snoozed["errors"][0]["message"]
        created = await gql(
            url, CREATE, {"input": {"userId": user, "title": "t", "message": "m", "expiresAt": when}},
            bearer=service_token(),
        )  # fmt: skip
        assert error_codes(created) == ["BAD_USER_INPUT"], (when, created)
        assert created["errors"][0]["extensions"]["argument"] == "expiresAt" and why in created["errors"][0]["message"]
    assert (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"] == before
    # Someone else's, a deleted one, not an id.
    other = await gql(url, SNOOZE, {"id": made["id"], "until": _at(60)}, bearer=token(f"{user}-intruder"))
    assert error_codes(other) == ["NOT_FOUND"], other
    await gql(url, "mutation($id: ID!) { deleteNotification(id: $id) }", {"id": made["id"]}, bearer=me)
    assert error_codes(await gql(url, SNOOZE, {"id": made["id"], "until": _at(60)}, bearer=me)) == ["NOT_FOUND"]
    assert error_codes(await gql(url, SNOOZE, {"id": "nope", "until": _at(60)}, bearer=me)) == ["BAD_USER_INPUT"]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one PostgreSQL and Redis, each looking for due timers every tenth of a second."""
    workdir = tmp_path_factory.mktemp("two-timers")
    with PostgresDatabase() as database:
        env = scaled_env(database, TIDINGS_TIMER_INTERVAL="0.1")
        first = ServerProcess(workdir / "a", env).start()
        second = ServerProcess(workdir / "b", env).start()
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


async def test_two_processes_running_their_timers_fire_each_snooze_and_expiry_once(
    two_processes: tuple[ServerProcess, ServerProcess], user: str
) -> None:
    a, b = two_processes
    me = token(user)
    start = (await gql(a.graphql_url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    count = 16
    async with (
        await WSClient.connected(a.ws_url, me) as on_a,
        await WSClient.connected(b.ws_url, me) as on_b,
    ):
        for device in (on_a, on_b):
            await device.subscribe(EVENTS, {"after": start})
        snoozing = [await create((a, b)[index % 2].graphql_url, user, f"s{index}") for index in range(count // 2)]
        # One time for all, the requests at once, half through each process: both processes race for every timer.
        due = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        servers = [(a, b)[index % 2].graphql_url for index in range(count // 2)]
        expiring_input = {"userId": user, "title": "e", "message": "e", "expiresAt": due}
        results = await asyncio.gather(
            *(_snooze(via, made["id"], due, me) for via, made in zip(servers, snoozing, strict=True)),
            *(gql(via, CREATE, {"input": expiring_input}, bearer=service_token()) for via in servers),
        )
        snoozed = {made["id"] for made in snoozing}
        expiring = {body["data"]["createNotification"]["id"] for body in results[count // 2 :]}
        expected = count + len(snoozed) + count  # created, snoozed, then one timer event each
        async with asyncio.timeout(TIMER_WAIT):
            live = await asyncio.gather(_frames(on_a, expected), _frames(on_b, expected))
        await on_a.assert_silent(1.0)  # both processes kept looking meanwhile: nothing more
    assert live[0] == live[1]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    fired = Counter((event["kind"], event["notification"]["id"]) for event in events[-count:])
    assert fired == Counter({**{("UNSNOOZED", i): 1 for i in snoozed}, **{("EXPIRED", i): 1 for i in expiring}})
    assert [event["sequence"] for event in events] == list(range(1, expected + 1))
    assert (events[-1]["unreadCount"], events[-1]["unseenCount"]) == (len(snoozed), len(snoozed))
    async with await WSClient.connected(b.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, expected) == live[0]
        await resumed.assert_silent()
