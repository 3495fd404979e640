"""Errors users see: each carries an Apollo-style `extensions.code`; anything else is masked."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError
from strawberry.schema.exceptions import CannotGetOperationTypeError


class ErrorCode(StrEnum):
    """Every `extensions.code` the API sends (the README lists them with their meaning)."""

    # A request that is not a GraphQL-over-HTTP request (body, media type, method, size), or a GraphQL request that
    # HTTP cannot serve (a subscription): nothing ran.
    BAD_REQUEST = "BAD_REQUEST"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    # Refused before execution (Apollo's codes for the same): nothing ran, so the response has no `data`.
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
    BAD_USER_INPUT = "BAD_USER_INPUT"  # also variables that do not coerce to their types
    # Refused while executing.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"  # masked: the log has the details


# Codes of request errors that are the client's to fix: `application/graphql-response+json` answers them with 400.
CLIENT_REQUEST_CODES = frozenset(
    {
        ErrorCode.BAD_REQUEST,
        ErrorCode.GRAPHQL_PARSE_FAILED,
        ErrorCode.GRAPHQL_VALIDATION_FAILED,
        ErrorCode.OPERATION_RESOLUTION_FAILURE,
        ErrorCode.BAD_USER_INPUT,
    }
)


class UserError(GraphQLError):
    """An expected error caused by the request: shown to the client, not logged as a failure."""

    def __init__(self, message: str, code: ErrorCode, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extensions})
        self.code = code


def client_error(error: GraphQLError, code: ErrorCode) -> GraphQLError:
    """Mark an error graphql-core raised about the request as the client's: `extensions.code` set, never masked.

    In place: graphql-core builds these errors afresh for each request (invalid documents are never cached).
    """
    error.extensions = {**(error.extensions or {}), "code": code.value}
    error.original_error = None  # a coercion error wraps the scalar's own error: about the input, not a failure
    return error


def request_error(error: GraphQLError) -> GraphQLError:
    """A request error as clients see it: an operation that cannot be determined gets its code."""
    if isinstance(error.original_error, CannotGetOperationTypeError):
        return client_error(error, ErrorCode.OPERATION_RESOLUTION_FAILURE)
    return error


def bad_input(message: str, *, argument: str | None = None) -> UserError:
    extra = {"argument": argument} if argument else {}
    return UserError(message, ErrorCode.BAD_USER_INPUT, **extra)


def not_found(what: str = "Notification") -> UserError:
    return UserError(f"{what} not found", ErrorCode.NOT_FOUND)


def forbidden(message: str) -> UserError:
    return UserError(message, ErrorCode.FORBIDDEN)


def unauthenticated(message: str = "A valid bearer token is required") -> UserError:
    return UserError(message, ErrorCode.UNAUTHENTICATED)


def is_user_error(error: GraphQLError) -> bool:
    """Errors that are the client's to fix: syntax, validation and coercion errors, and our own coded errors."""
    original = error.original_error
    if original is None:
        return True  # graphql-core syntax/validation errors: about the query, never internal
    return isinstance(original, UserError | CannotGetOperationTypeError)


def outcome_of(error: BaseException) -> str:
    """How a resolver's failure is counted (`tidings_mutations{outcome}`): its code, or INTERNAL_SERVER_ERROR."""
    if isinstance(error, GraphQLError) and isinstance(error.original_error, UserError):
        error = error.original_error
    return error.code.value if isinstance(error, UserError) else ErrorCode.INTERNAL_SERVER_ERROR.value
