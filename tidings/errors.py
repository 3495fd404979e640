"""Errors users see: each carries an Apollo-style `extensions.code`; anything else is masked."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"


class UserError(GraphQLError):
    """An expected error caused by the request: shown to the client, not logged as a failure."""

    def __init__(self, message: str, code: ErrorCode, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extensions})
        self.code = code


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
    """Errors that are the client's to fix: validation and parse errors, and our own coded errors."""
    original = error.original_error
    if original is None:
        return True  # graphql-core syntax/validation errors: about the query, never internal
    return isinstance(original, UserError)
