"""End to end over a real server: delivery to every device, resume, RESYNC, ordering, idempotency."""

from __future__ import annotations

import asyncio
import base64
import contextlib

from tests._client import CREATE, WAIT, WSClient, create, gql, service_token, token
from tests._server import ServerProcess

LIST = """
query List($first: Int, $after: String, $filter: NotificationFilter, $userId: ID) {
  notifications(first: $first, after: $after, filter: $filter, userId: $userId) {
    edges { cursor node { id title read sequence } }
    pageInfo { hasNextPage endCursor }
    unreadCount
    feedCursor
  }
}"""
MARK_READ = "mutation($id: ID!) { markNotificationRead(id: $id) { id read readAt } }"
MARK_ALL = "mutation($upTo: String) { markAllNotificationsRead(upTo: $upTo) { count unreadCount cursor } }"
DELETE = "mutation($id: ID!) { deleteNotification(id: $id) }"


async def _feed_cursor(server: ServerProcess, user: str) -> str:
    """Where the user's feed stands: a subscription after it misses nothing, however late it gets going."""
    listing = (await gql(server.graphql_url, LIST, {"first": 1}, bearer=token(user)))["data"]["notifications"]
    cursor: str = listing["feedCursor"]
    return cursor


async def test_two_devices_both_receive_and_another_user_nothing(server: ServerProcess, user: str) -> None:
    async with (
        await WSClient.connected(server.ws_url, token(user)) as phone,
        await WSClient.connected(server.ws_url, token(user)) as laptop,
        await WSClient.connected(server.ws_url, token(user + "-else")) as stranger,
    ):
        after = {"after": await _feed_cursor(server, user)}
        stranger_after = {"after": await _feed_cursor(server, user + "-else")}
        ids = [await phone.subscribe(variables=after), await laptop.subscribe(variables=after)]
        ids.append(await stranger.subscribe(variables=stranger_after))
        first = await create(server.graphql_url, user, "first", type="WARNING", data={"url": "/orders/1"})
        second = await create(server.graphql_url, user, "second")
        for device, operation in ((phone, ids[0]), (laptop, ids[1])):
            events = await device.events(operation, 2)
            assert [e["kind"] for e in events] == ["CREATED", "CREATED"]
            assert [e["notification"]["id"] for e in events] == [first["id"], second["id"]]
            assert [e["unreadCount"] for e in events] == [1, 2]
            assert events[0]["notification"]["data"] == {"url": "/orders/1"}
            assert events[0]["notification"]["type"] == "WARNING"
        await stranger.assert_silent()


async def test_read_all_read_and_delete_reach_every_device(server: ServerProcess, user: str) -> None:
    async with (
        await WSClient.connected(server.ws_url, token(user)) as phone,
        await WSClient.connected(server.ws_url, token(user)) as laptop,
    ):
        listing = (await gql(server.graphql_url, LIST, bearer=token(user)))["data"]["notifications"]
        after = listing["feedCursor"]
        ops = [await phone.subscribe(variables={"after": after}), await laptop.subscribe(variables={"after": after})]
        a = await create(server.graphql_url, user, "a")
        b = await create(server.graphql_url, user, "b")
        c = await create(server.graphql_url, user, "c")
        read = await gql(server.graphql_url, MARK_READ, {"id": a["id"]}, bearer=token(user))
        assert read["data"]["markNotificationRead"]["read"] is True
        marked = await gql(server.graphql_url, MARK_ALL, {}, bearer=token(user))
        assert marked["data"]["markAllNotificationsRead"]["count"] == 2
        assert marked["data"]["markAllNotificationsRead"]["unreadCount"] == 0
        deleted = await gql(server.graphql_url, DELETE, {"id": c["id"]}, bearer=token(user))
        assert deleted["data"]["deleteNotification"] == c["id"]
        for device, operation in zip((phone, laptop), ops, strict=True):
            events = await device.events(operation, 6)
            assert [e["kind"] for e in events] == ["CREATED"] * 3 + ["READ", "ALL_READ", "DELETED"]
            assert [e["unreadCount"] for e in events] == [1, 2, 3, 2, 0, 0]
            assert events[3]["notification"]["id"] == a["id"] and events[3]["notification"]["read"] is True
            assert events[4]["notification"] is None and events[4]["count"] == 2
            assert events[4]["upToSequence"] == events[3]["sequence"]
            assert events[5]["notification"]["id"] == c["id"] and events[5]["notification"]["title"] == "c"
            assert b["id"] in {e["notification"]["id"] for e in events if e["notification"]}


