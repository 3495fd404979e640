"""Property-based fuzzing of the HTTP GraphQL endpoint against the real schema, on both backends.

Valid operations succeed (answered 200 with data; a field may be refused with a user error's code), invalid ones are
refused before execution with a 400 and a request error's code, arbitrary text is answered: never a 500, never a
masked internal error, never a traceback in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from tests._client import service_token, token
from tests._fuzz import FuzzRun, fuzz_runs
from tests._server import ServerProcess

SCHEMA = (Path(__file__).resolve().parent.parent / "graphql" / "schema.graphql").read_text()

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), st.text(max_size=20))


def _literal(value: object) -> graphql.ValueNode:
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    return nodes.String(value)


def _field(name: str, value: object) -> graphql.ObjectFieldNode:
    return graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=_literal(value))


CUSTOM_SCALARS = {
    "JSON": st.one_of(
        _json_leaf.map(_literal),
        st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True), _json_leaf, max_size=3).map(
            lambda d: nodes.Object([_field(name, value) for name, value in d.items()])
        ),
    ),
    "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "+00:00")),
}
QUERY_FIELDS = ["notifications", "unreadNotifications", "unreadCount", "notification"]
QUERIES = from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, fields=QUERY_FIELDS)
MUTATIONS = st.one_of(
    from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, fields=["createNotification", "markAllNotificationsRead"]),
    from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, fields=["markNotificationRead", "deleteNotification"]),
)
# Errors a valid operation may get for one of its fields: the arguments' values, not the document, are refused.
FIELD_ERRORS = {"BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN"}
# Errors of a request refused before execution (the document, not its values).
REQUEST_ERRORS = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "OPERATION_RESOLUTION_FAILURE", "BAD_USER_INPUT"}
LOG_DEFECTS = ("Traceback", "Task was destroyed but it is pending", "exception was never retrieved")


class Fuzzed:
    """A client of one server that posts fuzzed requests and reads the server's log written meanwhile."""

    def __init__(self, server: ServerProcess, client: httpx.Client) -> None:
        self.server, self.client = server, client
        self._log_start = len(server.log())
        self.answered = 0
        self.succeeded = 0  # answers without any error

    def post(self, query: str, bearer: str) -> tuple[int, dict[str, Any]]:
        """The status and body; the body always a GraphQL response, never with a masked internal error."""
        response = self.client.post(
            self.server.graphql_url,
            json={"query": query},
            # The status says whether the request was refused before execution (400) or executed (200).
            headers={"Authorization": f"Bearer {bearer}", "Accept": "application/graphql-response+json"},
        )
        assert response.status_code in (200, 400), (response.status_code, query, response.text)
        body: dict[str, Any] = response.json()
        for error in body.get("errors") or []:
            assert (error.get("extensions") or {}).get("code") not in (None, "INTERNAL_SERVER_ERROR"), (query, body)
        self.answered += 1
        return response.status_code, body

    def assert_succeeds(self, query: str, bearer: str) -> None:
        status, body = self.post(query, bearer)
        assert status == 200 and "data" in body, (query, body)
        codes = {error["extensions"]["code"] for error in body.get("errors") or []}
        assert codes <= FIELD_ERRORS, (query, body)
        self.succeeded += not codes

    def assert_log_clean(self) -> None:
        log = self.server.log()[self._log_start :]
        defects = [defect for defect in LOG_DEFECTS if defect in log]
        assert not defects, f"{defects} in the log written while fuzzing:\n{log}"


@pytest.fixture
def fuzzed(server: ServerProcess) -> Iterator[Fuzzed]:
    with httpx.Client(timeout=10) as client:
        fuzzed = Fuzzed(server, client)
        yield fuzzed
    assert fuzzed.answered > 0, "the fuzz run sent nothing"
    fuzzed.assert_log_clean()


@fuzz_runs(examples=60)
def test_valid_queries_succeed(fuzzed: Fuzzed, run: FuzzRun) -> None:
    @given(query=QUERIES)
    def check(query: str) -> None:
        fuzzed.assert_succeeds(query, token("fuzz-user"))

    run(check)
    assert fuzzed.succeeded > 0, "not one generated query ran without a field error"


@fuzz_runs(examples=60)
def test_valid_mutations_succeed(fuzzed: Fuzzed, run: FuzzRun) -> None:
    @given(query=MUTATIONS)
    def check(query: str) -> None:
        fuzzed.assert_succeeds(query, service_token())

    run(check)
    assert fuzzed.succeeded > 0, "not one generated mutation ran without a field error"


@fuzz_runs(examples=60)
def test_invalid_operations_are_refused_before_execution(fuzzed: Fuzzed, run: FuzzRun) -> None:
    @given(query=from_schema(SCHEMA, custom_scalars=CUSTOM_SCALARS, mode=Mode.NEGATIVE))
    def check(query: str) -> None:
        status, body = fuzzed.post(query, service_token())
        assert status == 400 and "data" not in body and body.get("errors"), (query, body)
        assert {error["extensions"]["code"] for error in body["errors"]} <= REQUEST_ERRORS, (query, body)

    run(check)


@fuzz_runs(examples=60)
def test_arbitrary_text_is_answered_not_crashed(fuzzed: Fuzzed, run: FuzzRun) -> None:
    @given(text=st.text(max_size=300))
    def check(text: str) -> None:
        fuzzed.post(text, token("fuzz-user"))

    run(check)
