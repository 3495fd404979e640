"""The document cache: a repeated document is validated once, every limit still holds, and memory stays bounded."""

from __future__ import annotations

import pytest

from tidings import documents
from tidings.composition import build_schema
from tidings.config import Settings

VALID = "{ __typename }"


def _schema(**settings: object):  # type: ignore[no-untyped-def]
    return build_schema(Settings(jwt_secret="x" * 32, **settings))  # type: ignore[arg-type]


async def test_a_repeated_document_is_parsed_and_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = _schema()
    calls: list[str] = []
    real = documents.validate_document
    monkeypatch.setattr(documents, "validate_document", lambda *args: calls.append("v") or real(*args))
    for _ in range(3):
        result = await schema.execute(VALID)
        assert result.data == {"__typename": "Query"} and not result.errors
    assert calls == ["v"]
    assert len(schema.documents) == 1


async def test_documents_that_fail_validation_are_not_kept() -> None:
    schema = _schema()
    for index in range(20):
        result = await schema.execute(f"{{ nope{index} }}")
        assert result.errors and "Cannot query field" in result.errors[0].message
    assert len(schema.documents) == 0


@pytest.mark.parametrize(
    ("settings", "query", "message"),
    [
        ({"max_query_depth": 2}, "{ notifications { edges { node { id } } } }", "exceeds maximum operation depth"),
        ({"max_aliases": 1}, "{ a: unreadCount b: unreadCount }", "2 aliases found. Allowed: 1"),
        ({"max_tokens": 10}, "{ a: unreadCount b: unreadCount c: unreadCount d: unreadCount }", "more than 10 tokens"),
        ({"introspection": False}, "{ __schema { types { name } } }", "introspection"),
    ],
)
async def test_every_limit_holds_on_the_first_and_every_later_request(
    settings: dict[str, object], query: str, message: str
) -> None:
    schema = _schema(**settings)
    for _ in range(2):
        result = await schema.execute(query)
        assert result.errors, result
        assert message.lower() in result.errors[0].message.lower()
    assert len(schema.documents) == 0


def test_the_cache_is_bounded_by_entries_and_by_bytes_of_text() -> None:
    schema = _schema()
    cache = documents.DocumentCache(schema._schema, schema.documents._rules, max_entries=5, max_text_bytes=200)
    for index in range(10):
        query = f"query Q{index} {{ unreadCount }}"
        document, errors = cache.load(query)
        assert document is not None and not errors
    assert len(cache) == 5
    long = "query Long { " + " ".join(f"a{i}: unreadCount" for i in range(8)) + " }"
    assert cache.load(long)[0] is not None
    assert cache.text_bytes <= 200
    assert cache.cached("query Q9 { unreadCount }") is not None  # the most recent are kept
    assert cache.cached("query Q0 { unreadCount }") is None


@pytest.mark.parametrize(
    ("document", "variables_note"),
    [
        ("{ " + " ".join(f"a{i}: notifications(first: 100) {{ unreadCount }}" for i in range(6)) + " }", "literals"),
        (
            "query($n: Int) { "
            + " ".join(f"a{i}: notifications(first: $n) {{ unreadCount }}" for i in range(6))
            + " }",
            "a variable without a default counts as a full page",
        ),
        (
            "{ " + " ".join(f"a{i}: unreadNotifications {{ id }}" for i in range(11)) + " }",
            "left out: the argument's default (50)",
        ),
        (
            "query { ...F } fragment F on Query { "
            + " ".join(f"a{i}: notifications(first: 100) {{ unreadCount }}" for i in range(6))
            + " }",
            "in a fragment",
        ),
    ],
)
def test_documents_asking_for_more_rows_than_the_bound_are_refused(document: str, variables_note: str) -> None:
    cache = _schema().documents
    parsed, errors = cache.load(document)
    assert parsed is None and len(errors) == 1, variables_note
    assert "TIDINGS_MAX_ROWS" in errors[0].message and errors[0].extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


@pytest.mark.parametrize(
    "document",
    [
        "{ " + " ".join(f"a{i}: notifications(first: 100) {{ unreadCount }}" for i in range(5)) + " }",
        "query($n: Int = 20) { "
        + " ".join(f"a{i}: notifications(first: $n) {{ unreadCount }}" for i in range(25))
        + " }",
        "{ notifications { unreadCount } unreadCount }",
    ],
)
def test_documents_within_the_row_bound_pass(document: str) -> None:
    parsed, errors = _schema().documents.load(document)
    assert errors == [] and parsed is not None
