"""The graphql-transport-ws wire messages: close codes, client frame validation, close reasons (graphql-ws's
`common.ts`)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, cast

import orjson
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 section 5.5: a control frame payload is at most 125 bytes, 2 of them the code
MAX_OPERATION_ID_LENGTH = 128  # clients use counters or UUIDs; the id is echoed in every message of the operation


class CloseCode(IntEnum):
    """Every close code a tidings WebSocket client can see, and who sends it.

    graphql-ws clients reconnect after 1000, 1001, 1005, 1006, 1012, 1013, 1014, 4403, 4408 and 4499 and give up
    after any other code, so a code here is also a decision about whether the client comes back.
    """

    GOING_AWAY = 1001  # keep-alive timeout: retried, like the dropped connection it most likely is
    MESSAGE_TOO_BIG = 1009  # uvicorn (ws_max_size): a frame over TIDINGS_MAX_REQUEST_BYTES; not retried
    SERVICE_RESTART = 1012  # uvicorn, on shutdown; retried
    TRY_AGAIN_LATER = 1013  # slow consumer: a write did not finish in time; retried, `after` resumes without loss
    BAD_REQUEST = 4400  # invalid message; not retried
    UNAUTHORIZED = 4401  # subscribe before connection_ack; not retried
    FORBIDDEN = 4403  # no valid token, token expired, too many connections; retried with fresh connectionParams
    SUBPROTOCOL_NOT_ACCEPTABLE = 4406  # Strawberry's view: not graphql-transport-ws; not retried
    CONNECTION_INITIALISATION_TIMEOUT = 4408  # Strawberry's timer (TIDINGS_CONNECTION_INIT_TIMEOUT); retried
    SUBSCRIBER_ALREADY_EXISTS = 4409  # Strawberry: subscribe with an id in flight; not retried
    TOO_MANY_INITIALISATION_REQUESTS = 4429  # a second connection_init; not retried
    INTERNAL_SERVER_ERROR = 4500  # a bug in this module (logged); not retried


class InvalidMessage(ValueError):
    """A frame that is not a graphql-transport-ws message a client may send; the text is the close reason."""


def fit_reason(reason: str) -> str:
    """The reason cut to the close frame's limit, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    ellipsis = "…"
    room = MAX_CLOSE_REASON_BYTES - len(ellipsis.encode())
    return encoded[:room].decode(errors="ignore") + ellipsis


def parse_message(text: str) -> Message:
    """Decode and validate one client frame (graphql-ws's `validateMessage`, client-to-server types only)."""
    try:
        # orjson, not json: it bounds nesting depth, where json.loads raises RecursionError on "[[[[...".
        value: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidMessage("Invalid message: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidMessage("Invalid message: not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("Invalid message: 'type' must be a string")
    if kind in ("connection_init", "ping", "pong"):
        _check_optional(value, "payload", dict, kind, "an object")
    elif kind == "subscribe":
        _check_id(value, kind)
        payload = value.get("payload")
        if not isinstance(payload, dict):
            raise InvalidMessage("Invalid subscribe message: 'payload' must be an object")
        if not isinstance(payload.get("query"), str):
            raise InvalidMessage("Invalid subscribe message: 'query' must be a string")
        _check_optional(payload, "variables", dict, kind, "an object")
        _check_optional(payload, "operationName", str, kind, "a string")
        _check_optional(payload, "extensions", dict, kind, "an object")
    elif kind == "complete":
        _check_id(value, kind)
    else:
        raise InvalidMessage(f'Invalid message: unknown type "{kind}"')
    return cast("Message", value)


def _check_id(message: dict[str, Any], kind: str) -> None:
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not 0 < len(operation_id) <= MAX_OPERATION_ID_LENGTH:
        raise InvalidMessage(
            f"Invalid {kind} message: 'id' must be a string of 1 to {MAX_OPERATION_ID_LENGTH} characters"
        )


def _check_optional(container: dict[str, Any], key: str, kind_of: type, kind: str, described: str) -> None:
    value = container.get(key)
    if value is not None and not isinstance(value, kind_of):
        raise InvalidMessage(f"Invalid {kind} message: '{key}' must be {described} or null")
