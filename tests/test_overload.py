"""Past saturation a process says so at once: OVERLOADED with retryAfter and Retry-After, and nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests._client import CREATE, WAIT, error_codes, gql, service_token, token
from tests._server import PostgresDatabase, ServerProcess, scaled_env


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresDatabase]:
    with PostgresDatabase() as database:
        yield database


@pytest.fixture(scope="module")
def one_write_at_a_time(
    tmp_path_factory: pytest.TempPathFactory, database: PostgresDatabase
) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("overload")
    server = ServerProcess(workdir, scaled_env(database, TIDINGS_MAX_INFLIGHT_MUTATIONS="1")).start()
    try:
        yield server
    finally:
        server.stop()


async def _post(server: ServerProcess, user: str, title: str, accept: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {service_token()}"}
    if accept is not None:
        headers["accept"] = accept
    body = {"query": CREATE, "variables": {"input": {"userId": user, "title": title, "message": "m"}}}
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.post(server.graphql_url, json=body, headers=headers)


@pytest.mark.parametrize("accept", [None, "application/graphql-response+json, application/json;q=0.9"])
async def test_a_write_past_the_bound_is_answered_overloaded_and_writes_nothing(
    one_write_at_a_time: ServerProcess, database: PostgresDatabase, user: str, accept: str | None
) -> None:
    server = one_write_at_a_time
    await _post(server, user, "warm")  # the document is known: later requests take the HTTP fast path
    blocker = await asyncpg.connect(database.url)  # holds the user's feed row, so the next write stays in flight
    try:
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT 1 FROM user_feeds WHERE user_id = $1 FOR UPDATE", user)
        in_flight = asyncio.create_task(_post(server, user, "in flight"))
        await asyncio.sleep(0.5)
        refused = await _post(server, user, "refused", accept)
        assert not in_flight.done()
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
    assert error_codes(refused.json()) == ["OVERLOADED"], refused.text
    assert refused.json()["errors"][0]["extensions"]["retryAfter"] == 1
    assert refused.headers["retry-after"] == "1"
    assert (await in_flight).json()["data"]["createNotification"]["title"] == "in flight"
    listing = await gql(server.graphql_url, "{ notifications { edges { node { title } } } }", bearer=token(user))
    assert [edge["node"]["title"] for edge in listing["data"]["notifications"]["edges"]] == ["in flight", "warm"]
