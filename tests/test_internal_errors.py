"""An internal error end to end: every answer says only "Internal error" with INTERNAL_SERVER_ERROR (no SQL, no
traceback), the log has the traceback. Forced by a fault that is not an outage: tables dropped under a running
server, in a database of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests._client import CREATE, EVENTS, WAIT, WSClient, create, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env

MASKED = {"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
# The same subscription through the standard path (a fragment: graphql-core executes it) and the delivery fast path.
STANDARD_EVENTS = (
    "subscription($after: String) { notificationEvents(after: $after) { ...E } } "
    "fragment E on NotificationEvent { kind cursor unreadCount sequence notification { id title } }"
)
LEAKS = ("relation", "notification_events", "SELECT", "asyncpg", "sqlalchemy", "Traceback")


@pytest.fixture
async def database() -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase()
    await database.create()
    try:
        yield database
    finally:
        await database.drop()


def _assert_masked(text: str, errors: list[dict[str, Any]]) -> None:
    assert [{key: error[key] for key in ("message", "extensions")} for error in errors] == [MASKED], errors
    for leak in LEAKS:
        assert leak not in text, (leak, text)


async def test_an_internal_error_is_masked_in_every_answer_and_logged_with_its_traceback(
    tmp_path: Path, database: PostgresDatabase, user: str
) -> None:
    server = ServerProcess(tmp_path, scaled_env(database)).start()
    try:
        listed = await gql(server.graphql_url, "{ notifications { feedCursor } }", bearer=token(user))
        after = listed["data"]["notifications"]["feedCursor"]
        await create(server.graphql_url, user, "before the fault")  # a working server, until now
        conn = await asyncpg.connect(database.url)
        try:
            await conn.execute("DROP TABLE notification_events; DROP TABLE notifications CASCADE")
        finally:
            await conn.close()
        log_start = len(server.log())

        async with httpx.AsyncClient(timeout=WAIT) as http:
            requests = [
                ("{ notifications { edges { node { id } } } }", {}, token(user)),
                (CREATE, {"input": {"userId": user, "title": "t", "message": "m"}}, service_token()),  # the fast path
            ]
            for query, variables, bearer in requests:
                response = await http.post(
                    server.graphql_url,
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {bearer}"},
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["data"] is None
                _assert_masked(response.text, body["errors"])

        async with await WSClient.connected(server.ws_url, token(user)) as client:
            answers = {}
            for name, document in (("fast", EVENTS), ("standard", STANDARD_EVENTS)):
                await client.send(
                    {"id": name, "type": "subscribe", "payload": {"query": document, "variables": {"after": after}}}
                )
                messages = [await client.receive(), await client.receive()]
                assert [(message["id"], message["type"]) for message in messages] == [
                    (name, "next"),
                    (name, "complete"),
                ]
                _assert_masked(str(messages), messages[0]["payload"]["errors"])
                assert messages[0]["payload"]["data"] is None
                answers[name] = messages[0]["payload"]
            assert answers["fast"] == answers["standard"], "both delivery paths answer an internal error alike"
            await client.send({"type": "ping"})
            assert await client.receive() == {"type": "pong"}, "the socket stays open"

        log = server.log()[log_start:]
        assert log.count("Traceback (most recent call last)") >= 4, log  # one per answer above
        assert 'relation "notifications" does not exist' in log
        assert 'relation "notification_events" does not exist' in log
    finally:
        server.stop()
