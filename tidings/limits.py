"""Limits on what one caller may cost: mutation and subscribe rates per token, and the size of an HTTP request body."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.auth import Identity
from tidings.errors import ErrorCode, UserError

MAX_TRACKED_CALLERS = 100_000  # buckets kept per process; the least recently used are forgotten first


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per caller (role and subject): `rate` per second, bursts of twice the rate (at least one);
    0 = unlimited.

    Per process: with N processes behind a balancer a caller gets up to N times the rate, which the README says.
    """

    def __init__(
        self, *, user_rate: float, service_rate: float, what: str = "mutations", clock: object = time.monotonic
    ) -> None:
        self._rates = {False: user_rate, True: service_rate}
        self._what = what
        self._buckets: OrderedDict[tuple[bool, str], _Bucket] = OrderedDict()
        self._clock = clock

    def check(self, identity: Identity) -> None:
        """Take one token for this caller, or raise RATE_LIMITED with `retryAfter` seconds."""
        rate = self._rates[identity.is_service]
        if rate <= 0:
            return
        now: float = self._clock()  # type: ignore[operator]
        key = (identity.is_service, identity.subject)
        capacity = max(1.0, 2 * rate)  # a rate under 0.5 still lets one through
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=capacity, updated=now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > MAX_TRACKED_CALLERS:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            retry_after = math.ceil((1 - bucket.tokens) / rate * 1000) / 1000
            raise UserError(
                f"Too many {self._what}: at most {rate:g} per second; retry after {retry_after:g}s",
                ErrorCode.RATE_LIMITED,
                retryAfter=retry_after,
            )
        bucket.tokens -= 1


class Admission:
    """A bound on work in flight: `enter` takes a slot or refuses at once, `leave` gives it back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def enter(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


class BodySizeLimit:
    """Answer 413 to an HTTP request whose body exceeds `max_bytes`, before anything parses it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await _too_large(send, self.max_bytes)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    """A chunked body grew past the limit while being read."""


async def _too_large(send: Send, max_bytes: int) -> None:
    error = {
        "message": f"Request body larger than {max_bytes} bytes",
        "extensions": {"code": ErrorCode.PAYLOAD_TOO_LARGE.value},
    }
    body = orjson.dumps({"errors": [error]})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


SlotKey = tuple[str, str]  # (role, subject): a user whose id is a service's `sub` does not share its slots


class ConnectionSlots:
    """Authenticated sockets per caller (role and subject). Counted per process: each worker of
    `tidings serve --workers N` has its own."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._counts: dict[SlotKey, int] = {}

    def acquire(self, user: SlotKey) -> bool:
        """Take a slot for the caller, or return False when all of theirs are taken."""
        count = self._counts.get(user, 0)
        if count >= self._limit:
            return False
        self._counts[user] = count + 1
        return True

    def release(self, user: SlotKey) -> None:
        count = self._counts[user] - 1
        if count:
            self._counts[user] = count
        else:
            del self._counts[user]
