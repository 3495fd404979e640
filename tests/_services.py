"""Reach the machine's shared PostgreSQL and Redis, or skip (fail under CI=true) with a clear reason."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_HOST = os.environ.get("TIDINGS_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TIDINGS_TEST_POSTGRES_PORT", "5432"))
POSTGRES_USER = os.environ.get("TIDINGS_TEST_POSTGRES_USER", "postgres")
REDIS_HOST = os.environ.get("TIDINGS_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TIDINGS_TEST_REDIS_PORT", "6379"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip when a service is unreachable; under CI=true that is a failure instead."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: services are required)", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    require("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


def postgres_admin_dsn(database: str = "postgres") -> str:
    require("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    return f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"
