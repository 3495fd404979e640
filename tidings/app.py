"""The FastAPI application: `create_app(settings)` builds engine, store, broadcast and GraphQL router."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from tidings import logs, web
from tidings.auth import InvalidToken, TokenVerifier, authorization_from_params
from tidings.broadcast import Broadcast
from tidings.composition import TidingsSchema, build_schema
from tidings.config import Settings
from tidings.context import Context, Services
from tidings.delivery import Projection, projections
from tidings.documents import CompiledDocuments
from tidings.feed import FeedHub
from tidings.http import GraphQLHTTP, GraphQLOverHTTP
from tidings.limits import Admission, BodySizeLimit, ConnectionSlots, RateLimiter
from tidings.metrics import CONTENT_TYPE_LATEST, Metrics
from tidings.presence import create_presence
from tidings.protocol import TransportWSHandler
from tidings.startup import StartupError, broadcast_error, database_error, open_database
from tidings.store import SqlStore, create_engine
from tidings.timers import Timers
from tidings.wheel import TimerWheel

logger = logging.getLogger("tidings")

GRAPHQL_PATH = web.GRAPHQL_PATH  # one path for the API, GraphiQL and the dashboard's links
# Young collections every 50,000 allocations (each a pause of 10-25 ms with thousands of sockets; 20,000 made them a
# few ms each but cost about 4 % more CPU per delivery), the older generations rarely.
GC_THRESHOLDS = (50_000, 20, 100)
LOOPBACK_ORIGIN = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?")


class TidingsGraphQLRouter(GraphQLRouter[Context, None]):
    """Strawberry's router with tidings' graphql-transport-ws handler; authenticates WebSockets at `connection_init`.

    Over HTTP it serves GraphiQL and hands every GraphQL GET and POST to `tidings.http.GraphQLHTTP`: the answers of
    the lane in front (TIDINGS_HTTP_FAST_PATH) and of this view are the same code, so the same bytes.
    """

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self,
        schema: TidingsSchema,
        *,
        services: Services,
        max_connections_per_user: int,
        loopback_origins: bool,
        projections: CompiledDocuments[Projection] | None,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self.loopback_origins = loopback_origins
        # Per process, like everything the handler keeps: with --workers N a user may hold N times as many.
        self.connection_slots = ConnectionSlots(max_connections_per_user)
        self.projections = projections
        self.services = services
        self.keepalive = TimerWheel(services.settings.keepalive_interval)
        self.http = GraphQLHTTP(schema, plans=False)

    def encode_json(self, data: object) -> bytes:
        """orjson for every response and frame, HTTP and WebSocket alike (the fast path encodes the same way)."""
        return orjson.dumps(data)

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        """Cross-origin handshakes: TIDINGS_ALLOWED_ORIGINS, or any loopback page on the embedded default."""
        if super().is_websocket_origin_allowed(request, origin):
            return True
        return self.loopback_origins and LOOPBACK_ORIGIN.fullmatch(origin) is not None

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Context = UNSET, root_value: None = UNSET
    ) -> Response | WebSocket:
        """GraphQL over HTTP as `GraphQLHTTP` answers it; WebSockets and the GraphiQL page as Strawberry serves them."""
        if isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        if self.should_render_graphql_ide(self.request_adapter_class(request)):
            return await super().run(request, context, root_value)
        accept = _header(request, "accept")
        if request.method == "GET":
            answer = await self.http.get(request.query_params, accept, lambda: context)
        else:
            body = await request.body()
            answer = await self.http.post(_header(request, "content-type"), accept, body, lambda: context)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in answer.headers}
        return Response(answer.body, status_code=answer.status, headers=headers)

    async def run_websocket(self, websocket: WebSocket) -> None:
        """Serve one socket as the router's WebSocket route would, without the route (see `TidingsApp`)."""
        await self.run(request=websocket, context=Context(self.services), root_value=None)

    async def on_ws_connect(self, context: Context) -> None:
        header = authorization_from_params(context.connection_params)
        try:
            context.identity = context.services.verifier.verify_header(header)
        except InvalidToken as refusal:
            _log_refusal(refusal, "a WebSocket's connection_init")
            # 4403 either way (clients retry with fresh connectionParams); only an expiry is named.
            raise ConnectionRejectionError({"reason": "Token expired" if refusal.expired else "Forbidden"}) from None


def _log_refusal(refusal: InvalidToken, where: str) -> None:
    """Say why a token was refused, for whoever runs the server; never the token itself."""
    logger.info("auth: refused the token of %s: %s", where, refusal.reason)


