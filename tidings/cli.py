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

from tidings.config import Settings, SettingsError, load_settings

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
    from uvicorn.config import LOGGING_CONFIG

    from tidings import logs, startup, web
    from tidings.auth import load_or_create_secret, read_secret
    from tidings.server import HttpProtocol, WebSocketProtocol, announce_when_serving, connection_limits

    # The app factory reads settings from the environment, in every worker process alike.
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"TIDINGS_{name.upper()}"] = str(value)
    settings = load_settings()
    if web.dev_tokens_enabled(settings) and settings.dev_sign_in_code is None:
        # One code for every worker, new at every start: only whoever reads this terminal opens the dashboard.
        os.environ["TIDINGS_DEV_SIGN_IN_CODE"] = web.new_sign_in_code()
        settings = load_settings()
    _configure_logging(settings)
    if settings.workers > 1 and settings.broadcast_url.startswith("memory://"):
        logger.warning(
            "TIDINGS_BROADCAST_URL=memory:// only reaches subscribers in its own process; with %d workers, "
            "set TIDINGS_BROADCAST_URL=redis://... so every worker sees every event",
            settings.workers,
        )
    # Once, before any worker starts: an unreachable or unmigrated database is one line here, and migrating it is
    # done by this process alone.
    own_secret = settings.jwt_algorithm.startswith("HS") and not settings.jwt_secret
    if own_secret:
        read_secret(settings.data_dir)  # a bad secret file is one line, before anything is written
    asyncio.run(startup.prepare_database(settings))
    if own_secret:
        load_or_create_secret(settings.data_dir)  # once, before the workers start
    os.environ["TIDINGS_AUTO_MIGRATE"] = "false"  # done: the workers only check the schema
    code = settings.dev_sign_in_code if web.dev_tokens_enabled(settings) else None
    link, url = web.dashboard_link(settings, code), web.local_url(settings)
    json_logs = settings.log_format == "json"
    announce_when_serving(
        url,
        f"tidings: dashboard at {link}  GraphiQL at {url}/graphql\n"
        "tidings: mint a token with `.venv/bin/tidings token alice` (add --service for a backend)",
        say=logging.getLogger("tidings").info if json_logs else None,
    )
    uvicorn.run(
        "tidings.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        # uvicorn applies it in every worker: JSON lines from all of them, or its own text format.
        log_config=logs.config(json=True, level=settings.log_level) if json_logs else LOGGING_CONFIG,
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


def _configure_logging(settings: Settings) -> None:
    from tidings import logs

    logs.configure(json=settings.log_format == "json", level=settings.log_level)


def _migrate(_: argparse.Namespace) -> int:
    from tidings import migrate, startup
    from tidings.store import create_engine

    settings = load_settings()

    async def run() -> tuple[str | None, str | None]:
        engine = create_engine(settings.db_url, timeout=settings.database_timeout)
        try:
            return await migrate.upgrade(engine)
        except Exception as error:
            raise startup.database_error(settings, error) from None
        finally:
            await engine.dispose()

    before, after = asyncio.run(run())
    where = startup.describe_database(settings)
    done = "already at" if before == after else f"migrated from {before or 'empty'} to"
    print(f"tidings: {where} {done} revision {after}", file=sys.stderr)
    return 0


def _token(args: argparse.Namespace) -> int:
    from tidings.auth import TokenVerifier

    verifier, source = TokenVerifier.signer(load_settings())
    print(verifier.mint(args.user, service=args.service, ttl=args.ttl))
    print(f"tidings: {source}", file=sys.stderr)  # stdout is the token alone: `$(tidings token alice)` works
    return 0


def _stats(args: argparse.Namespace) -> int:
    settings = Settings()
    rows, consistent = asyncio.run(_read_stats(settings, args.user))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if not consistent:
        print(
            "tidings: the kept unread/unseen counts differ from a recount of the rows (a bug or a hand edit); "
            "clients show the kept ones",
            file=sys.stderr,
        )
        return 3
    return 0


async def _read_stats(settings: Settings, user: str | None) -> tuple[list[tuple[str, int]], bool]:
    from tidings import startup
    from tidings.store import create_engine
    from tidings.store.stats import state_counts

    if settings.is_sqlite and not settings.sqlite_path.exists():  # never make an empty database by reading one
        raise startup.StartupError(
            f"{settings.database_setting}: there is no database at {settings.sqlite_path.resolve()}: run this where "
            "the server runs, or set TIDINGS_DATA_DIR or TIDINGS_DATABASE_URL as the server has them"
        )
    engine = create_engine(settings.db_url, timeout=settings.database_timeout)
    try:
        await startup.check_schema(settings, engine)
        stats = await state_counts(engine, user)
    finally:
        await engine.dispose()
    rows = stats.rows()
    if user is not None:
        rows = [(name, value) for name, value in rows if name != "users"]
    return rows, stats.consistent


def export_schema_sdl() -> str:
    from strawberry.printer import print_schema

    from tidings.composition import build_schema

    return print_schema(build_schema(Settings(introspection=True))) + "\n"  # the schema, whatever TIDINGS_* say


def _export_schema(args: argparse.Namespace) -> int:
    sdl = export_schema_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"tidings: wrote {args.output}", file=sys.stderr)
    return 0


