"""Identity and authorization rules, over real HTTP and a real WebSocket."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests._client import CREATE, EVENTS, WAIT, WSClient, create, error_codes, gql, service_token, token
from tests._server import TEST_SECRET, ServerProcess

MARK_READ = "mutation($id: ID!) { markNotificationRead(id: $id) { id } }"
DELETE = "mutation($id: ID!) { deleteNotification(id: $id) }"
ONE = "query($id: ID!) { notification(id: $id) { id } }"


async def _close_code(client: WSClient) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


EXPIRED = jwt.encode({"sub": "u", "exp": 1}, TEST_SECRET, algorithm="HS256")
FORGED = jwt.encode(
    {"sub": "u", "exp": 4_000_000_000}, "not-the-secret-but-just-as-long-as-it-0123456789", algorithm="HS256"
)
UNSIGNED = jwt.encode({"sub": "u", "exp": 4_000_000_000}, None, algorithm="none")
NO_EXPIRY = jwt.encode({"sub": "u"}, TEST_SECRET, algorithm="HS256")  # signed by the server's secret: only exp lacks
# Signed by the server's secret, with a subject no database stores: NUL, or half of a surrogate pair (JSON allows it).
NUL_SUBJECT = jwt.encode({"sub": "u\u0000v", "exp": 4_000_000_000}, TEST_SECRET, algorithm="HS256")
SURROGATE_SUBJECT = jwt.encode({"sub": "u\ud800", "exp": 4_000_000_000}, TEST_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("bearer", "message", "logged"),
    [
        (None, "A valid bearer token is required", None),
        ("garbage", "A valid bearer token is required", "malformed"),
        (EXPIRED, "The bearer token has expired", "expired"),
        (FORGED, "A valid bearer token is required", "bad signature"),
        (UNSIGNED, "A valid bearer token is required", "algorithm not allowed"),
        (NO_EXPIRY, "A valid bearer token is required", "the exp claim is missing"),
        (NUL_SUBJECT, "A valid bearer token is required", "sub is not a user id"),
        (SURROGATE_SUBJECT, "A valid bearer token is required", "sub is not a user id"),
    ],
)
async def test_http_without_a_valid_token_is_unauthenticated_and_says_only_expired(
    server: ServerProcess, bearer: str | None, message: str, logged: str | None
) -> None:
    body = await gql(server.graphql_url, "{ unreadCount }", bearer=bearer)
    assert error_codes(body) == ["UNAUTHENTICATED"], (bearer, body)
    assert body["errors"][0]["message"] == message
    log = server.log()  # written before the answer
    if logged is not None:
        assert f"INFO tidings: auth: refused the token of an HTTP request: {logged}\n" in log
        assert bearer is not None and bearer not in log, "the token itself is never logged"


@pytest.mark.parametrize(
    ("payload", "reason", "logged"),
    [
        ({}, "Forbidden", "no token"),
        ({"authorization": "Bearer nope"}, "Forbidden", "malformed"),
        ({"authorization": f"Bearer {FORGED}"}, "Forbidden", "bad signature"),
        ({"authorization": EXPIRED}, "Token expired", "expired"),
        ({"authorization": f"Bearer {NO_EXPIRY}"}, "Forbidden", "the exp claim is missing"),
    ],
)
async def test_websocket_without_a_valid_token_is_closed_4403_naming_only_expiry(
    server: ServerProcess,
    payload: dict,  # type: ignore[type-arg]
    reason: str,
    logged: str,
) -> None:
    client = await WSClient.open(server.ws_url)
    try:
        await client.send({"type": "connection_init", "payload": payload})
        assert await _close_code(client) == (4403, reason)
    finally:
        await client.close()
    assert f"INFO tidings: auth: refused the token of a WebSocket's connection_init: {logged}\n" in server.log()
    for refused in (FORGED, EXPIRED, NO_EXPIRY):
        assert refused not in server.log()


@pytest.mark.parametrize("parameter", ["token", "authorization", "access_token"])
async def test_a_token_in_the_url_is_never_accepted(server: ServerProcess, user: str, parameter: str) -> None:
    """URLs end up in logs and browser histories: a valid token there counts for nothing, on HTTP and WebSocket."""
    valid = token(user)
    query = "{ unreadCount }"
    headers = {"Accept": "application/graphql-response+json"}
    async with httpx.AsyncClient(timeout=WAIT) as http:
        accepted = await http.post(
            server.graphql_url, json={"query": query}, headers={"Authorization": f"Bearer {valid}"}
        )
        assert accepted.json() == {"data": {"unreadCount": 0}}  # positive control: the same token, in its header
        for value in (valid, f"Bearer {valid}"):
            answers = [
                await http.get(server.graphql_url, params={"query": query, parameter: value}, headers=headers),
                await http.post(server.graphql_url, params={parameter: value}, json={"query": query}, headers=headers),
            ]
            for answer in answers:
                assert error_codes(answer.json()) == ["UNAUTHENTICATED"], (answer.request.url, answer.text)
    for value in (valid, f"Bearer {valid}"):
        client = await WSClient.open(f"{server.ws_url}?{urlencode({parameter: value})}")
        try:
            await client.send({"type": "connection_init"})
            assert await _close_code(client) == (4403, "Forbidden")
        finally:
            await client.close()


async def test_websocket_token_key_is_case_insensitive_and_prefix_optional(server: ServerProcess, user: str) -> None:
    payloads = (
        {"Authorization": f"Bearer {token(user)}"},
        {"AUTHORIZATION": token(user)},
        {"headers": {"authorization": f"bearer {token(user)}"}},
    )
    for payload in payloads:
        async with await WSClient.open(server.ws_url) as client:
            await client.send({"type": "connection_init", "payload": payload})
            assert (await client.receive())["type"] == "connection_ack"


async def test_legacy_subprotocol_is_refused(server: ServerProcess) -> None:
    async with await WSClient.open(server.ws_url, subprotocols=["graphql-ws"]) as client:
        code, _ = await _close_code(client)
    assert code == 4406


async def test_only_a_service_may_create(server: ServerProcess, user: str) -> None:
    variables = {"input": {"userId": user, "title": "t", "message": "m"}}
    body = await gql(server.graphql_url, CREATE, variables, bearer=token(user))
    assert error_codes(body) == ["FORBIDDEN"]
    count = await gql(server.graphql_url, "{ unreadCount }", bearer=token(user))
    assert count["data"]["unreadCount"] == 0


async def test_user_may_not_name_another_user(server: ServerProcess, user: str) -> None:
    victim = user + "-victim"
    await create(server.graphql_url, victim, "private")
    queries = [
        ("query($u: ID) { notifications(userId: $u) { unreadCount } }", {"u": victim}),
        ("query($u: ID) { unreadNotifications(userId: $u) { id } }", {"u": victim}),
        ("query($u: ID) { unreadCount(userId: $u) }", {"u": victim}),
        ("mutation($u: ID) { markAllNotificationsRead(userId: $u) { count } }", {"u": victim}),
    ]
    for query, variables in queries:
        body = await gql(server.graphql_url, query, variables, bearer=token(user))
        assert error_codes(body) == ["FORBIDDEN"], (query, body)
    own = await gql(server.graphql_url, "query($u: ID) { unreadCount(userId: $u) }", {"u": user}, bearer=token(user))
    assert own["data"]["unreadCount"] == 0
    victim_count = await gql(server.graphql_url, "{ unreadCount }", bearer=token(victim))
    assert victim_count["data"]["unreadCount"] == 1


async def test_service_must_name_the_user(server: ServerProcess) -> None:
    for query in (
        "{ unreadCount }",
        "{ notifications { feedCursor } }",
        "mutation { markAllNotificationsRead { count } }",
    ):
        body = await gql(server.graphql_url, query, bearer=service_token())
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)


async def test_someone_elses_notification_looks_absent(server: ServerProcess, user: str) -> None:
    victim = user + "-victim"
    theirs = await create(server.graphql_url, victim, "private")
    absent = "00000000-0000-4000-8000-000000000000"
    for notification_id in (theirs["id"], absent):
        for mutation in (MARK_READ, DELETE):
            body = await gql(server.graphql_url, mutation, {"id": notification_id}, bearer=token(user))
            assert error_codes(body) == ["NOT_FOUND"], body
        one = await gql(server.graphql_url, ONE, {"id": notification_id}, bearer=token(user))
        assert one == {"data": {"notification": None}}
    still = await gql(server.graphql_url, ONE, {"id": theirs["id"]}, bearer=token(victim))
    assert still["data"]["notification"]["id"] == theirs["id"]
    assert (await gql(server.graphql_url, "{ unreadCount }", bearer=token(victim)))["data"]["unreadCount"] == 1


async def test_refused_subscription_is_an_error_message_with_a_code(server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(server.ws_url, token(user)) as client:
        operation = await client.subscribe(EVENTS, {"userId": user + "-victim"})
        message = await client.receive()
        assert message["type"] == "error" and message["id"] == operation, message
        assert message["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        operation = await client.subscribe(EVENTS, {"after": "not-a-cursor"})
        message = await client.receive()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    async with await WSClient.connected(server.ws_url, service_token()) as backend:
        await backend.subscribe(EVENTS, {})
        message = await backend.receive()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_service_subscribes_for_a_named_user(server: ServerProcess, user: str) -> None:
    async with await WSClient.connected(server.ws_url, service_token()) as backend:
        start = await gql(
            server.graphql_url,
            "query($u: ID) { notifications(userId: $u) { feedCursor } }",
            {"u": user},
            bearer=service_token(),
        )
        operation = await backend.subscribe(
            EVENTS, {"userId": user, "after": start["data"]["notifications"]["feedCursor"]}
        )
        made = await create(server.graphql_url, user)
        event = await backend.next_event(operation)
        assert event["notification"]["id"] == made["id"]


def test_minted_tokens_carry_role_and_expiry() -> None:
    claims = jwt.decode(token("alice", service=True, ttl=timedelta(minutes=5)), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["role"] == "service" and claims["exp"] - claims["iat"] == 300


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verified tokens are remembered; expiry (with the leeway) is checked on every use all the same."""
    import time

    from tidings import auth
    from tidings.config import Settings

    verifier = auth.TokenVerifier(Settings(jwt_secret=TEST_SECRET, jwt_leeway=0), TEST_SECRET)
    short = verifier.mint("alice", ttl=timedelta(seconds=1))
    assert verifier.verify(short).subject == "alice"
    assert verifier.verify(short).subject == "alice"  # from the cache
    time.sleep(1.1)
    with pytest.raises(auth.InvalidToken):
        verifier.verify(short)
    with pytest.raises(auth.InvalidToken):
        verifier.verify(short[:-4] + ("AAAA" if not short.endswith("AAAA") else "BBBB"))
