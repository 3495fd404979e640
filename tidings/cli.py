"""The `tidings` command: serve, migrate, token, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

from tidings.config import Settings

logger = logging.getLogger("tidings")

_TTL = re.compile(r"^(\d+)([smhdw]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> timedelta:
    """`90`, `45s`, `30m`, `12h`, `1d`, `2w`."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"invalid ttl {text!r}: use e.g. 3600, 30m, 12h, 1d")
    return timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tidings import web
    from tidings.server import HttpProtocol, WebSocketProtocol, connection_limits

    # The app factory reads settings from the environment, in every worker process alike.
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"TIDINGS_{name.upper()}"] = str(value)
    settings = Settings()
    if web.dev_tokens_enabled(settings) and settings.dev_sign_in_code is None:
        # One code for every worker, new at every start: only whoever reads this terminal opens the dashboard.
        os.environ["TIDINGS_DEV_SIGN_IN_CODE"] = web.new_sign_in_code()
        settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.workers > 1 and settings.broadcast_url.startswith("memory://"):
        logger.warning(
            "TIDINGS_BROADCAST_URL=memory:// only reaches subscribers in its own process; with %d workers, "
            "set TIDINGS_BROADCAST_URL=redis://... so every worker sees every event",
            settings.workers,
        )
    if settings.workers > 1 and settings.should_migrate_on_start:
        asyncio.run(_migrate(settings))  # once, before the workers start
    code = settings.dev_sign_in_code if web.dev_tokens_enabled(settings) else None
    link, url = web.dashboard_link(settings, code), web.local_url(settings)
    print(f"tidings: dashboard at {link}  GraphiQL at {url}/graphql", file=sys.stderr)
    print("tidings: mint a token with `.venv/bin/tidings token alice` (add --service for a backend)", file=sys.stderr)
    uvicorn.run(
        "tidings.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # websockets-sansio (its writes wait while the transport's buffer is full), resetting connections that the
        # app is done with but that never drain.
        ws=WebSocketProtocol,
        # httptools with a deadline for each request, a bound on its head and on open connections (TIDINGS_*).
        http=HttpProtocol,
        # uvicorn's own bound (503 for HTTP requests) counts the request's connection: one more than ours.
        limit_concurrency=connection_limits().max_connections + 1,
        # A larger frame is refused with 1009 before it is buffered.
        ws_max_size=settings.max_request_bytes,
        # permessage-deflate keeps zlib state per socket (tens of KiB) to shrink messages of a few hundred bytes.
        ws_per_message_deflate=settings.ws_compression,
        # The graphql-transport-ws keep-alive is ours (TIDINGS_KEEPALIVE_INTERVAL, closes with 1001, which clients
        # retry); uvicorn's WebSocket-level ping would close with 1011, which graphql-ws clients never retry.
        ws_ping_interval=None,
        lifespan="on",
        proxy_headers=False,
        # SIGTERM: stop accepting, let in-flight requests finish, close WebSockets with 1012 (clients retry).
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    return 0


async def _migrate(settings: Settings) -> None:
    from tidings import migrate
    from tidings.store import create_engine

    engine = create_engine(settings.db_url)
    try:
        await migrate.upgrade(engine)
        revision = await migrate.current_revision(engine)
    finally:
        await engine.dispose()
    print(f"tidings: database at revision {revision}", file=sys.stderr)


def _token(args: argparse.Namespace) -> int:
    from tidings.auth import TokenVerifier

    verifier = TokenVerifier.from_settings(Settings())
    print(verifier.mint(args.user, service=args.service, ttl=args.ttl))
    return 0


def export_schema_sdl() -> str:
    from strawberry.printer import print_schema

    from tidings.composition import build_schema

    return print_schema(build_schema(Settings(introspection=True))) + "\n"


def _export_schema(args: argparse.Namespace) -> int:
    sdl = export_schema_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"tidings: wrote {args.output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description="Real-time per-user notifications over GraphQL.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (migrates the embedded SQLite on start)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1, or TIDINGS_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or TIDINGS_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1); share events through Redis")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema (Alembic)")
    migrate.set_defaults(run=lambda _: asyncio.run(_migrate(Settings())) or 0)

    token = commands.add_parser("token", help="print a JWT signed with the configured secret")
    token.add_argument("user", help="the user id (the token's sub)")
    token.add_argument("--service", action="store_true", help="a service token: may create and act for any user")
    token.add_argument("--ttl", type=parse_ttl, default=timedelta(days=1), help="lifetime, e.g. 30m, 12h, 1d (default)")
    token.set_defaults(run=_token)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
