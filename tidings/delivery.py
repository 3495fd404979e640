"""The delivery fast path: `notificationEvents` subscriptions whose selection is plain fields, without graphql-core.

Most subscriptions select fields of the event, of its notification and of its category counts, nothing more. For
those, the subscribe message is compiled once into a `Projection`: the `next` payload is built by reading the event's
fields in the document's order, encoded once per event and document, and the same text is shared by every local
socket of that user running the same document. Anything else (fragments, directives, field arguments, duplicate
response keys, variables that do not coerce, a refusal before the stream starts) takes Strawberry's standard path,
which stays the reference: `tests/test_delivery_paths.py` runs both on the same events and asserts byte-identical
`next` messages.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    VariableNode,
)
from graphql.execution.values import get_variable_values

from tidings.cursors import FeedCursor
from tidings.documents import CompiledDocuments
from tidings.store import FeedEvent, NotificationRecord

SUBSCRIPTION_FIELD = "notificationEvents"
MAX_PROJECTIONS = 256  # compiled documents kept per process (only documents that passed validation get here)
SHARED_PAYLOADS = 128  # encoded payloads kept for the sockets that follow: one event reaches all of a user's devices

Getter = Callable[[Any], object]


def _iso(value: Any) -> object:
    return value.isoformat() if value is not None else None


# The output of each field exactly as the schema serializes it (tidings.schema: enums by name, DateTime in ISO-8601,
# JSON as it is). A field not listed here sends the whole document down the standard path.
NOTIFICATION_FIELDS: dict[str, Getter] = {
    "__typename": lambda record: "Notification",
    "id": lambda record: record.id,
    "userId": lambda record: record.user_id,
    "type": lambda record: record.type.value,
    "title": lambda record: record.title,
    "message": lambda record: record.message,
    "data": lambda record: record.data,
    "read": lambda record: record.read_at is not None,
    "readAt": lambda record: _iso(record.read_at),
    "createdAt": lambda record: record.created_at.isoformat(),
    "sequence": lambda record: record.seq,
    "seen": lambda record: record.seen_at is not None,
    "seenAt": lambda record: _iso(record.seen_at),
    "archived": lambda record: record.archived_at is not None,
    "archivedAt": lambda record: _iso(record.archived_at),
    "category": lambda record: record.category,
    "snoozed": lambda record: record.snoozed_until is not None,
    "snoozedUntil": lambda record: _iso(record.snoozed_until),
    "expiresAt": lambda record: _iso(record.expires_at),
    "collapseKey": lambda record: record.collapse_key,
    "collapsedCount": lambda record: record.collapsed_count,
    "updatedAt": lambda record: _iso(record.updated_at),
    "muted": lambda record: record.muted,
}
EVENT_FIELDS: dict[str, Getter] = {
    "__typename": lambda event: "NotificationEvent",
    "kind": lambda event: event.kind.value,
    "unreadCount": lambda event: event.unread_count,
    "sequence": lambda event: event.seq,
    "upToSequence": lambda event: event.up_to_seq,
    "count": lambda event: event.count,
    "unseenCount": lambda event: event.unseen_count,
    "category": lambda event: event.category,
    "mutedCategories": lambda event: list(event.muted_categories) if event.muted_categories is not None else None,
}
DELETED_FIELDS: dict[str, Getter] = {
    "__typename": lambda which: "DeletedNotificationsFilter",
    "read": lambda which: which.read,
    "archived": lambda which: which.archived,
    "category": lambda which: which.category,
}
CATEGORY_COUNT_FIELDS: dict[str, Getter] = {
    "__typename": lambda counts: "CategoryCount",
    "category": lambda counts: counts.category,
    "unreadCount": lambda counts: counts.unread_count,
    "unseenCount": lambda counts: counts.unseen_count,
}


@dataclass(frozen=True, slots=True)
class Arguments:
    """How the root field's arguments are given: literals, or the names of variables to read them from."""

    literals: Mapping[str, str | None]
    variables: Mapping[str, str]

    def resolve(self, coerced: Mapping[str, object]) -> dict[str, object]:
        values: dict[str, object] = dict(self.literals)
        for argument, variable in self.variables.items():
            if variable in coerced:
                values[argument] = coerced[variable]
        return values


class Projection:
    """One compiled subscription document: builds and shares the encoded `payload` of each event's `next`."""

    def __init__(
        self,
        *,
        operation: OperationDefinitionNode,
        response_key: str,
        arguments: Arguments,
        fields: list[tuple[str, Getter]],
    ) -> None:
        self.operation = operation
        self.arguments = arguments
        self._response_key = response_key
        self._fields = fields
        self._shared: OrderedDict[int, tuple[FeedEvent, str]] = OrderedDict()

    def data(self, event: FeedEvent) -> dict[str, object]:
        """The `data` of the `next` message for this event, in the document's field order."""
        return {self._response_key: {key: get(event) for key, get in self._fields}}

    def payload(self, event: FeedEvent) -> str:
        """The encoded `{"data": ...}` for this event; the same text for every socket running this document."""
        key = id(event)
        shared = self._shared.get(key)
        if shared is not None and shared[0] is event:
            return shared[1]
        text = orjson.dumps({"data": self.data(event)}).decode()
        # The event is kept with its text, so its id cannot be reused by another object while the entry lives.
        self._shared[key] = (event, text)
        if len(self._shared) > SHARED_PAYLOADS:
            self._shared.popitem(last=False)
        return text

    @staticmethod
    def next_prefix(operation_id: str) -> str:
        """What every `next` frame of one operation starts with: prefix + payload + "}" is the whole frame, as the
        standard path would encode it. Encoded once per operation rather than once per event."""
        return f'{{"id":{orjson.dumps(operation_id).decode()},"type":"next","payload":'

    def coerce(self, schema: GraphQLSchema, variables: Mapping[str, object] | None) -> dict[str, object] | None:
        """The root field's arguments for these variables; None when they do not coerce (the standard path says why)."""
        definitions = self.operation.variable_definitions or ()
        if not definitions:
            return dict(self.arguments.literals)
        coerced = get_variable_values(schema, definitions, dict(variables or {}))
        if isinstance(coerced, list):
            return None
        return self.arguments.resolve(coerced.coerced)


