"""The browser side: the dashboard at `/`, GraphiQL served from the local build, and dev tokens for the dashboard.

The pages are built from `web/` by `make serve` (Vite) into `web/dist`, or into `TIDINGS_WEB_DIR`. Without a build
the API is unchanged: `/` explains how to build the pages, and browsers at `/graphql` get Strawberry's own GraphiQL,
which needs internet access for its CDN.

Dev tokens let the dashboard sign in any user name, so they are minted only for the page itself, opened from the
link `tidings serve` prints: that link carries a sign-in code (new at every start unless TIDINGS_DEV_SIGN_IN_CODE
pins one), and the request must come straight from a loopback origin (no proxy, no other site, no other page).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.config import Settings
from tidings.context import Services

logger = logging.getLogger("tidings")

SOURCE_BUILD = Path(__file__).resolve().parent.parent / "web" / "dist"
GRAPHQL_PATH = "/graphql"  # the API (HTTP and WebSocket) and GraphiQL
DEV_TOKEN_TTL = timedelta(hours=12)
DEV_SERVICE_SUBJECT = "dashboard"
_NO_CACHE = {"Cache-Control": "no-cache"}
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
SIGN_IN_CODE_BYTES = 24
# The Host a browser sends for a page it opened on this machine: nothing else, and only a port that can exist.
_LOOPBACK_HOST = re.compile(r"(?:localhost|127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?")
# Set by whatever relays a request: a reverse proxy on this host would otherwise make any client look local.
_FORWARDING_HEADERS = ("forwarded", "via", "x-real-ip")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tidings</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 10vh auto; padding: 0 1rem">
<h1>tidings is running</h1>
<p>The dashboard is not built. With Node.js 20.19 or later and npm installed, <code>make serve</code> builds it
(or run <code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>), then reload this page.</p>
<p>The API works without it: GraphQL over HTTP and <code>graphql-transport-ws</code> at
<a href="/graphql"><code>/graphql</code></a>.</p>
</body></html>
"""


def build_dir(settings: Settings) -> Path:
    return settings.web_dir or SOURCE_BUILD


def is_built(settings: Settings) -> bool:
    return (build_dir(settings) / "index.html").is_file()


def strawberry_ide(settings: Settings) -> Literal["graphiql"] | None:
    """Strawberry's own GraphiQL page (CDN) only where ours is not built; ours is served by `GraphiQLPage`."""
    return "graphiql" if settings.graphiql and not is_built(settings) else None


def dev_tokens_enabled(settings: Settings) -> bool:
    """Explicit TIDINGS_DEV_TOKENS, else on for the embedded default listening on loopback only."""
    if settings.dev_tokens is not None:
        return settings.dev_tokens
    return settings.embedded and _is_loopback(settings.host)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_sign_in_code() -> str:
    return secrets.token_urlsafe(SIGN_IN_CODE_BYTES)


def local_url(settings: Settings) -> str:
    """The server's address for a browser on this machine (a wildcard bind is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    return f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}"


def dashboard_link(settings: Settings, sign_in_code: str | None) -> str:
    """The dashboard's address, with the sign-in code in the fragment: browsers never send it, servers never log it."""
    url = f"{local_url(settings)}/"
    return f"{url}#code={sign_in_code}" if sign_in_code else url


def dev_token_refusal(request: Request) -> str | None:
    """Why a dev-token request is not the dashboard's own, straight from a loopback page; None when it is.

    Decided from the raw headers: Starlette's `request.url` falls back to the bind address when Host is missing or
    unparsable, which is exactly the request to refuse.
    """
    headers = request.headers
    hosts = headers.getlist("host")
    match = _LOOPBACK_HOST.fullmatch(hosts[0].lower()) if len(hosts) == 1 else None
    if match is None or not 0 < int(match.group(1) or 80) <= 65535:
        return "dev tokens are only minted for a loopback Host"
    if any(name in _FORWARDING_HEADERS or name.startswith("x-forwarded-") for name in headers):
        return "dev tokens are not minted through a proxy"
    # Browsers send both on a fetch: the page's own origin, or a request from another site or page.
    origin = headers.get("origin")
    if origin is not None and origin.lower() != f"{request.scope['scheme']}://{match.group(0)}":
        return "dev tokens are only minted for the dashboard's own origin"
    if headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return "dev tokens are only minted for the dashboard's own origin"
    return None


