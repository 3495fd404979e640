"""The executable schema: types (tidings.schema) and resolvers (tidings.resolvers) composed with tidings' extensions.

The floors go one way: composition imports resolvers, resolvers import types, types import neither.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension, MaskErrors, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext, Info

from tidings.documents import CachedDocuments, DocumentCache, DocumentRules
from tidings.errors import ErrorCode, client_error, is_user_error, outcome_of
from tidings.inputs import MAX_PAGE
from tidings.resolvers import Mutation, Query, Subscription
from tidings.schema import DateTime

if TYPE_CHECKING:
    from tidings.config import Settings


def build_schema(settings: Settings) -> TidingsSchema:
    """The executable schema with tidings' extensions (error masking, the document cache with every limit)."""
    _count_mutations()
    schema = TidingsSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map={datetime: DateTime}),
        execution_context_class=CoercingExecutionContext,
    )
    rules = DocumentRules.build(
        max_tokens=settings.max_tokens,
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        introspection=settings.introspection_enabled,
        max_rows=settings.max_rows,
        page_max=MAX_PAGE,
    )
    schema.documents = DocumentCache(schema._schema, rules)
    schema.extensions = tuple(schema_extensions(schema.documents))
    return schema


class TidingsSchema(strawberry.Schema):
    """Logs only unexpected errors: a user's bad input is an answer, not a failure of the service."""

    documents: DocumentCache  # every document parsed and validated once (tidings.documents)

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        unexpected = [error for error in errors if not is_user_error(error)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


class CoercingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with variables that do not coerce answered as BAD_USER_INPUT (not masked, not logged).

    graphql-core coerces the variables while building the executor, for queries, mutations and subscriptions alike;
    the errors it returns there wrap the scalar's own error, which would otherwise be masked as internal.
    """

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        built = super().build(*args, **kwargs)
        if isinstance(built, list):  # the operation was determined before (Strawberry): these are coercion errors
            return [client_error(error, ErrorCode.BAD_USER_INPUT) for error in built]
        return built


class CountedMutation(FieldExtension):
    """Counts each mutation by name and outcome (`tidings_mutations`): only mutations pay for it, once per call."""

    async def resolve_async(self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any) -> Any:
        metrics = info.context.services.metrics
        try:
            result = await next_(source, info, **kwargs)
        except Exception as error:
            metrics.mutation_done(info.field_name, outcome_of(error))
            raise
        metrics.mutation_done(info.field_name, "ok")
        return result


def _count_mutations() -> None:
    """Every root mutation field counted, the ones added later included (idempotent: fields are class state)."""
    for field in Mutation.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not any(isinstance(extension, CountedMutation) for extension in field.extensions):
            field.extensions.append(CountedMutation())


class _MaskInternalErrors(MaskErrors):
    """Hide internal errors (no stack traces or SQL in responses), with a code clients can branch on."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not is_user_error(error), error_message="Internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": ErrorCode.INTERNAL_SERVER_ERROR.value}
        return masked


def mask_error(error: GraphQLError) -> GraphQLError:
    """The error as a response shows it: unexpected ones masked (for paths that run outside the extensions)."""
    return error if is_user_error(error) else _MaskInternalErrors().anonymise_error(error)


def schema_extensions(documents: DocumentCache) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """Factories: Strawberry builds fresh extensions per request (the document cache is shared)."""
    return [_MaskInternalErrors, lambda: CachedDocuments(documents)]
