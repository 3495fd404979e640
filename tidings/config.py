"""Settings: read once from `TIDINGS_*` environment variables, validated, then passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FilePath, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "TIDINGS_"

MIN_SECRET_BYTES = 32
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://", "postgresql+psycopg://")


def normalize_database_url(url: str) -> str:
    """Map the URL spellings users write to the async drivers tidings runs on."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise ValueError("TIDINGS_DATABASE_URL must be a postgresql:// or sqlite:// URL")


class Settings(BaseSettings):
    """Every knob of a tidings process. Environment variables are the field names upper-cased with `TIDINGS_`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path(".tidings")
    database_url: str | None = None
    broadcast_url: str = "memory://"
    channel_prefix: str = "tidings"

    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"] = "HS256"
    # FilePath: a path to no file is a settings error at start, not a traceback at the first token.
    jwt_public_key_file: FilePath | None = None
    jwt_jwks_file: FilePath | None = None
    jwt_private_key_file: FilePath | None = None  # only for `tidings token` with RS/ES (development)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: Annotated[float, Field(ge=0)] = 0
    # The claim that makes a token a service's, and its value: a string equal to it, a list holding it, or a
    # space-separated scope string holding it. With an identity provider, pick a value only your backends get.
    jwt_service_claim: Annotated[str, Field(min_length=1, max_length=200)] = "role"
    jwt_service_value: Annotated[str, Field(min_length=1, max_length=200)] = "service"

    user_mutations_per_second: Annotated[float, Field(ge=0)] = 20
    service_mutations_per_second: Annotated[float, Field(ge=0)] = 2000
    user_subscribes_per_second: Annotated[float, Field(ge=0)] = 50
    service_subscribes_per_second: Annotated[float, Field(ge=0)] = 1000
    max_query_depth: Annotated[int, Field(ge=1)] = 10
    max_aliases: Annotated[int, Field(ge=0)] = 30
    max_rows: Annotated[int, Field(ge=1)] = 500  # rows one document may ask for: `first` summed over its fields
    # Notifications one deleteNotifications call deletes, the oldest first; it says when more remain.
    max_bulk_delete: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_tokens: Annotated[int, Field(ge=10)] = 1000  # GraphiQL's introspection is about 200, our operations under 100
    max_operations_per_connection: Annotated[int, Field(ge=1)] = 20
    # Writes in flight per process; past it mutations answer OVERLOADED with retryAfter at once.
    max_inflight_mutations: Annotated[int, Field(ge=1)] = 64
    # Comma-separated origins (https://app.example.com) whose pages may open WebSockets and call over CORS.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ws_compression: bool = False
    # notificationEvents documents of plain fields are answered by projecting the event (tidings.delivery).
    delivery_fast_path: bool = True
    # JSON POSTs of known queries and mutations are answered without the web framework's routing (tidings.http).
    http_fast_path: bool = True

    retention_days: Annotated[int, Field(ge=1)] = 30
    graphiql: bool = True
    introspection: bool | None = None  # unset: on for the embedded default only (introspection_enabled)
    # Mint tokens for the dashboard's sign-in at POST /dashboard/dev-token; unset: on for the embedded default on
    # loopback only (tidings.web.dev_tokens_enabled).
    dev_tokens: bool | None = None
    # What that sign-in must show; unset: `tidings serve` makes a new one at every start and prints it in the link.
    dev_sign_in_code: Annotated[str, Field(min_length=16, max_length=200)] | None = Field(default=None, repr=False)
    web_dir: Path | None = None  # the built dashboard and GraphiQL; unset: web/dist of the source tree

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1
    auto_migrate: bool | None = None
    metrics: bool = True  # GET /metrics (Prometheus)
    # When set, /metrics answers only `Authorization: Bearer <this>` (401 otherwise).
    metrics_token: Annotated[str, Field(min_length=16, max_length=200)] | None = Field(default=None, repr=False)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, with request and connection ids
    access_log: bool = False  # uvicorn's lines per request and per WebSocket: a cost on every one, off unless asked for

    connection_init_timeout: Annotated[float, Field(gt=0)] = 3.0
    keepalive_interval: Annotated[float, Field(gt=0)] = 25.0
    send_timeout: Annotated[float, Field(gt=0)] = 10.0
    send_queue_size: Annotated[int, Field(ge=1)] = 256
    # Encoded bytes queued per socket, and the largest one result may be: a notification event (10,000 characters of
    # message, 16 KiB of data) stays well under it whatever its characters; a full introspection is about 40 KB.
    send_queue_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_result_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    max_connections_per_user: Annotated[int, Field(ge=1)] = 20
    max_request_bytes: Annotated[int, Field(ge=1024)] = 65536
    # tidings serve's HTTP limits (tidings.server.HttpProtocol): a whole request within request_timeout of the
    # connection or of the previous response, a head of at most max_header_bytes, at most max_connections sockets
    # (unset: the file-descriptor limit less what the pools need).
    request_timeout: Annotated[float, Field(gt=0)] = 10.0
    max_header_bytes: Annotated[int, Field(ge=1024)] = 32768
    max_connections: Annotated[int, Field(ge=1)] | None = None
    subscriber_queue_size: Annotated[int, Field(ge=1)] = 1000
    replay_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    replay_concurrency: Annotated[int, Field(ge=1)] = 16
    replay_concurrency_per_user: Annotated[int, Field(ge=1)] = 2
    database_pool_size: Annotated[int, Field(ge=1)] = 10
    database_timeout: Annotated[float, Field(gt=0)] = 5.0
    statement_timeout: Annotated[float, Field(gt=0)] = 10.0
    retention_interval: Annotated[float, Field(gt=0)] = 3600.0
    retention_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    sync_interval: Annotated[float, Field(gt=0)] = 2.0
    # Snooze and expiry (tidings.timers): every process looks for due timers at least this often (seconds), sooner
    # when the next one is due sooner; a timer set in this process wakes it at once. At most this late when the
    # process that set a timer is gone.
    timer_interval: Annotated[float, Field(gt=0)] = 5.0
    timer_batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    broker_reconnect_delay: Annotated[float, Field(gt=0)] = 0.1
    broker_reconnect_delay_max: Annotated[float, Field(gt=0)] = 5.0
    # Seconds between refreshes of this process's devices in Redis (presence); they stop counting three intervals
    # after the last one, so a killed process's devices are gone within that.
    presence_interval: Annotated[float, Field(gt=0)] = 10.0
    shutdown_grace: Annotated[int, Field(ge=0)] = 10

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str | None) -> str | None:
        return normalize_database_url(value) if value else None

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"TIDINGS_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (RFC 7518 section 3.2)")
        return value

    @field_validator("broadcast_url")
    @classmethod
    def _check_broadcast_url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://", "redis-cluster://")):
            raise ValueError("TIDINGS_BROADCAST_URL must be memory://, redis://, rediss:// or redis-cluster://")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        asymmetric = not self.jwt_algorithm.startswith("HS")
        if asymmetric and not (self.jwt_public_key_file or self.jwt_jwks_file):
            raise ValueError(
                f"TIDINGS_JWT_ALGORITHM={self.jwt_algorithm} needs TIDINGS_JWT_PUBLIC_KEY_FILE or _JWKS_FILE"
            )
        if not asymmetric and (self.jwt_public_key_file or self.jwt_jwks_file):
            raise ValueError("a public key or JWKS file needs an RS or ES TIDINGS_JWT_ALGORITHM")
        if asymmetric and not (self.jwt_issuer and self.jwt_audience):
            # An identity provider signs tokens for every application it serves: without both checks, a token it
            # issued for another application would be accepted here.
            raise ValueError(
                f"TIDINGS_JWT_ALGORITHM={self.jwt_algorithm} with your identity provider's keys needs "
                "TIDINGS_JWT_ISSUER and TIDINGS_JWT_AUDIENCE (the issuer, and the audience of tokens for tidings)"
            )
        return self

    @model_validator(mode="after")
    def _check_send_bounds(self) -> Settings:
        if self.max_result_bytes > self.send_queue_bytes:
            raise ValueError(
                "TIDINGS_MAX_RESULT_BYTES must not exceed TIDINGS_SEND_QUEUE_BYTES: the queue holds a result"
            )
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if self.database_url is None:
            self.database_url = self._embedded_database_url()
        return self

    def _embedded_database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'tidings.db'}"

    @property
    def database_setting(self) -> str:
        """The setting that chose the database, for messages that tell the operator what to change."""
        return "TIDINGS_DATA_DIR" if self.db_url == self._embedded_database_url() else "TIDINGS_DATABASE_URL"

    @property
    def db_url(self) -> str:
        """The normalized SQLAlchemy URL (always set after validation)."""
        assert self.database_url is not None
        return self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file (only for a sqlite URL)."""
        return Path(self.db_url.split(":///", 1)[1])

    @property
    def embedded(self) -> bool:
        """The no-servers default: SQLite and in-process fan-out."""
        return self.is_sqlite and self.broadcast_url.startswith("memory://")

    @property
    def introspection_enabled(self) -> bool:
        """Explicit TIDINGS_INTROSPECTION, else on for the embedded default only: a deployment serves no schema
        (hundreds of KB of answer for a request of a few hundred bytes, without a token) unless asked to."""
        return self.embedded if self.introspection is None else self.introspection

    @property
    def loopback_origins_allowed(self) -> bool:
        """Pages on localhost (any port) may connect: only on the embedded default with no explicit list."""
        return self.embedded and not self.allowed_origins

    @property
    def should_migrate_on_start(self) -> bool:
        """SQLite migrates itself on start; a shared PostgreSQL is migrated by `tidings migrate` unless asked."""
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


class SettingsError(ValueError):
    """`TIDINGS_*` values that do not validate: one line per bad setting, naming it (never echoing its value)."""


def load_settings() -> Settings:
    """The settings from the environment, or a `SettingsError` that a person can act on without a traceback."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError("\n".join(_describe(detail) for detail in error.errors(include_url=False))) from None


def _describe(detail: Any) -> str:
    message = str(detail["msg"]).removeprefix("Value error, ")
    if not detail["loc"]:
        return message  # a check across settings: its message names them
    name = ENV_PREFIX + str(detail["loc"][0]).upper()
    # Values are not echoed: a secret's would end up in a terminal or a log.
    return message if message.startswith(name) else f"{name}: {message}"
