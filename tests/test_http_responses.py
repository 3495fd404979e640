"""GraphQL over HTTP: the response media type from Accept, the specification's status codes, and a code on every error.

Each case is asked twice on a real server (embedded and PostgreSQL + Redis): the first time the document is new, the
second time it is known (the HTTP lane's compiled paths); both answers must be the one expected.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests._client import CREATE, WAIT, gql, service_token, token
from tests._server import ServerProcess
from tidings.http import MediaType, negotiate

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json; charset=utf-8"
APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9"  # @apollo/client 4
URQL_ACCEPT = (
    "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
)
GRAPHIQL_ACCEPT = "application/json, multipart/mixed"  # @graphiql/toolkit


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, MediaType.JSON),
        (b"", MediaType.JSON),
        (b"*/*", MediaType.JSON),
        (b"application/*", MediaType.JSON),
        (b"application/json", MediaType.JSON),
        (APOLLO_ACCEPT.encode(), MediaType.GRAPHQL_RESPONSE),
        (URQL_ACCEPT.encode(), MediaType.GRAPHQL_RESPONSE),
        (GRAPHIQL_ACCEPT.encode(), MediaType.JSON),
        (b"application/json, application/graphql-response+json", MediaType.JSON),  # equal q: the one listed first
        (b"application/json;q=0.5, application/graphql-response+json", MediaType.GRAPHQL_RESPONSE),
        (b"application/graphql-response+json;q=0.5, application/json", MediaType.JSON),
        (b"application/graphql-response+json;q=0.5, */*", MediaType.JSON),  # the named type keeps its own q
        (b"application/graphql-response+json, */*;q=0.1", MediaType.GRAPHQL_RESPONSE),
        (b"*/*, application/json;q=0", MediaType.GRAPHQL_RESPONSE),  # refused by name, taken by the wildcard
        (b"Application/GraphQL-Response+JSON; Charset=UTF-8", MediaType.GRAPHQL_RESPONSE),
        (b"application/graphql-response+json;charset=utf-16, application/json;q=0.2", MediaType.JSON),
        (b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", MediaType.JSON),  # a browser
        (b"application/json;q=2, application/graphql-response+json;q=0.3", MediaType.GRAPHQL_RESPONSE),  # bad q
        (b"text/plain;q=0.1, " * 20 + b"application/graphql-response+json", MediaType.GRAPHQL_RESPONSE),  # long
        (b"text/html", None),
        (b"text/event-stream", None),
        (b"application/json;q=0", None),
        (b"application/graphql+json", None),  # the draft's old name: not a response type any more
    ],
)
def test_accept_picks_the_response_media_type(accept: bytes | None, expected: MediaType | None) -> None:
    assert negotiate(accept) is expected


async def post(
    server: ServerProcess,
    body: bytes | dict[str, Any] | list[Any],
    *,
    accept: str | None = None,
    content_type: str | None = JSON,
    bearer: str | None = None,
) -> httpx.Response:
    headers = {"accept": accept or ""}  # empty: treated as absent, as httpx would otherwise send */*
    if content_type is not None:
        headers["content-type"] = content_type
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.post(server.graphql_url, content=content, headers=headers)


def errors_only(response: httpx.Response) -> list[dict[str, Any]]:
    """The errors of a response that has no `data` entry (nothing ran)."""
    body = response.json()
    assert "data" not in body, body
    errors: list[dict[str, Any]] = body["errors"]
    return errors


NOTIFICATIONS = "query($first: Int) { notifications(first: $first) { feedCursor } }"
# (request body, code of the one error, message it starts with): GraphQL request errors, raised before execution.
REQUEST_ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "does not parse": ({"query": "{"}, "GRAPHQL_PARSE_FAILED", "Syntax Error: Expected Name, found <EOF>."),
    "does not validate": (
        {"query": "{ nope }"},
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot query field 'nope' on type 'Query'.",
    ),
    "input field missing": (
        {"query": 'mutation { createNotification(input: {userId: "u", title: "t"}) { id } }'},
        "GRAPHQL_VALIDATION_FAILED",
        "Expected value of type 'CreateNotificationInput' to include required field 'message'",
    ),
    "variables do not coerce": (
        {"query": NOTIFICATIONS, "variables": {"first": "many"}},
        "BAD_USER_INPUT",
        "Variable '$first' has invalid value: Int cannot represent non-integer value: 'many'",
    ),
    "required variable null": (
        {"query": "query($id: ID!) { notification(id: $id) { id } }", "variables": {"id": None}},
        "BAD_USER_INPUT",
        "Variable '$id' has invalid value: Expected value of non-null type 'ID!' not to be None.",
    ),
    "unknown operation": (
        {"query": "query A { __typename }", "operationName": "B"},
        "OPERATION_RESOLUTION_FAILURE",
        "The document has no operation named 'B'",
    ),
    "subscription over HTTP": (
        {"query": "subscription { notificationEvents { kind } }"},
        "BAD_REQUEST",
        "Subscriptions are served over WebSocket (graphql-transport-ws)",
    ),
}


@pytest.mark.parametrize(("request_body", "code", "message"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
@pytest.mark.parametrize(
    ("accept", "status", "media_type"),
    [(APOLLO_ACCEPT, 400, GRAPHQL_RESPONSE), (URQL_ACCEPT, 400, GRAPHQL_RESPONSE), (None, 200, JSON)],
    ids=["graphql-response+json (Apollo)", "graphql-response+json (urql)", "application/json"],
)
async def test_request_errors_have_no_data_a_code_and_the_status_of_their_media_type(
    server: ServerProcess,
    user: str,
    request_body: dict[str, Any],
    code: str,
    message: str,
    accept: str | None,
    status: int,
    media_type: str,
) -> None:
    for _ in range(2):
        response = await post(server, request_body, accept=accept, bearer=service_token())
        assert (response.status_code, response.headers["content-type"]) == (status, media_type), response.text
        [error] = errors_only(response)
        assert error["extensions"] == {"code": code} and error["message"].startswith(message), error


async def test_a_create_that_does_not_validate_writes_nothing(server: ServerProcess, user: str) -> None:
    """`createNotification` without the required `message`: refused before execution (the variables do not coerce)."""
    variables = {"input": {"userId": user, "title": "no message"}}
    response = await post(
        server, {"query": CREATE, "variables": variables}, accept=APOLLO_ACCEPT, bearer=service_token()
    )
    assert response.status_code == 400
    [error] = errors_only(response)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}, error
    assert "to include required field 'message'" in error["message"], error
    listing = await gql(server.graphql_url, "{ notifications { edges { node { id } } } }", bearer=token(user))
    assert listing["data"]["notifications"]["edges"] == []


@pytest.mark.parametrize("accept", [APOLLO_ACCEPT, None], ids=["graphql-response+json", "application/json"])
async def test_field_errors_are_200_with_data_in_both_media_types(
    server: ServerProcess, user: str, accept: str | None
) -> None:
    """Execution ran (`data` is there, null or partial): 200 whatever the media type, the error coded."""
    for _ in range(2):
        unauthenticated = await post(server, {"query": "{ unreadCount }"}, accept=accept)
        assert unauthenticated.status_code == 200, unauthenticated.text
        body = unauthenticated.json()
        assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        fine = await post(server, {"query": "{ unreadCount }"}, accept=accept, bearer=token(user))
        assert (fine.status_code, fine.json()) == (200, {"data": {"unreadCount": 0}})
        expected = GRAPHQL_RESPONSE if accept else JSON
        assert unauthenticated.headers["content-type"] == fine.headers["content-type"] == expected


# (body, content type, status, message it starts with): not GraphQL-over-HTTP requests, refused in any media type.
REFUSALS: dict[str, tuple[bytes, str | None, int, str]] = {
    "malformed JSON": (b'{ "not a JSON', JSON, 400, "The request body is not valid JSON: "),
    "empty body": (b"", JSON, 400, "The request has no body"),
    "batch": (b'[{"query": "{ __typename }"}]', JSON, 400, "Batched requests are not supported"),
    "not an object": (b'"{ __typename }"', JSON, 400, "The request body must be a JSON object"),
    "no query": (b'{"qeury": "{ __typename }"}', JSON, 400, "`query` is required"),
    "empty query": (b'{"query": ""}', JSON, 400, "`query` is required"),
    "query a number": (b'{"query": 0}', JSON, 400, "`query` must be a string"),
    "variables a list": (b'{"query": "{ __typename }", "variables": [7]}', JSON, 400, "`variables` must be an object"),
    "operationName an object": (
        b'{"query": "{ __typename }", "operationName": {}}',
        JSON,
        400,
        "`operationName` must be a string",
    ),
    "extensions a string": (b'{"query": "{ __typename }", "extensions": "x"}', JSON, 400, "`extensions` must be"),
    "invalid UTF-8": (b'{"query": "{ __typename \xff }"}', JSON, 400, "The request body is not valid JSON: "),
    "nested 30,000 deep": (
        b'{"query": "{ __typename }", "variables": {"v": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}",
        JSON,
        400,
        "The request body is not valid JSON: depth limit exceeded",
    ),
    "no content type": (
        b'{"query": "{ __typename }"}',
        None,
        415,
        "POST the request as Content-Type: application/json",
    ),
    "form": (b"query=%7B__typename%7D", "application/x-www-form-urlencoded", 415, "POST the request as"),
    "text/plain": (b'{"query": "{ __typename }"}', "text/plain", 415, "POST the request as"),
    "latin-1 JSON": (b'{"query": "{ __typename }"}', "application/json; charset=latin-1", 415, "POST the request as"),
}


@pytest.mark.parametrize(("body", "content_type", "status", "message"), REFUSALS.values(), ids=REFUSALS.keys())
@pytest.mark.parametrize(
    ("accept", "media_type"), [(APOLLO_ACCEPT, GRAPHQL_RESPONSE), ("application/json", JSON), (None, JSON)]
)
async def test_requests_that_are_not_graphql_requests_are_refused_with_4xx_and_a_json_error(
    server: ServerProcess,
    body: bytes,
    content_type: str | None,
    status: int,
    message: str,
    accept: str | None,
    media_type: str,
) -> None:
    response = await post(server, body, accept=accept, content_type=content_type)
    assert (response.status_code, response.headers["content-type"]) == (status, media_type), response.text
    [error] = errors_only(response)
    assert error["extensions"] == {"code": "BAD_REQUEST"} and error["message"].startswith(message), error
    if status == 415:
        assert response.headers["accept"] == JSON


async def test_an_accept_that_takes_no_graphql_response_type_is_406(server: ServerProcess) -> None:
    for accept in ("text/html", "text/event-stream", "application/json;q=0, application/graphql-response+json;q=0"):
        response = await post(server, {"query": "{ __typename }"}, accept=accept)
        assert (response.status_code, response.headers["content-type"]) == (406, JSON), response.text
        [error] = errors_only(response)
        assert error == {
            "message": "Accept must allow application/graphql-response+json or application/json",
            "extensions": {"code": "BAD_REQUEST"},
        }


async def test_get_runs_queries_in_the_negotiated_type_and_refuses_mutations_with_405(server: ServerProcess) -> None:
    url = server.graphql_url
    async with httpx.AsyncClient(timeout=WAIT) as client:
        query = await client.get(url, params={"query": "{ __typename }"}, headers={"accept": APOLLO_ACCEPT})
        variables = await client.get(
            url,
            params={"query": "query($s: Boolean!) { __typename @include(if: $s) }", "variables": '{"s": true}'},
            headers={"accept": JSON},
        )
        named = await client.get(url, params={"query": "query Q { __typename }", "operationName": ""})
        mutation = await client.get(url, params={"query": "mutation { __typename }"}, headers={"accept": APOLLO_ACCEPT})
        bad_variables = await client.get(url, params={"query": "{ __typename }", "variables": "{"})
        unparsable = await client.get(url, params={"query": "{"}, headers={"accept": APOLLO_ACCEPT})
        html_only = await client.get(url, params={"query": "{ __typename }"}, headers={"accept": "text/html"})
    assert (query.status_code, query.headers["content-type"]) == (200, GRAPHQL_RESPONSE)
    assert query.json() == {"data": {"__typename": "Query"}}
    assert variables.json() == {"data": {"__typename": "Query"}}
    assert named.json() == {"data": {"__typename": "Query"}}  # operationName= is no operation name
    assert (mutation.status_code, mutation.headers["allow"]) == (405, "POST")
    assert errors_only(mutation) == [
        {"message": "Mutations are sent with POST, not GET", "extensions": {"code": "BAD_REQUEST"}}
    ]
    assert bad_variables.status_code == 400
    assert errors_only(bad_variables)[0]["extensions"] == {"code": "BAD_REQUEST"}
    assert unparsable.status_code == 400
    assert errors_only(unparsable)[0]["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert html_only.status_code == 406
