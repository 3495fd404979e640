"""The `createNotification` fast path: the mutation backends send most, run without graphql-core's executor.

A document that is one `createNotification(input: $input)` with a selection of plain `Notification` fields (such as
`graphql/operations/CreateNotification.graphql`) is compiled once. Executing it coerces the variables with
graphql-core, calls the same resolver function the schema calls, and projects the returned notification the way the
delivery fast path projects one (`tidings.delivery.NOTIFICATION_FIELDS`). Errors are located, logged and masked as
the standard path does them, so the response is the same bytes; variables that do not coerce and every other
document take the standard path (`tests/test_fast_paths.py` compares the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
    located_error,
)
from graphql.execution.values import get_variable_values

from tidings.delivery import Getter, notification_fields, root_field
from tidings.documents import CompiledDocuments
from tidings.errors import outcome_of
from tidings.schema import CreateNotificationInput

if TYPE_CHECKING:
    from tidings.composition import TidingsSchema
    from tidings.context import Context

MUTATION_FIELD = "createNotification"
MAX_PLANS = 64


class _Info:
    """What the resolver reads of graphql-core's `info`: the context."""

    __slots__ = ("context",)

    def __init__(self, context: Context) -> None:
        self.context = context


class CreatePlan:
    """One compiled `createNotification` document."""

    def __init__(
        self, *, operation: OperationDefinitionNode, field: FieldNode, variable: str, fields: list[tuple[str, Getter]]
    ) -> None:
        self._operation = operation
        self._field = field
        self._key = field.alias.value if field.alias else field.name.value
        self._variable = variable
        self._fields = fields

    async def execute(
        self, schema: TidingsSchema, context: Context, variables: Mapping[str, Any] | None
    ) -> bytes | None:
        """The encoded response, or None when the variables do not coerce (the standard path answers those)."""
        coerced = get_variable_values(schema._schema, self._operation.variable_definitions or (), dict(variables or {}))
        if isinstance(coerced, list):
            return None
        raw = coerced.coerced.get(self._variable)
        if not isinstance(raw, dict):
            return None
        data = CreateNotificationInput(
            user_id=strawberry.ID(raw["userId"]),
            title=raw["title"],
            message=raw["message"],
            type=raw.get("type"),
            data=raw.get("data"),
            idempotency_key=raw.get("idempotencyKey"),
            category=raw.get("category"),
            expires_at=raw.get("expiresAt"),
            collapse_key=raw.get("collapseKey"),
        )
        from tidings.resolvers import create_notification

        metrics = context.services.metrics
        try:
            record = await create_notification(_Info(context), data)
        except Exception as raw_error:
            metrics.mutation_done(MUTATION_FIELD, outcome_of(raw_error))  # as CountedMutation counts the schema's
            error = located_error(raw_error, [self._field], [self._key])
            schema.process_errors([error])
            return orjson.dumps({"data": None, "errors": [_masked(error).formatted]})
        metrics.mutation_done(MUTATION_FIELD, "ok")
        return orjson.dumps({"data": {self._key: {key: get(record) for key, get in self._fields}}})


def _masked(error: GraphQLError) -> GraphQLError:
    from tidings.composition import mask_error

    return mask_error(error)


def compile_create(document: DocumentNode, operation_name: str | None) -> CreatePlan | None:
    """A plan for a validated document, or None when it needs the standard path."""
    found = root_field(document, operation_name, OperationType.MUTATION, MUTATION_FIELD)
    if found is None:
        return None
    operation, field = found
    arguments = field.arguments or ()
    if len(arguments) != 1 or arguments[0].name.value != "input" or not isinstance(arguments[0].value, VariableNode):
        return None
    fields = notification_fields(field)
    if fields is None:
        return None
    return CreatePlan(operation=operation, field=field, variable=arguments[0].value.name.value, fields=fields)


def create_plans() -> CompiledDocuments[CreatePlan]:
    """This process's compiled createNotification documents."""
    return CompiledDocuments(compile_create, max_entries=MAX_PLANS)
