"""The statement pool of the PostgreSQL hot path, on the real server: leases, limits, waits, and connections that
must not be reused."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
import sqlalchemy.exc

from tests._services import postgres_admin_dsn
from tidings.store.statement_pool import PoolSaturated, StatementPool


def _pool(size: int, timeout: float = 5.0) -> tuple[StatementPool, list[asyncpg.Connection]]:
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        connection = await asyncpg.connect(postgres_admin_dsn())
        opened.append(connection)
        return connection

    return StatementPool(connect, size=size, timeout=timeout), opened


async def test_a_lease_reuses_the_last_connection_released() -> None:
    pool, opened = _pool(2)
    await pool.fill()
    try:
        assert (pool.get_size(), pool.get_idle_size()) == (2, 2)
        async with pool.lease() as first:
            assert await first.fetchval("SELECT 1") == 1
            assert pool.get_idle_size() == 1
        async with pool.lease() as again:
            assert again is first
        assert len(opened) == 2
    finally:
        await pool.close()
    assert all(connection.is_closed() for connection in opened)


async def test_connections_open_on_demand_up_to_the_size_then_leases_wait_for_a_release() -> None:
    pool, opened = _pool(2)
    try:
        async with pool.lease() as a, pool.lease() as b:
            assert len(opened) == 2 and a is not b
            waiting = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0.05)
            assert not waiting.done()
        handed = await waiting
        assert handed in (a, b) and len(opened) == 2
        pool.release(handed)
    finally:
        await pool.close()


async def test_a_lease_that_waits_past_the_timeout_is_saturated_the_engines_overload_error() -> None:
    pool, _ = _pool(1, timeout=0.2)
    try:
        async with pool.lease():
            with pytest.raises(PoolSaturated) as raised:
                await pool.acquire()
        assert isinstance(raised.value, sqlalchemy.exc.TimeoutError)  # answered OVERLOADED, like the engine's pool
        async with pool.lease() as connection:  # the pool is whole afterwards
            assert await connection.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


async def test_a_cancelled_lease_gives_its_connection_back_once_the_statement_is_cancelled() -> None:
    pool, opened = _pool(1)
    try:

        async def slow() -> None:
            async with pool.lease() as connection:
                await connection.execute("SELECT pg_sleep(10)")

        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.get_idle_size() == 0, "not while the server may still run the statement"
        async with asyncio.timeout(5), pool.lease() as again:  # well before pg_sleep's 10 s: cancelled on the server
            assert again is opened[0] and await again.fetchval("SELECT 3") == 3
        with pytest.raises(asyncpg.PostgresError):
            async with pool.lease() as connection:
                await connection.execute("SELECT no_such_column")
        async with pool.lease() as still:
            assert still is opened[0] and len(opened) == 1
    finally:
        await pool.close()


async def test_a_lease_whose_connection_was_lost_opens_a_new_one() -> None:
    pool, opened = _pool(1)
    try:
        with pytest.raises(asyncpg.exceptions.ConnectionDoesNotExistError):
            async with pool.lease() as connection:
                await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        async with pool.lease() as again:
            assert again is opened[1] and await again.fetchval("SELECT 4") == 4
    finally:
        await pool.close()


async def test_a_waiting_lease_opens_a_connection_in_the_slot_of_one_dropped() -> None:
    pool, opened = _pool(1)
    try:
        lease = pool.lease()
        connection = await lease.__aenter__()
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        connection.terminate()  # lost mid-way
        await lease.__aexit__(ConnectionResetError, ConnectionResetError(), None)
        replacement = await waiting
        assert replacement is not connection and connection.is_closed() and len(opened) == 2
        pool.release(replacement)
    finally:
        await pool.close()


async def test_a_cancelled_wait_hands_its_connection_on() -> None:
    pool, _ = _pool(1)
    try:
        held = await pool.acquire()
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        pool.release(held)  # handed to the waiter ...
        waiting.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.get_idle_size() == 1 and pool.get_size() == 1
    finally:
        await pool.close()


async def test_a_wait_that_times_out_just_after_a_connection_was_handed_to_it_hands_it_on() -> None:
    pool, _ = _pool(1, timeout=0.2)
    try:
        held = await pool.acquire()
        waiting = asyncio.ensure_future(pool.acquire())
        await asyncio.sleep(0.05)
        # The release and the wait's deadline land in one turn of the loop, the release first: the connection is
        # handed over, then the timeout cancels the wait before it resumes.
        asyncio.get_running_loop().call_soon(pool.release, held)
        time.sleep(0.25)
        with pytest.raises(PoolSaturated):
            await waiting
        assert pool.get_idle_size() == 1 and pool.get_size() == 1
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_leases() -> None:
    pool, _ = _pool(1)
    await pool.fill()
    await pool.close()
    with pytest.raises(asyncpg.exceptions.InterfaceError):
        await pool.acquire()
