"""The `createNotification` fast path: the mutation backends send most, run without graphql-core's executor.

A document that is one `createNotification(input: $input)` with a selection of plain `Notification` fields (such as
`graphql/operations/CreateNotification.graphql`) is compiled once. Executing it coerces the variables (itself for
the common input of plain values, with graphql-core otherwise), calls the same resolver function the schema calls,
and projects the returned notification the way the delivery fast path projects one
(`tidings.delivery.NOTIFICATION_FIELDS`). Errors are located, logged and masked as the standard path does them, so
the response is the same bytes; variables that do not coerce and every other document take the standard path
(`tests/test_fast_paths.py` compares the two).
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
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    VariableDefinitionNode,
    VariableNode,
    located_error,
)
from graphql.execution.values import get_variable_values

from tidings.delivery import Getter, notification_fields, root_field
from tidings.documents import CompiledDocuments
from tidings.errors import outcome_of
from tidings.schema import CreateNotificationInput
from tidings.store import NotificationType

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
        # Whether the operation declares nothing but `$<variable>: CreateNotificationInput!`: then the common input,
        # plain JSON values of the right types, needs no graphql-core to coerce (see _plain_input).
        definitions = operation.variable_definitions or ()
        self._plain = len(definitions) == 1 and _is_required_input(definitions[0], variable)

    async def execute(
        self, schema: TidingsSchema, context: Context, variables: Mapping[str, Any] | None
    ) -> bytes | None:
        """The encoded response, or None when the variables do not coerce (the standard path answers those)."""
        raw = _plain_input(variables.get(self._variable)) if self._plain and variables is not None else None
        if raw is None:
            definitions = self._operation.variable_definitions or ()
            coerced = get_variable_values(schema._schema, definitions, dict(variables or {}))
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


_INPUT_TYPE = "CreateNotificationInput"
_TEXT = ("title", "message")
_OPTIONAL_TEXT = ("idempotencyKey", "category", "collapseKey")
_FIELDS = frozenset({"userId", *_TEXT, "type", "data", *_OPTIONAL_TEXT, "expiresAt"})
_TYPES = {member.value: member for member in NotificationType}  # the enum's GraphQL names are its values


def _is_required_input(definition: VariableDefinitionNode, variable: str) -> bool:
    kind = definition.type
    return (
        definition.variable.name.value == variable
        and definition.default_value is None
        and not definition.directives
        and isinstance(kind, NonNullTypeNode)
        and isinstance(kind.type, NamedTypeNode)
        and kind.type.name.value == _INPUT_TYPE
    )


def _plain_input(value: object) -> dict[str, Any] | None:
    """The input as graphql-core would coerce it, when every field is a plain JSON value of its own type: a string
    `userId`, string texts, a known `type` or none, any `data`, no `expiresAt`. None for anything else (an unknown
    field, a missing or null required one, a number for an ID, a time to parse): graphql-core then coerces it, and
    says what is wrong."""
    if type(value) is not dict or not _FIELDS.issuperset(value):
        return None
    if type(value.get("userId")) is not str or value.get("expiresAt") is not None:
        return None
    for name in _TEXT:
        if type(value.get(name)) is not str:
            return None
    for name in _OPTIONAL_TEXT:
        text = value.get(name)
        if text is not None and type(text) is not str:
            return None
    raw = dict(value)
    kind = value.get("type")
    if kind is not None:
        member = _TYPES.get(kind) if type(kind) is str else None
        if member is None:
            return None
        raw["type"] = member
    return raw


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