async def test_resume_after_missing_events_gets_exactly_those_then_live(server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": await _feed_cursor(server, user)})
        await create(server.graphql_url, user, "seen")
        seen = await device.next_event(operation)
    missed = [await create(server.graphql_url, user, f"missed {i}") for i in range(4)]
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": seen["cursor"]})
        replayed = await device.events(operation, 4)
        assert [e["notification"]["id"] for e in replayed] == [n["id"] for n in missed]
        assert [e["sequence"] for e in replayed] == [seen["sequence"] + i for i in range(1, 5)]
        live = await create(server.graphql_url, user, "live")
        event = await device.next_event(operation)
        assert event["notification"]["id"] == live["id"] and event["sequence"] == seen["sequence"] + 5
        await device.assert_silent()


async def test_cursor_from_another_database_gets_resync_then_live(server: ServerProcess, user: str) -> None:
    await create(server.graphql_url, user, "before")
    foreign = base64.urlsafe_b64encode(b"f1:0123456789abcdef:1").decode().rstrip("=")
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": foreign})
        resync = await device.next_event(operation)
        assert resync["kind"] == "RESYNC" and resync["notification"] is None
        assert resync["unreadCount"] == 1 and resync["sequence"] == 1
        live = await create(server.graphql_url, user, "after")
        event = await device.next_event(operation)
        assert event["kind"] == "CREATED" and event["notification"]["id"] == live["id"]


async def test_query_then_subscribe_misses_nothing_while_creating(server: ServerProcess, user: str) -> None:
    total = 30

    halfway = asyncio.Event()

    async def producer() -> list[str]:
        made = []
        for i in range(total):
            made.append((await create(server.graphql_url, user, f"n{i}"))["id"])
            if len(made) == total // 3:
                halfway.set()  # the list is read while notifications are still being created
        return made

    creating = asyncio.create_task(producer())
    await halfway.wait()
    listing = (await gql(server.graphql_url, LIST, {"first": 100}, bearer=token(user)))["data"]["notifications"]
    listed = [edge["node"]["id"] for edge in listing["edges"]]
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": listing["feedCursor"]})
        created = await creating
        received = [e["notification"]["id"] for e in await device.events(operation, total - len(listed))]
        await device.assert_silent()
    assert sorted(listed + received) == sorted(created), "every notification exactly once: listed or delivered"
    assert not set(listed) & set(received)
    assert listing["unreadCount"] == len(listed)


async def test_fifty_concurrent_creates_arrive_in_order_and_replay_identically(
    server: ServerProcess, user: str
) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        start = (await gql(server.graphql_url, LIST, bearer=token(user)))["data"]["notifications"]["feedCursor"]
        operation = await device.subscribe(variables={"after": start})
        await asyncio.gather(*(create(server.graphql_url, user, f"n{i}") for i in range(50)))
        live = await device.events(operation, 50)
    sequences = [e["sequence"] for e in live]
    assert sequences == sorted(sequences) and len(set(sequences)) == 50
    assert [e["unreadCount"] for e in live] == list(range(1, 51))
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": start})
        replay = await device.events(operation, 50)
    assert replay == live


async def test_idempotent_create_returns_the_original_and_delivers_once(server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe(variables={"after": await _feed_cursor(server, user)})
        first = await create(server.graphql_url, user, "charged", idempotencyKey="invoice-7")
        again = await create(server.graphql_url, user, "charged", idempotencyKey="invoice-7")
        assert again == first
        event = await device.next_event(operation)
        assert event["notification"]["id"] == first["id"]
        await device.assert_silent()
    conflict = await gql(
        server.graphql_url,
        CREATE,
        {"input": {"userId": user, "title": "other", "message": "m", "idempotencyKey": "invoice-7"}},
        bearer=service_token(),
    )
    assert conflict["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    count = await gql(server.graphql_url, "{ unreadCount }", bearer=token(user))
    assert count["data"]["unreadCount"] == 1


async def test_pages_follow_end_cursor(server: ServerProcess, user: str) -> None:
    made = [await create(server.graphql_url, user, f"n{i}") for i in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(server.graphql_url, LIST, {"first": 2, "after": after}, bearer=token(user)))["data"]
        connection = page["notifications"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == [n["id"] for n in reversed(made)]


async def test_service_reads_any_user_with_user_id(server: ServerProcess, user: str) -> None:
    made = await create(server.graphql_url, user)
    query = "query($u: ID) { unreadCount(userId: $u) unreadNotifications(userId: $u) { id } }"
    body = await gql(server.graphql_url, query, {"u": user}, bearer=service_token())
    assert body["data"] == {"unreadCount": 1, "unreadNotifications": [{"id": made["id"]}]}


async def test_without_a_cursor_the_stream_starts_live_from_now(server: ServerProcess, user: str) -> None:
    """No `after`: nothing from before the subscription, then every event in order. When the subscription is live is
    the server's to say: probes are created until the first arrives, and from there nothing is missed."""
    before = await create(server.graphql_url, user, "before the subscription")
    async with await WSClient.connected(server.ws_url, token(user)) as device:
        operation = await device.subscribe()
        probes: list[str] = []
        async with asyncio.timeout(WAIT):
            while True:
                probes.append((await create(server.graphql_url, user, f"probe {len(probes)}"))["id"])
                with contextlib.suppress(TimeoutError):
                    first = await device.next_event(operation, timeout=0.1)
                    break
        assert first["notification"]["id"] in probes and first["notification"]["id"] != before["id"]
        unseen = probes[probes.index(first["notification"]["id"]) + 1 :]  # created after the first one delivered
        later = [(await create(server.graphql_url, user, f"after {i}"))["id"] for i in range(3)]
        rest = await device.events(operation, len(unseen) + len(later))
        assert [event["notification"]["id"] for event in rest] == unseen + later
        await device.assert_silent()
