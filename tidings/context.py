"""The GraphQL context: the process's services and the verified caller of one request or connection."""

from __future__ import annotations

import math
from dataclasses import dataclass

from strawberry.fastapi import BaseContext

from tidings.auth import Identity, InvalidToken, TokenVerifier
from tidings.broadcast import Broadcast
from tidings.config import Settings
from tidings.errors import unauthenticated
from tidings.feed import FeedHub
from tidings.limits import Admission, RateLimiter
from tidings.metrics import Metrics
from tidings.presence import PresenceBackend
from tidings.store import SqlStore
from tidings.timers import Timers


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request may use, built once by `create_app(settings)`."""

    settings: Settings
    store: SqlStore
    broadcast: Broadcast
    verifier: TokenVerifier
    hub: FeedHub
    metrics: Metrics
    rate_limiter: RateLimiter
    subscribe_limiter: RateLimiter  # graphql-transport-ws subscribe messages, whatever their operation
    admission: Admission  # writes in flight (TIDINGS_MAX_INFLIGHT_MUTATIONS)
    timers: Timers  # snooze and expiry
    presence: PresenceBackend  # devices connected, over every process (tidings.presence)


EXPIRED_TOKEN_MESSAGE = "The bearer token has expired"


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110), rounded up."""
    return str(max(1, math.ceil(seconds)))


class Context(BaseContext):
    """Per HTTP request, or per WebSocket connection (set at `connection_init`)."""

    def __init__(self, services: Services, identity: Identity | None = None) -> None:
        super().__init__()
        self.services = services
        self.identity = identity
        self.token_refusal: InvalidToken | None = None  # why the token presented was refused, if one was
        self.retry_after: float | None = None  # set by a refusal that the client should retry: HTTP Retry-After

    def retry_later(self, seconds: float) -> None:
        """Ask an HTTP client to retry after `seconds` (Retry-After), as well as the error's `retryAfter` says."""
        self.retry_after = seconds  # tidings.http sends the header, on either way in

    @property
    def caller(self) -> Identity:
        """The verified caller, or an UNAUTHENTICATED error: "expired" when it is, vague about any other refusal."""
        if self.identity is None:
            if self.token_refusal is not None and self.token_refusal.expired:
                raise unauthenticated(EXPIRED_TOKEN_MESSAGE)
            raise unauthenticated()
        return self.identity
