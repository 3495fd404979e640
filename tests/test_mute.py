"""Mute end to end, on the embedded default and PostgreSQL + Redis.

setMutedCategories is a PREFERENCES event on every device, in order, replayed after a cursor as the same frame; a
notification in a muted category arrives read, seen, `muted` and uncounted; a user sets its own, a service anyone's;
bad input is refused with BAD_USER_INPUT and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests._client import WSClient, create, error_codes, gql, service_token, token, two_devices
from tests._server import ServerProcess
from tests.test_inbox import EVENTS, _frames

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "graphql" / "operations"
SET = (OPERATIONS / "SetMutedCategories.graphql").read_text()
MUTED = (OPERATIONS / "MutedCategories.graphql").read_text()
LIST = "{ notifications(first: 20) { edges { node { title read seen muted } } unreadCount unseenCount feedCursor } }"


def test_the_mute_contract_names_are_present() -> None:
    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    for fragment in ("setMutedCategories(categories: [String!]!, userId: ID = null): MutedCategoriesResult!",
                     "mutedCategories(userId: ID = null): [String!]!", "  muted: Boolean!\n",
                     "  mutedCategories: [String!]\n", "  UPDATED\n  PREFERENCES\n"):  # fmt: skip
        assert fragment in sdl, fragment


async def test_two_devices_see_preferences_and_muted_arrivals_in_order_and_a_resume_replays_them(
    server: ServerProcess, user: str
) -> None:
    url, me = server.graphql_url, token(user)
    async with two_devices(server, user, EVENTS) as (start, phone, laptop):
        body = await gql(url, SET, {"categories": ["social", "marketing", "social"]}, bearer=me)
        assert body["data"]["setMutedCategories"]["mutedCategories"] == ["marketing", "social"], body
        again = await gql(url, SET, {"categories": ["marketing", "social"]}, bearer=me)  # the same set: no event
        assert again["data"]["setMutedCategories"]["cursor"] == body["data"]["setMutedCategories"]["cursor"]
        await create(url, user, "quiet", category="social")
        await create(url, user, "loud", category="comments")
        # A service sets them for the user, without the user's token.
        cleared = await gql(url, SET, {"categories": [], "userId": user}, bearer=service_token())
        assert cleared["data"]["setMutedCategories"]["mutedCategories"] == [], cleared
        await create(url, user, "heard", category="social")
        live = [await _frames(device, 5) for device in (phone, laptop)]
        await phone.assert_silent()
    assert live[0] == live[1]
    events = [orjson.loads(text)["payload"]["data"]["notificationEvents"] for text in live[0]]
    said = [(e["kind"], e["unreadCount"], e["unseenCount"], e["mutedCategories"], e["categoryCounts"]) for e in events]
    assert said == [
        ("PREFERENCES", 0, 0, ["marketing", "social"], []),
        ("CREATED", 0, 0, None, []),
        ("CREATED", 1, 1, None, [{"category": "comments", "unreadCount": 1, "unseenCount": 1}]),
        ("PREFERENCES", 1, 1, [], []),
        ("CREATED", 2, 2, None, [{"category": "social", "unreadCount": 1, "unseenCount": 1}]),
    ]
    quiet = events[1]["notification"]
    assert (quiet["title"], quiet["read"], quiet["seen"], quiet["muted"]) == ("quiet", True, True, True)
    assert [e["notification"]["muted"] for e in events[2::2]] == [False, False]
    async with await WSClient.connected(server.ws_url, me) as resumed:
        await resumed.subscribe(EVENTS, {"after": start})
        assert await _frames(resumed, 5) == live[0]
        await resumed.assert_silent()
    page = (await gql(url, LIST, bearer=me))["data"]["notifications"]
    assert [(e["node"]["title"], e["node"]["muted"]) for e in page["edges"]] == [
        ("heard", False), ("loud", False), ("quiet", True),
    ]  # fmt: skip
    assert (page["unreadCount"], page["unseenCount"]) == (2, 2)


async def test_muted_categories_are_each_users_own_and_bad_ones_write_nothing(server: ServerProcess, user: str) -> None:
    url, me = server.graphql_url, token(user)
    assert "errors" not in await gql(url, SET, {"categories": ["social"]}, bearer=me)
    before = (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"]
    for categories in ([""], ["ok", "no spaces"], ["x" * 65], [f"c{n}" for n in range(101)]):
        body = await gql(url, SET, {"categories": categories}, bearer=me)
        assert error_codes(body) == ["BAD_USER_INPUT"], (categories, body)
        assert body["errors"][0]["extensions"]["argument"] == "categories"
    intruder = token(f"{user}-intruder")
    assert error_codes(await gql(url, SET, {"categories": [], "userId": user}, bearer=intruder)) == ["FORBIDDEN"]
    assert error_codes(await gql(url, MUTED, {"userId": user}, bearer=intruder)) == ["FORBIDDEN"]
    assert error_codes(await gql(url, SET, {"categories": []}, bearer=service_token())) == ["BAD_USER_INPUT"]
    assert (await gql(url, LIST, bearer=me))["data"]["notifications"]["feedCursor"] == before
    assert (await gql(url, MUTED, bearer=me))["data"] == {"mutedCategories": ["social"]}
    assert (await gql(url, MUTED, {"userId": user}, bearer=service_token()))["data"] == {"mutedCategories": ["social"]}
    assert (await gql(url, MUTED, bearer=intruder))["data"] == {"mutedCategories": []}