SERVE_DESCRIPTION = """\
Run the tidings server: GraphQL over HTTP and WebSocket (graphql-transport-ws) at /graphql, the dashboard and
GraphiQL for browsers, /healthz, /readyz and /metrics. With no settings it runs on SQLite in ./.tidings (migrated on
start) with in-process fan-out; it checks the database before it serves and prints the dashboard link once it does.

Every setting is a TIDINGS_* environment variable (database, broker, tokens, limits, timeouts): see the Settings
table of README.md. --host, --port and --workers set TIDINGS_HOST, TIDINGS_PORT and TIDINGS_WORKERS."""


def build_parser() -> argparse.ArgumentParser:
    from tidings import __version__

    parser = argparse.ArgumentParser(prog="tidings", description="Real-time per-user notifications over GraphQL.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the server (migrates the embedded SQLite on start)",
        description=SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1, or TIDINGS_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or TIDINGS_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1); share events through Redis")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database schema (Alembic)",
        description="Upgrade TIDINGS_DATABASE_URL (or the SQLite database in TIDINGS_DATA_DIR) to this version's "
        "schema. Run once per deploy, before the new processes start; concurrent runs are safe.",
    )
    migrate.set_defaults(run=_migrate)

    token = commands.add_parser(
        "token",
        help="print a JWT signed with the server's secret",
        description="Print a token signed with what the server verifies with: TIDINGS_JWT_SECRET, or the secret "
        "`tidings serve` made in TIDINGS_DATA_DIR (so run it where the server runs). Never makes a secret.",
    )
    token.add_argument("user", help="the user id (the token's sub)")
    token.add_argument("--service", action="store_true", help="a service token: may create and act for any user")
    token.add_argument("--ttl", type=parse_ttl, default=timedelta(days=1), help="lifetime, e.g. 30m, 12h, 1d (default)")
    token.set_defaults(run=_token)

    stats = commands.add_parser(
        "stats",
        help="count notifications per state, events and users in the database",
        description="Read the database (TIDINGS_DATABASE_URL, or the SQLite database in TIDINGS_DATA_DIR) and print, "
        "for all users or one, how many notifications are live, in the inbox, unread, unseen, archived, snoozed, "
        "expiring, muted, collapsed (and how many creates folded into them) and deleted, how many events are kept, "
        "and the unread/unseen counts the feeds keep (exit 3 when they differ from a recount).",
    )
    stats.add_argument("user", nargs="?", help="one user id (default: everyone)")
    stats.set_defaults(run=_stats)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
    export.set_defaults(run=_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `tidings` command; a mistake the user can fix is one line on stderr and a non-zero exit, no traceback."""
    from tidings.auth import InvalidSecretFile, NoSigningKey
    from tidings.startup import StartupError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except SettingsError as error:
        for line in str(error).splitlines():
            print(f"tidings: {line}", file=sys.stderr)
        return 2  # like a bad command-line argument
    except (StartupError, NoSigningKey, InvalidSecretFile) as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
