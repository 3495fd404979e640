"""The connections of the hot path's single statements on PostgreSQL: asyncpg connections, leased last-in first-out.

Not asyncpg's `Pool`: its acquire and release cost about 90 µs of CPU per lease (a timeout, a shielded release, a
proxy per connection), measured at more than twice the cost of a `SELECT 1` round trip, and every create and every
replay takes one. A lease here costs a list pop and a push. What it keeps of asyncpg's pool: at most `size`
connections, opened on demand (and at start), waiting at most `timeout` for one; a lease that ended part-way (a
cancellation, a client-side timeout) gives its connection back only once asyncpg has finished cancelling its statement,
as asyncpg's pool does (with the same two protocol calls), and a connection that cannot finish is terminated. A
statement the server refused (a `PostgresError`) leaves the connection idle and reusable.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

import asyncpg
import sqlalchemy.exc


class PoolSaturated(sqlalchemy.exc.TimeoutError):
    """Every connection stayed leased for the whole wait: this process is busy, the database may be fine (the same
    error as the engine's pool raises then, answered the same way: OVERLOADED)."""


class StatementPool:
    """At most `size` asyncpg connections; `lease()` is an async context manager yielding one."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], *, size: int, timeout: float) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._idle: list[asyncpg.Connection] = []
        self._open = 0  # connections open or being opened, leased or idle
        # Leases waiting for a connection: resolved with one, or with None when a slot came free to open one in.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closing = False
        self._recovering: set[asyncio.Task[None]] = set()

    def lease(self) -> Lease:
        return Lease(self)

    def get_idle_size(self) -> int:
        return len(self._idle)

    def get_size(self) -> int:
        return self._open

    def get_max_size(self) -> int:
        return self._size

    async def fill(self) -> None:
        """Open every connection now rather than on the first requests that find none free; a failure here is only
        a connection opened later, on demand."""
        missing = self._size - self._open
        self._open += missing
        opened = await asyncio.gather(*(self._connect() for _ in range(missing)), return_exceptions=True)
        for connection in opened:
            if isinstance(connection, BaseException):
                self._open -= 1
            else:
                self.release(connection)

    async def acquire(self) -> asyncpg.Connection:
        """A connection: an idle one at once, a new one while fewer than `size` are open, else the next released one
        within `timeout` (PoolSaturated past it). Opening one that fails raises what asyncpg raised."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            if self._closing:
                raise asyncpg.exceptions.InterfaceError("the statement pool is closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.is_closed():
                    return connection
                self._open -= 1  # closed while idle (the server went away)
            if self._open < self._size:
                return await self._open_one(deadline - loop.time())
            waiter: asyncio.Future[asyncpg.Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await waiter
            except BaseException as error:
                # Timed out or cancelled, perhaps just after a release handed this lease a connection or a slot: hand
                # it on, or it is lost to the pool. A waiter left in the queue is cancelled, and skipped there.
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:
                        self.release(handed)
                    else:
                        self._wake()
                if isinstance(error, TimeoutError):
                    raise PoolSaturated from None
                raise
            if connection is not None:
                return connection
            # A connection was dropped: its slot is this lease's to open a new one in (unless an idle one is back).

    async def _open_one(self, timeout: float) -> asyncpg.Connection:
        self._open += 1
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def release(self, connection: asyncpg.Connection, *, reusable: bool = True) -> None:
        """Give a leased connection back: to a waiting lease, else to the idle ones; terminated when not reusable."""
        if not reusable or self._closing or connection.is_closed():
            connection.terminate()
            self._open -= 1
            self._wake()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def recover(self, connection: asyncpg.Connection) -> None:
        """Give back the connection of a lease that ended part-way: at once when no statement is left running on it,
        after asyncpg's cancellation of one finishes (terminated if it cannot within `timeout`)."""
        if connection.is_closed() or self._closing or connection.is_in_transaction():
            self.release(connection, reusable=False)
        elif not connection._protocol._is_cancelling():
            self.release(connection)
        else:
            task = asyncio.ensure_future(self._after_cancellation(connection))
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)

    async def _after_cancellation(self, connection: asyncpg.Connection) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await connection._protocol._wait_for_cancellation()
        except BaseException:
            self.release(connection, reusable=False)
            raise
        self.release(connection)

    def _wake(self) -> None:
        """A slot came free: the first waiting lease opens a connection in it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close the idle connections gracefully; leased ones are terminated as their leases end."""
        self._closing = True
        for task in self._recovering:
            task.cancel()
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        while self._waiters:
            self._wake()  # each finds the pool closing
        await asyncio.gather(*(connection.close() for connection in idle), return_exceptions=True)

    def terminate(self) -> None:
        self._closing = True
        for task in self._recovering:
            task.cancel()
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for connection in idle:
            connection.terminate()


class Lease:
    """`async with pool.lease() as connection:`; a class rather than a generator: it is on every statement's path."""

    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: StatementPool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._pool.acquire()
        return self._connection

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if kind is None or issubclass(kind, asyncpg.PostgresError):
            self._pool.release(connection)  # a refused statement leaves the connection ready for the next
        else:
            self._pool.recover(connection)  # anything else may have left a statement running on it