def operation_of(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    """The operation a request runs: the one named, or the only one (None when that is not well defined)."""
    operations = [definition for definition in document.definitions if isinstance(definition, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    named = [operation for operation in operations if operation.name and operation.name.value == operation_name]
    return named[0] if len(named) == 1 else None


def _plain_fields(field: FieldNode) -> list[tuple[str, FieldNode]] | None:
    """(response key, field) of a selection of plain fields, or None for anything the projection does not cover."""
    if field.selection_set is None:
        return None
    selected: list[tuple[str, FieldNode]] = []
    keys: set[str] = set()
    for selection in field.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        key = selection.alias.value if selection.alias else selection.name.value
        if key in keys:
            return None  # merged fields: the standard path
        keys.add(key)
        selected.append((key, selection))
    return selected


def root_field(
    document: DocumentNode, operation_name: str | None, kind: OperationType, name: str
) -> tuple[OperationDefinitionNode, FieldNode] | None:
    """The operation and its one root field, when they are of this kind and name and carry no directives."""
    operation = operation_of(document, operation_name)
    if operation is None or operation.operation != kind or operation.directives:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    field = selections[0]
    if field.name.value != name or field.directives:
        return None
    return operation, field


def _projected(field: FieldNode, getters: Mapping[str, Getter]) -> list[tuple[str, Getter]] | None:
    """(response key, getter) of a selection of plain fields that `getters` all cover, or None for anything else."""
    selected = _plain_fields(field)
    if selected is None or any(node.name.value not in getters for _, node in selected):
        return None
    return [(key, getters[node.name.value]) for key, node in selected]


def notification_fields(field: FieldNode) -> list[tuple[str, Getter]] | None:
    """(response key, getter) of a selection of plain `Notification` fields, or None for anything else."""
    return _projected(field, NOTIFICATION_FIELDS)


def compile_projection(document: DocumentNode, operation_name: str | None, *, epoch: str) -> Projection | None:
    """A projection for a validated document, or None when it needs the standard path."""
    if len(document.definitions) != 1:
        return None  # fragments: the standard path
    found = root_field(document, operation_name, OperationType.SUBSCRIPTION, SUBSCRIPTION_FIELD)
    if found is None:
        return None
    operation, root = found
    literals: dict[str, str | None] = {}
    variables: dict[str, str] = {}
    for argument in root.arguments or ():
        name, value = argument.name.value, argument.value
        if isinstance(value, VariableNode):
            variables[name] = value.name.value
        elif isinstance(value, StringValueNode):
            literals[name] = value.value
        elif isinstance(value, NullValueNode):
            literals[name] = None
        else:
            return None
    selected = _plain_fields(root)
    if selected is None:
        return None
    fields: list[tuple[str, Getter]] = []
    for key, field in selected:
        name = field.name.value
        if name == "notification":
            inner = notification_fields(field)
            if inner is None:
                return None
            fields.append((key, _notification_getter(inner)))
        elif name == "deleted":
            which = _projected(field, DELETED_FIELDS)
            if which is None:
                return None
            fields.append((key, _deleted_getter(which)))
        elif name == "categoryCounts":
            counted = _projected(field, CATEGORY_COUNT_FIELDS)
            if counted is None:
                return None
            fields.append((key, _category_counts_getter(counted)))
        elif field.selection_set is not None:
            return None
        elif name == "cursor":
            fields.append((key, _cursor_getter(epoch)))
        elif name in EVENT_FIELDS:
            fields.append((key, EVENT_FIELDS[name]))
        else:
            return None
    return Projection(
        operation=operation,
        response_key=root.alias.value if root.alias else root.name.value,
        arguments=Arguments(literals=literals, variables=variables),
        fields=fields,
    )


def _cursor_getter(epoch: str) -> Getter:
    return lambda event: FeedCursor(epoch, event.seq).encode()


def _notification_getter(fields: list[tuple[str, Getter]]) -> Getter:
    def notification(event: FeedEvent) -> object:
        record: NotificationRecord | None = event.notification
        return None if record is None else {key: get(record) for key, get in fields}

    return notification


def _deleted_getter(fields: list[tuple[str, Getter]]) -> Getter:
    def deleted(event: FeedEvent) -> object:
        return None if event.deleted is None else {key: get(event.deleted) for key, get in fields}

    return deleted


def _category_counts_getter(fields: list[tuple[str, Getter]]) -> Getter:
    def category_counts(event: FeedEvent) -> object:
        return [{key: get(counts) for key, get in fields} for counts in event.category_counts]

    return category_counts


def projections(*, epoch: Callable[[], str]) -> CompiledDocuments[Projection]:
    """This process's compiled notificationEvents documents; `epoch` names the database (known once it started)."""
    return CompiledDocuments(
        lambda document, operation_name: compile_projection(document, operation_name, epoch=epoch()),
        max_entries=MAX_PROJECTIONS,
    )
