"""Introspection is on for the embedded default (GraphiQL's docs on a developer's machine) and off elsewhere."""

from __future__ import annotations

import pytest

from tests._client import error_codes, gql, token
from tests._server import ServerProcess

SCHEMA_QUERY = "{ __schema { queryType { name } } }"


async def test_introspection_by_default_only_on_the_embedded_default(
    server: ServerProcess, request: pytest.FixtureRequest, user: str
) -> None:
    body = await gql(server.graphql_url, SCHEMA_QUERY, bearer=token(user))
    if request.node.callspec.params["server"] == "embedded":
        assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    else:
        assert (
            set(error_codes(body)) == {"GRAPHQL_VALIDATION_FAILED"} and "introspection" in body["errors"][0]["message"]
        )
        plain = await gql(server.graphql_url, "{ __typename unreadCount }", bearer=token(user))
        assert plain == {"data": {"__typename": "Query", "unreadCount": 0}}  # positive control: queries still run


async def test_the_document_row_bound_is_answered_with_its_setting(server: ServerProcess, user: str) -> None:
    greedy = "{ " + " ".join(f"a{i}: notifications(first: 100) {{ unreadCount }}" for i in range(6)) + " }"
    body = await gql(server.graphql_url, greedy, bearer=token(user))
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"] and "TIDINGS_MAX_ROWS" in body["errors"][0]["message"]
