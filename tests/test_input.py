"""Bad input gets BAD_USER_INPUT with nothing written, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests._client import CREATE, EVENTS, WSClient, create, error_codes, gql, service_token, token
from tests._server import ServerProcess

_VALID: dict[str, Any] = {"title": "t", "message": "m"}


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "   "},
        {"title": "x" * 201},
        {"message": "x" * 10_001},
        {"data": [1, 2]},
        {"data": "text"},
        {"data": {"blob": "x" * 16_400}},
        {"idempotencyKey": "k" * 201},
        {"idempotencyKey": ""},
        # NUL is valid GraphQL and JSON but no PostgreSQL text or jsonb holds it: refused on every backend alike.
        {"title": "a\u0000b"},
        {"message": "\u0000"},
        {"data": {"k": "v\u0000"}},
        {"data": {"k\u0000": 1}},
        {"data": {"k": [{"deep": ["\u0000"]}]}},
        {"idempotencyKey": "k\u0000"},
        {"collapseKey": "\u0000"},
        {"userId": "u\u0000"},
    ],
    ids=[
        "blank-title",
        "long-title",
        "long-message",
        "data-list",
        "data-string",
        "data-large",
        "long-key",
        "empty-key",
        "nul-title",
        "nul-message",
        "nul-data-value",
        "nul-data-key",
        "nul-data-deep",
        "nul-key",
        "nul-collapse-key",
        "nul-user",
    ],
)
async def test_bad_create_input_writes_nothing(server: ServerProcess, user: str, fields: dict[str, Any]) -> None:
    variables = {"input": {"userId": user, **_VALID, **fields}}
    body = await gql(server.graphql_url, CREATE, variables, bearer=service_token())
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    count = await gql(
        server.graphql_url, "{ unreadCount notifications { feedCursor edges { cursor } } }", bearer=token(user)
    )
    assert count["data"]["unreadCount"] == 0 and count["data"]["notifications"]["edges"] == []


async def test_limits_at_the_edge_are_accepted(server: ServerProcess, user: str) -> None:
    made = await create(
        server.graphql_url, user, "x" * 200, message="y" * 10_000, data={"k": "v" * 16_000}, idempotencyKey="k" * 200
    )
    assert len(made["title"]) == 200


async def test_an_escaped_nul_is_just_text(server: ServerProcess, user: str) -> None:
    """A backslash followed by u0000 is six characters of text, not NUL: stored and returned as sent."""
    made = await create(server.graphql_url, user, "\\u0000", message="\\u0000", data={"k\\u0000": "\\\\u0000"})
    assert (made["title"], made["message"], made["data"]) == ("\\u0000", "\\u0000", {"k\\u0000": "\\\\u0000"})


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_page_size_out_of_range(server: ServerProcess, user: str, first: int) -> None:
    for query in (
        "query($f: Int) { notifications(first: $f) { feedCursor } }",
        "query($f: Int) { unreadNotifications(first: $f) { id } }",
    ):
        body = await gql(server.graphql_url, query, {"f": first}, bearer=token(user))
        assert error_codes(body) == ["BAD_USER_INPUT"], body


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "'; drop table notifications; --", "x" * 500])
async def test_malformed_ids_and_cursors(server: ServerProcess, user: str, bad: str) -> None:
    for mutation in (
        "mutation($v: ID!) { markNotificationRead(id: $v) { id } }",
        "mutation($v: ID!) { deleteNotification(id: $v) }",
    ):
        body = await gql(server.graphql_url, mutation, {"v": bad}, bearer=token(user))
        assert error_codes(body) == ["BAD_USER_INPUT"], body
    one = await gql(
        server.graphql_url, "query($v: ID!) { notification(id: $v) { id } }", {"v": bad}, bearer=token(user)
    )
    assert one == {"data": {"notification": None}}
    page = await gql(
        server.graphql_url,
        "query($v: String) { notifications(after: $v) { feedCursor } }",
        {"v": bad},
        bearer=token(user),
    )
    assert error_codes(page) == ["BAD_USER_INPUT"], page
    mark_all = await gql(
        server.graphql_url,
        "mutation($v: String) { markAllNotificationsRead(upTo: $v) { count } }",
        {"v": bad},
        bearer=token(user),
    )
    assert error_codes(mark_all) == ["BAD_USER_INPUT"], mark_all
    async with await WSClient.connected(server.ws_url, token(user)) as client:
        await client.subscribe(EVENTS, {"after": bad})
        message = await client.receive()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_page_cursor_is_not_a_feed_cursor(server: ServerProcess, user: str) -> None:
    await create(server.graphql_url, user)
    await create(server.graphql_url, user)
    page = await gql(
        server.graphql_url, "{ notifications(first: 1) { pageInfo { endCursor } feedCursor } }", bearer=token(user)
    )
    end_cursor = page["data"]["notifications"]["pageInfo"]["endCursor"]
    feed_cursor = page["data"]["notifications"]["feedCursor"]
    wrong = await gql(
        server.graphql_url,
        "query($v: String) { notifications(after: $v) { feedCursor } }",
        {"v": feed_cursor},
        bearer=token(user),
    )
    assert error_codes(wrong) == ["BAD_USER_INPUT"]
    async with await WSClient.connected(server.ws_url, token(user)) as client:
        await client.subscribe(EVENTS, {"after": end_cursor})
        message = await client.receive()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_graphql_syntax_errors_are_answered_not_crashed(server: ServerProcess, user: str) -> None:
    body = await gql(server.graphql_url, "{ notifications(", bearer=token(user))
    assert body["errors"] and body.get("data") is None
    unknown = await gql(server.graphql_url, "{ nope }", bearer=token(user))
    assert "Cannot query field" in unknown["errors"][0]["message"]
