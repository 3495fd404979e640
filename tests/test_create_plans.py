"""The createNotification plan's own coercion of plain inputs agrees with graphql-core's on every input it takes."""

from __future__ import annotations

from typing import Any

from graphql import parse
from graphql.execution.values import get_variable_values
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.composition import build_schema
from tidings.config import Settings
from tidings.creates import _plain_input

SCHEMA = build_schema(Settings())._schema
DOCUMENT = "mutation($input: CreateNotificationInput!) { createNotification(input: $input) { id } }"
[OPERATION] = parse(DOCUMENT).definitions

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["INFO", "WARNING", "ERROR", "SUCCESS", "info", "NOPE", "2026-12-24T09:00:00+00:00"]),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)
_names = st.sampled_from(
    ["userId", "title", "message", "type", "data", "idempotencyKey", "category", "collapseKey", "expiresAt", "extra"]
)
_inputs = st.one_of(
    st.dictionaries(_names, _values, max_size=10),
    st.fixed_dictionaries(
        {
            "userId": st.one_of(st.text(min_size=1, max_size=3), _values),
            "title": st.one_of(st.text(max_size=3), _values),
            "message": st.one_of(st.text(max_size=3), _values),
        },
        optional={name: _values for name in ("type", "data", "idempotencyKey", "category", "collapseKey")},
    ),
    _values,
)


@settings(max_examples=600)
@given(_inputs)
def test_a_plain_input_is_what_graphql_core_makes_of_it(value: Any) -> None:
    mine = _plain_input(value)
    theirs = get_variable_values(SCHEMA, OPERATION.variable_definitions, {"input": value})
    if mine is None:
        return  # graphql-core's to coerce (or refuse)
    assert not isinstance(theirs, list), (value, theirs)
    coerced = theirs.coerced["input"]
    # What graphql-core adds for a field left out is its default: the resolver reads a missing field the same way.
    assert {name: mine.get(name, coerced[name]) for name in coerced} == coerced
    assert set(mine) <= set(coerced)


def test_the_common_input_is_taken() -> None:
    plain = {"userId": "u", "title": "t", "message": "m", "type": "WARNING", "data": {"k": [1]}, "category": "c"}
    taken = _plain_input(plain)
    assert taken is not None and taken["type"].value == "WARNING"
    for unusual in ({**plain, "userId": 5}, {**plain, "expiresAt": "2026-12-24T09:00:00+00:00"}, {**plain, "x": 1}):
        assert _plain_input(unusual) is None