class DevTokenRequest(BaseModel):
    user: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(max_length=200)] = ""
    service: bool = False


class DevTokens(BaseModel):
    user: str
    token: str
    serviceToken: str | None  # camelCase: the JSON the page reads; only when the page asked for one


class DashboardConfig(BaseModel):
    devTokens: bool
    graphiql: bool


class ImmutableAssets(StaticFiles):
    """Vite's hashed assets: a changed file gets a new name, so browsers may keep each one forever."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class GraphiQLPage:
    """Answer a browser's GET /graphql with the locally built GraphiQL, where Strawberry would show its own, and also
    when a browser opens a GraphiQL link (`/graphql?query=...&variables=...&operationName=...`): the page reads them.

    Middleware rather than a route: GET /graphql?query=... from any other client must still reach Strawberry's router.
    A link opened in a browser is told apart by `Sec-Fetch-Dest: document`, which browsers send on navigation only
    (never on fetch() or from curl); a browser that sends no Sec-Fetch headers gets the result, as from Strawberry.
    """

    def __init__(self, app: ASGIApp, *, page: Path) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == GRAPHQL_PATH
            and scope["method"] in ("GET", "HEAD")
            and self._wants_the_page(Headers(scope=scope), QueryParams(scope["query_string"]))
            and self.page.is_file()
        ):
            await FileResponse(self.page, media_type="text/html", headers=_NO_CACHE)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _wants_the_page(headers: Headers, params: QueryParams) -> bool:
        if headers.get("sec-fetch-dest") == "document":
            return True
        return "query" not in params and any(kind in headers.get("accept", "") for kind in ("text/html", "*/*"))


def mount(app: FastAPI, services: Services) -> None:
    """Add the dashboard, GraphiQL and dev-token routes. Call before other routes at `/`."""
    settings = services.settings
    dist = build_dir(settings)
    dev_tokens = dev_tokens_enabled(settings)
    sign_in_code: str | None = None
    if dev_tokens:
        # Whoever has the code may act for any user: fine on loopback, worth a warning where others may reach it.
        log = logger.info if _is_loopback(settings.host) else logger.warning
        log("dev tokens on: the dashboard signs in any user name (TIDINGS_DEV_TOKENS=false turns this off)")
        sign_in_code = settings.dev_sign_in_code
        if sign_in_code is None:
            # Built outside `tidings serve` (which makes one code for all its workers): this process makes its own.
            sign_in_code = new_sign_in_code()
            logger.warning("dev tokens: sign in at %s", dashboard_link(settings, sign_in_code))
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def dashboard() -> Response:
        index = dist / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, headers=_NO_CACHE)
        return FileResponse(index, media_type="text/html", headers=_NO_CACHE)

    @router.get("/favicon.svg")
    async def favicon() -> Response:
        path = dist / "favicon.svg"
        if not path.is_file():
            raise HTTPException(status_code=404)
        return FileResponse(path, media_type="image/svg+xml")

    @router.get("/dashboard/config")
    async def dashboard_config() -> DashboardConfig:
        return DashboardConfig(devTokens=dev_tokens, graphiql=settings.graphiql)

    @router.post("/dashboard/dev-token")
    async def dev_token(body: DevTokenRequest, request: Request) -> DevTokens:
        if sign_in_code is None:  # dev tokens off
            raise HTTPException(status_code=404)
        refusal = dev_token_refusal(request)
        if refusal is not None:
            raise HTTPException(status_code=403, detail=refusal)
        if not secrets.compare_digest(body.code.encode(), sign_in_code.encode()):
            raise HTTPException(status_code=403, detail="wrong sign-in code: open the link `tidings serve` printed")
        user = body.user.strip()
        if not user:
            raise HTTPException(status_code=422, detail="pick a user name")
        verifier = services.verifier
        service = verifier.mint(DEV_SERVICE_SUBJECT, service=True, ttl=DEV_TOKEN_TTL) if body.service else None
        return DevTokens(user=user, token=verifier.mint(user, ttl=DEV_TOKEN_TTL), serviceToken=service)

    app.include_router(router)
    app.mount("/assets", ImmutableAssets(directory=dist / "assets", check_dir=False), name="assets")
    if settings.graphiql and is_built(settings):
        app.add_middleware(GraphiQLPage, page=dist / "graphiql.html")
