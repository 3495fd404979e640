"""GraphQL over HTTP as the graphql-over-http specification says: media types, status codes and refusals, once.

`GraphQLHTTP` answers every GraphQL GET and POST, whichever way the request came in:

- `GraphQLOverHTTP`, the lane beside the application (TIDINGS_HTTP_FAST_PATH), answers every POST to the
  GraphQL path without FastAPI's routing and dependency solving, most of the cost of a mutation that is otherwise one
  database round trip; a known `createNotification` document runs its compiled plan (`tidings.creates`);
- the GraphQL router's view answers GETs (GraphiQL stays Strawberry's), and POSTs when the lane is off.

The response media type is negotiated from Accept (q-values honoured): `application/graphql-response+json` answers a
request error (the document does not parse or validate, the variables do not coerce, the operation cannot be
determined) with 400 and no `data`; `application/json` (no Accept, `*/*`, or asked for) keeps 200 for every GraphQL
response. A request that is not a GraphQL-over-HTTP request is refused with 4xx and a coded error in either.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from starlette.types import Receive, Scope, Send
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType

from tidings.context import retry_after_header
from tidings.creates import create_plans
from tidings.errors import CLIENT_REQUEST_CODES, ErrorCode, UserError

if TYPE_CHECKING:
    from tidings.composition import TidingsSchema
    from tidings.context import Context

POST_OPERATIONS = (OperationType.QUERY, OperationType.MUTATION)  # subscriptions: graphql-transport-ws
GET_OPERATIONS = (OperationType.QUERY,)  # GET is safe: a mutation is 405 (the specification's MUST)
_Q_VALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")
_JSON_CONTENT_TYPE = re.compile(rb"\s*application/json\s*(;\s*charset\s*=\s*\"?utf-?8\"?\s*)?", re.IGNORECASE)


class MediaType(Enum):
    """The GraphQL response media types, by their Content-Type."""

    JSON = b"application/json"
    GRAPHQL_RESPONSE = b"application/graphql-response+json; charset=utf-8"


_NAMES = {MediaType.GRAPHQL_RESPONSE: "application/graphql-response+json", MediaType.JSON: "application/json"}


def negotiate(accept: bytes | None) -> MediaType | None:
    """The media type to answer in, or None when Accept takes neither (406).

    Each type gets the q-value of the most specific range that matches it (RFC 9110); the higher wins. On a tie, a
    type named outright beats one matched by a wildcard, the one listed first wins between two named, and wildcards
    alone (`*/*`, `application/*`) or no Accept at all mean `application/json`, the default that keeps every client
    written before the specification working. A range with a charset other than UTF-8 matches nothing.
    """
    # Clients send a handful of distinct Accept headers: each is parsed once; an odd long one is not kept.
    return _negotiate_cached(accept) if accept is None or len(accept) <= _CACHED_ACCEPT_BYTES else _negotiate(accept)


_CACHED_ACCEPT_BYTES = 256


def _negotiate(accept: bytes | None) -> MediaType | None:
    if accept is None or not accept.strip():
        return MediaType.JSON
    matched: dict[MediaType, tuple[float, int, int]] = {}  # q-value, specificity (2 named, 1 application/*), position
    for position, item in enumerate(accept.decode("latin-1").split(",")):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality: float | None = 1.0
        for parameter in parameters:
            name, _, value = (part.strip().lower() for part in parameter.partition("="))
            if name == "q":
                quality = float(value) if _Q_VALUE.fullmatch(value) else None
            elif name == "charset" and value.strip('"') not in ("utf-8", "utf8"):
                quality = None
        if quality is None:
            continue
        media_range = media_range.lower()
        for media_type, name in _NAMES.items():
            specificity = 2 if media_range == name else {"application/*": 1, "*/*": 0}.get(media_range, -1)
            if specificity >= 0 and specificity > matched.get(media_type, (0.0, -1, 0))[1]:
                matched[media_type] = (quality, specificity, position)
    best: tuple[tuple[float, bool, int, bool], MediaType] | None = None
    for media_type, (quality, specificity, position) in matched.items():
        named = specificity == 2
        key = (quality, named, -position if named else 0, media_type is MediaType.JSON)
        if quality > 0 and (best is None or key > best[0]):
            best = (key, media_type)
    return None if best is None else best[1]


_negotiate_cached = functools.lru_cache(maxsize=64)(_negotiate)


class Refusal(Exception):
    """A request that is not a GraphQL-over-HTTP request (or one HTTP cannot serve): answered with 4xx, never run."""

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """The request parameters of the specification: `query` required, the others optional (null is absent)."""

    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    extensions: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: bytes) -> GraphQLRequest:
        """The request in a POST body, or a Refusal that says what is wrong with it."""
        if not body.strip():
            raise Refusal(400, "The request has no body: POST a JSON object with `query` (a GraphQL document)")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise Refusal(400, f"The request body is not valid JSON: {error}") from None
        if isinstance(data, list):
            raise Refusal(400, "Batched requests are not supported: send one JSON object per request")
        if not isinstance(data, dict):
            raise Refusal(400, "The request body must be a JSON object with `query` (a GraphQL document)")
        return cls.checked(data.get("query"), data.get("variables"), data.get("operationName"), data.get("extensions"))

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> GraphQLRequest:
        """The request in a GET query string: `variables` and `extensions` as JSON text, `operationName=` absent."""
        decoded: dict[str, Any] = {}
        for name in ("variables", "extensions"):
            text = params.get(name)
            if text:
                try:
                    decoded[name] = orjson.loads(text)
                except orjson.JSONDecodeError as error:
                    raise Refusal(400, f"`{name}` is not valid JSON: {error}") from None
        return cls.checked(
            params.get("query"),
            decoded.get("variables"),
            params.get("operationName") or None,
            decoded.get("extensions"),
        )

    @classmethod
    def checked(cls, query: object, variables: object, operation_name: object, extensions: object) -> GraphQLRequest:
        if query is None or query == "":
            raise Refusal(400, "`query` is required: the GraphQL document to run, as a string")
        if not isinstance(query, str):
            raise Refusal(400, "`query` must be a string: the GraphQL document to run")
        if not (variables is None or isinstance(variables, dict)):
            raise Refusal(400, "`variables` must be an object (or null)")
        if not (operation_name is None or isinstance(operation_name, str)):
            raise Refusal(400, "`operationName` must be a string (or null)")
        if not (extensions is None or isinstance(extensions, dict)):
            raise Refusal(400, "`extensions` must be an object (or null)")
        return cls(query, variables, operation_name, extensions)


class Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class GraphQLHTTP:
    """Answers GraphQL GETs and POSTs; with `plans`, a known `createNotification` runs compiled (the lane's)."""

    def __init__(self, schema: TidingsSchema, *, plans: bool) -> None:
        self._schema = schema
        self._creates = create_plans() if plans else None

    async def post(
        self, content_type: bytes | None, accept: bytes | None, body: bytes, context: Callable[[], Context]
    ) -> Answer:
        media_type = negotiate(accept)
        try:
            if media_type is None:
                raise Refusal(406, _NOT_ACCEPTABLE)
            if content_type is None or not _JSON_CONTENT_TYPE.fullmatch(content_type):
                # Accept on a 415 names what the request could have been sent as (RFC 9110)
                raise Refusal(415, _UNSUPPORTED_BODY, headers=((b"accept", b"application/json"),))
            request = GraphQLRequest.from_json(body)
            caller = context()
            planned = await self._planned(request, media_type, caller)
            return planned or await self._execute(request, media_type, caller, POST_OPERATIONS)
        except Refusal as refusal:
            return refused(refusal, media_type)

    async def get(self, params: Mapping[str, str], accept: bytes | None, context: Callable[[], Context]) -> Answer:
        media_type = negotiate(accept)
        try:
            if media_type is None:
                raise Refusal(406, _NOT_ACCEPTABLE)
            request = GraphQLRequest.from_params(params)
            return await self._execute(request, media_type, context(), GET_OPERATIONS)
        except Refusal as refusal:
            return refused(refusal, media_type)

    async def _planned(self, request: GraphQLRequest, media_type: MediaType, context: Context) -> Answer | None:
        """A known `createNotification` document run by its compiled plan; None for everything else."""
        if self._creates is None or request.extensions is not None:
            return None
        document = self._schema.documents.cached(request.query)
        plan = self._creates.get(request.query, request.operation_name, document) if document else None
        content = await plan.execute(self._schema, context, request.variables) if plan else None
        return None if content is None else Answer(200, _headers(media_type, context), content)  # data, always

    async def _execute(
        self, request: GraphQLRequest, media_type: MediaType, context: Context, allowed: tuple[OperationType, ...]
    ) -> Answer:
        try:
            result = await self._schema.execute(
                request.query,
                variable_values=request.variables,
                context_value=context,
                operation_name=request.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request.extensions,
            )
        except CannotGetOperationTypeError as error:
            message = (
                "The document defines no operation to run"
                if error.operation_name is None
                else f"The document has no operation named {error.operation_name!r} (operationName)"
            )
            result = ExecutionResult(data=None, errors=[UserError(message, ErrorCode.OPERATION_RESOLUTION_FAILURE)])
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.MUTATION:
                raise Refusal(405, "Mutations are sent with POST, not GET", headers=((b"allow", b"POST"),)) from None
            message = "Subscriptions are served over WebSocket (graphql-transport-ws) at this path, not over HTTP"
            result = ExecutionResult(data=None, errors=[UserError(message, ErrorCode.BAD_REQUEST)])
        return answer(result, media_type, context)


_UNSUPPORTED_BODY = "POST the request as Content-Type: application/json (UTF-8)"
_NOT_ACCEPTABLE = "Accept must allow application/graphql-response+json or application/json"


def answer(result: ExecutionResult, media_type: MediaType, context: Context | None = None) -> Answer:
    """A GraphQL response: 200, except a request error in application/graphql-response+json (400, or 500 if ours).

    A request error is raised before execution (no error has a path): the response has no `data` entry then, in
    either media type (the GraphQL specification), and an executed operation always has one, null or not.
    """
    errors = result.errors
    status = 200
    if result.data is None and errors and all(error.path is None for error in errors):
        response: dict[str, Any] = {"errors": [error.formatted for error in errors]}
        if media_type is MediaType.GRAPHQL_RESPONSE:
            client = all((error.extensions or {}).get("code") in CLIENT_REQUEST_CODES for error in errors)
            status = 400 if client else 500
    else:
        response = {"data": result.data}
        if errors:
            response["errors"] = [error.formatted for error in errors]
    if result.extensions:
        response["extensions"] = result.extensions
    return Answer(status, _headers(media_type, context), orjson.dumps(response))


def refused(refusal: Refusal, media_type: MediaType | None) -> Answer:
    """The refusal as a GraphQL response of errors only, coded BAD_REQUEST, in the negotiated type if there is one."""
    error = {"message": refusal.message, "extensions": {"code": ErrorCode.BAD_REQUEST.value}}
    headers = [*_headers(media_type or MediaType.JSON, None), *refusal.headers]
    return Answer(refusal.status, headers, orjson.dumps({"errors": [error]}))


def _headers(media_type: MediaType, context: Context | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", media_type.value)]
    if context is not None and context.retry_after is not None:
        headers.append((b"retry-after", retry_after_header(context.retry_after).encode()))
    return headers


class GraphQLOverHTTP:
    """The ASGI application of every POST to the GraphQL path, answered by `GraphQLHTTP` directly.

    `TidingsApp` routes those requests here, past FastAPI's middleware, routing and dependency solving: they cost more
    than the request, and nothing in them applies to it.
    """

    def __init__(
        self,
        *,
        schema: TidingsSchema,
        context: Callable[[bytes | None], Context],
        answered: Callable[[], None],
    ) -> None:
        self._http = GraphQLHTTP(schema, plans=True)
        self._context = context
        self._answered = answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = content_type = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
            elif name == b"authorization":
                authorization = value
        body = await _read_body(receive)
        status, headers, content = await self._http.post(
            content_type, accept, body, lambda: self._context(authorization)
        )
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self._answered()


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
