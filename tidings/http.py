"""GraphQL over HTTP, the common case without the web framework: a JSON POST of a known query or mutation.

A `createNotification` used to pass FastAPI's routing and dependency solving and Strawberry's HTTP view around one
`schema.execute`: most of the cost of a mutation that is otherwise one database round trip. `GraphQLOverHTTP` answers
a POST of `application/json` whose document has been validated before (so it is in the document cache) and is a query
or a mutation, with the same `schema.execute`, the same context and the same response Strawberry's view would give.
Everything else (GET, GraphiQL, other media types, batches, subscriptions, a document seen for the first time, a body
that is not a GraphQL request) goes on to the application unchanged, body included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import DocumentNode, OperationType
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.http import process_result
from strawberry.types.graphql import OperationType as StrawberryOperationType

from tidings.context import retry_after_header
from tidings.creates import create_plans
from tidings.delivery import operation_of

if TYPE_CHECKING:
    from tidings.composition import TidingsSchema
    from tidings.context import Context

_Request = tuple[str, dict[str, Any] | None, str | None, dict[str, Any] | None, DocumentNode]
ANSWERED = (OperationType.QUERY, OperationType.MUTATION)  # subscriptions over HTTP stream: the application's
ALLOWED = (StrawberryOperationType.QUERY, StrawberryOperationType.MUTATION)
_JSON_TYPES = (b"application/json",)
_ACCEPTED = (b"application/json", b"*/*", b"application/*")
_NEGOTIATED = (b"application/graphql-response+json", b"text/event-stream", b"multipart/")
_RESPONSE_HEADERS = [(b"content-type", b"application/json")]


class GraphQLOverHTTP:
    """ASGI middleware in front of the router for `POST <path>` with a JSON body of a cached query or mutation."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        schema: TidingsSchema,
        path: str,
        context: Callable[[bytes | None], Context],
        answered: Callable[[], None],
    ) -> None:
        self.app = app
        self._answered = answered
        self._creates = create_plans()
        self._schema = schema
        self._path = path
        self._context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self._path:
            await self.app(scope, receive, send)
            return
        authorization = content_type = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"authorization":
                authorization = value
        if not _is_json(content_type) or not _accepts_json(accept):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = self._request(body)
        if request is None:
            await self.app(scope, _replay(body, receive), send)
            return
        query, variables, operation_name, extensions, document = request
        context = self._context(authorization)
        content = None
        plan = self._creates.get(query, operation_name, document) if extensions is None else None
        if plan is not None:
            content = await plan.execute(self._schema, context, variables)
        if content is None:
            result = await self._schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
                allowed_operation_types=ALLOWED,
                operation_extensions=extensions,
            )
            content = orjson.dumps(process_result(result))
        headers = [*_RESPONSE_HEADERS, (b"content-length", str(len(content)).encode())]
        if context.retry_after is not None:
            headers.append((b"retry-after", retry_after_header(context.retry_after).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self._answered()

    def _request(self, body: bytes) -> _Request | None:
        """(query, variables, operationName, extensions, document) of a request this lane answers, else None."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None  # a batch, or not a GraphQL request: the application says what is wrong
        query, variables = data.get("query"), data.get("variables")
        operation_name, extensions = data.get("operationName"), data.get("extensions")
        if not isinstance(query, str) or not (variables is None or isinstance(variables, dict)):
            return None
        if not (operation_name is None or isinstance(operation_name, str)):
            return None
        if not (extensions is None or isinstance(extensions, dict)):
            return None
        document = self._schema.documents.cached(query)
        if document is None:
            return None  # validated (and cached) on the way through the application, answered here next time
        operation = operation_of(document, operation_name)
        if operation is None or operation.operation not in ANSWERED:
            return None
        return query, variables, operation_name, extensions, document


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type in _JSON_TYPES


def _accepts_json(accept: bytes | None) -> bool:
    """No Accept, or one that takes plain JSON: streaming and the GraphQL response media type are negotiated by the
    application."""
    if accept is None:
        return True
    accept = accept.lower()
    return any(kind in accept for kind in _ACCEPTED) and not any(kind in accept for kind in _NEGOTIATED)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the application the body already read, then what the client sends next."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