def _header(request: Request, name: str) -> bytes | None:
    value = request.headers.get(name)
    return None if value is None else value.encode("latin-1")


class TidingsApp(FastAPI):
    """FastAPI, except that a graphql-transport-ws socket goes straight to the GraphQL router's WebSocket view, and a
    POST to the GraphQL path straight to the lane that answers it (CORS and the body bound, then `GraphQLOverHTTP`).

    A socket lives for hours: every ASGI layer it passes (error and exception middleware, CORS, routing, dependency
    solving, exit stacks) keeps a suspended frame for as long, per socket. The view itself checks the origin and the
    subprotocol; no other layer has anything to do with a WebSocket.
    """

    graphql_router: TidingsGraphQLRouter | None = None
    graphql_lane: ASGIApp | None = None  # answers every POST to the GraphQL path (TIDINGS_HTTP_FAST_PATH)
    startup_error: StartupError | None = None  # set by the lifespan when start-up failed in a way we can explain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "lifespan":
            logs.enter("request_id" if kind == "http" else "connection_id")  # what it logs carries the id
        router = self.graphql_router
        if router is not None and kind == "websocket" and scope["path"] == GRAPHQL_PATH:
            await router.run_websocket(WebSocket(scope, receive, send))
            return
        lane = self.graphql_lane
        if lane is not None and kind == "http" and scope["method"] == "POST" and scope["path"] == GRAPHQL_PATH:
            await lane(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            send = self._explaining_startup_failure(send)
        await super().__call__(scope, receive, send)

    def _explaining_startup_failure(self, send: Send) -> Send:
        """Starlette reports a failed start-up with its traceback, which the server logs: say the one line instead."""

        async def explaining(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.startup_error is not None:
                message = {"type": "lifespan.startup.failed", "message": str(self.startup_error)}
            await send(message)

        return explaining


def build_services(settings: Settings) -> Services:
    engine = create_engine(
        settings.db_url,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
        statement_timeout=settings.statement_timeout,
    )
    store = SqlStore(
        engine,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
        statement_timeout=settings.statement_timeout,
    )
    metrics = Metrics()
    metrics.watch_connections(store.connections)
    broadcast = Broadcast(
        settings.broadcast_url,
        queue_size=settings.subscriber_queue_size,
        channel_prefix=settings.channel_prefix,
        reconnect_delay=settings.broker_reconnect_delay,
        reconnect_delay_max=settings.broker_reconnect_delay_max,
        on_reconnect=metrics.broker_reconnects.inc,
    )
    hub = FeedHub(
        store,
        broadcast,
        batch_size=settings.replay_batch_size,
        replay_concurrency=settings.replay_concurrency,
        replay_concurrency_per_user=settings.replay_concurrency_per_user,
        metrics=metrics,
    )
    return Services(
        settings=settings,
        store=store,
        broadcast=broadcast,
        verifier=TokenVerifier.from_settings(settings),
        hub=hub,
        metrics=metrics,
        admission=Admission(settings.max_inflight_mutations),
        rate_limiter=RateLimiter(
            user_rate=settings.user_mutations_per_second, service_rate=settings.service_mutations_per_second
        ),
        subscribe_limiter=RateLimiter(
            user_rate=settings.user_subscribes_per_second,
            service_rate=settings.service_subscribes_per_second,
            what="subscribes",
        ),
        timers=Timers(store, hub, interval=settings.timer_interval, batch_size=settings.timer_batch_size),
        presence=create_presence(
            settings.broadcast_url,
            prefix=settings.channel_prefix,
            interval=settings.presence_interval,
            seen_ttl=settings.retention_days * 86400,
        ),
    )


async def _purge_expired(services: Services) -> None:
    """Retention: forget events (and deleted notifications) older than TIDINGS_RETENTION_DAYS, periodically."""
    settings = services.settings
    while True:
        try:
            cutoff = datetime.now(UTC) - timedelta(days=settings.retention_days)
            removed_events, removed_tombstones = await services.store.purge_before(
                cutoff, batch_size=settings.retention_batch_size
            )
            if removed_events or removed_tombstones:
                logger.info(
                    "retention: removed %d events and %d deleted notifications", removed_events, removed_tombstones
                )
        except Exception:
            logger.warning("retention: purge failed; will retry", exc_info=True)
        await asyncio.sleep(settings.retention_interval)


async def _start(services: Services) -> None:
    """Open the database and the broker; a failure the operator can fix is a one-line `StartupError`."""
    settings = services.settings
    try:
        await open_database(settings, services.store.engine)
        try:
            await services.store.start()
        except Exception as error:
            raise database_error(settings, error) from None
        try:
            # redis:// serves without Redis until it is reachable; what cannot start without its broker raises.
            await services.broadcast.connect()
        except Exception as error:
            raise broadcast_error(settings, error) from None
    except BaseException:
        await services.store.close()
        raise


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build a tidings application. Nothing is shared between apps: tests build several side by side."""
    settings = settings or Settings()
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await _start(services)
        except StartupError as error:
            app.startup_error = error
            raise
        # Everything built so far lives as long as the process: keep it out of every future collection, and collect
        # the young generation less often. Full collections over hundreds of thousands of objects are what stalls
        # deliveries to thousands of sockets.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        services.metrics.watch_gc()
        if app.graphql_router is not None:
            app.graphql_router.keepalive.start()
        await services.presence.start()
        background = [
            asyncio.create_task(_purge_expired(services), name="tidings-retention"),
            asyncio.create_task(services.hub.run(settings.sync_interval), name="tidings-feed-sync"),
            asyncio.create_task(services.timers.run(), name="tidings-timers"),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if app.graphql_router is not None:
                await app.graphql_router.keepalive.close()
            services.metrics.unwatch_gc()
            await services.presence.close()
            await services.broadcast.disconnect()
            await services.store.close()

    app = TidingsApp(title="tidings", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    web.mount(app, services)  # before the routes below: the dashboard is served at /

    def http_context(authorization: str | None) -> Context:
        context = Context(services)
        if authorization is None:
            return context  # resolvers that need a caller answer UNAUTHENTICATED
        try:
            context.identity = services.verifier.verify_header(authorization)
        except InvalidToken as refusal:
            context.token_refusal = refusal
            _log_refusal(refusal, "an HTTP request")
        return context

    async def context_getter(connection: HTTPConnection) -> Context:
        if connection.scope["type"] == "http":
            return http_context(connection.headers.get("authorization"))
        return Context(services)

    schema = build_schema(settings)
    router = TidingsGraphQLRouter(
        schema,
        services=services,
        path=GRAPHQL_PATH,
        context_getter=context_getter,
        graphql_ide=web.strawberry_ide(settings),  # ours, from the local build, when it is built
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        max_connections_per_user=settings.max_connections_per_user,
        max_subscriptions_per_connection=settings.max_operations_per_connection,
        # Same-origin pages are always allowed; a handshake without Origin (a backend) too.
        allowed_origins=settings.allowed_origins,
        loopback_origins=settings.loopback_origins_allowed,
        projections=projections(epoch=lambda: services.store.epoch) if settings.delivery_fast_path else None,
    )
    app.include_router(router)  # the WebSocket route stays for what is mounted elsewhere; TidingsApp takes the socket
    app.graphql_router = router
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)  # bodies bounded first
    # The same origins for HTTP. Tokens travel in headers, never cookies: no credentials mode.
    cors: dict[str, Any] = {
        "allow_origins": settings.allowed_origins,
        "allow_origin_regex": LOOPBACK_ORIGIN.pattern if settings.loopback_origins_allowed else None,
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["authorization", "content-type"],
        "max_age": 600,
    }
    app.add_middleware(CORSMiddleware, **cors)
    if settings.http_fast_path:
        lane = GraphQLOverHTTP(
            schema=schema,
            context=lambda header: http_context(header.decode("latin-1") if header is not None else None),
            answered=services.metrics.http_fast_path.inc,
        )
        # The same two layers as every other request passes, and none of the rest (see TidingsApp).
        app.graphql_lane = CORSMiddleware(BodySizeLimit(lane, max_bytes=settings.max_request_bytes), **cors)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.metrics:
        expected = f"Bearer {settings.metrics_token}".encode() if settings.metrics_token else None

        @app.get("/metrics", include_in_schema=False)
        async def metrics(request: Request) -> Response:
            if expected is not None:
                given = (request.headers.get("authorization") or "").encode()
                if not hmac.compare_digest(given, expected):
                    return Response(
                        "/metrics needs Authorization: Bearer <TIDINGS_METRICS_TOKEN>\n",
                        status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                        media_type="text/plain",
                    )
            return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks: dict[str, Any] = {"broadcast": services.broadcast.healthy}
        try:
            await asyncio.wait_for(services.store.ping(), timeout=2)
            checks["database"] = True
        except Exception:
            checks["database"] = False
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    return app
