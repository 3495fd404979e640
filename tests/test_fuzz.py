"""Property-based fuzzing of the HTTP GraphQL endpoint against the real schema: never a 500, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from tests._client import service_token, token
from tests._server import ServerProcess

SCHEMA = (Path(__file__).resolve().parent.parent / "graphql" / "schema.graphql").read_text()

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), st.text(max_size=20))
CUSTOM_SCALARS = {
    "JSON": st.one_of(
        _json_leaf.map(lambda v: nodes.Null if v is None else nodes.String(str(v))),
        st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=3).map(
            lambda d: nodes.Object([(k, nodes.String(v)) for k, v in d.items()])  # type: ignore[misc]
        ),
    ),
    "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "+00:00")),
}

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure here is reproducible, never flaky
)


@pytest.fixture(scope="module")
def http(embedded_server: ServerProcess) -> Iterator[tuple[httpx.Client, ServerProcess]]:
    with httpx.Client(timeout=10) as client:
        yield client, embedded_server


def _post(http: tuple[httpx.Client, ServerProcess], query: str, bearer: str) -> dict[str, Any]:
    client, server = http
    response = client.post(server.graphql_url, json={"query": query}, headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code in (200, 400), (response.status_code, query, response.text)
    body: dict[str, Any] = (
        response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    )
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code != "INTERNAL_SERVER_ERROR", (query, body)
    return body


@FUZZ
@given(
    query=from_schema(
        SCHEMA,
        custom_scalars=CUSTOM_SCALARS,
        fields=["notifications", "unreadNotifications", "unreadCount", "notification"],
    )
)
def test_valid_queries_never_fail_internally(http: tuple[httpx.Client, ServerProcess], query: str) -> None:
    _post(http, query, token("fuzz-user"))


@FUZZ
@given(query=from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=Mode.NEGATIVE))
def test_invalid_operations_are_answered_not_crashed(http: tuple[httpx.Client, ServerProcess], query: str) -> None:
    body = _post(http, query, service_token())
    assert body.get("errors"), (query, body)


@FUZZ
@given(
    query=st.one_of(
        from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, fields=["createNotification", "markAllNotificationsRead"]),
        from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, fields=["markNotificationRead", "deleteNotification"]),
    )
)
def test_valid_mutations_never_fail_internally(http: tuple[httpx.Client, ServerProcess], query: str) -> None:
    _post(http, query, service_token())


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_is_answered_not_crashed(http: tuple[httpx.Client, ServerProcess], text: str) -> None:
    _post(http, text, token("fuzz-user"))


def test_fuzzed_server_logged_no_traceback(http: tuple[httpx.Client, ServerProcess]) -> None:
    _, server = http
    assert "Traceback" not in server.log()
