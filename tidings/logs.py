"""Logging: lines for a terminal, or one JSON object per line (TIDINGS_LOG_FORMAT=json) with request ids.

Every HTTP request and every WebSocket gets an id when it enters the application (`enter`), kept in a context
variable: whatever is logged while serving it, in its own task or in the tasks it starts (a socket's reader and
operations), carries `request_id` or `connection_id`. What tidings logs at info names no token and no notification
content: refusals say why, never what was presented.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PROCESS = uuid.uuid4().hex[:8]  # ids are unique across processes: <process>-<counter>
_numbers = itertools.count(1)
_scope: ContextVar[tuple[str, int] | None] = ContextVar("tidings_log_scope", default=None)


def enter(kind: str) -> None:
    """Give what the current task serves an id (`request_id` or `connection_id`): an int now, text only if logged."""
    _scope.set((kind, next(_numbers)))


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"}`, plus the request or connection id and a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        scope = _scope.get()
        if scope is not None:
            entry[scope[0]] = f"{_PROCESS}-{scope[1]}"
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def config(*, json: bool, level: str) -> dict[str, Any] | None:
    """The `logging.config.dictConfig` of a process (uvicorn applies it in every worker); None: uvicorn's own."""
    if not json:
        return None
    quiet = {} if level == "debug" else {"alembic": {"level": "WARNING"}}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # uvicorn's loggers have handlers of their own by default: here they pass everything to the root's.
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            **quiet,
        },
    }


def configure(*, json: bool, level: str) -> None:
    """This process's logging, before uvicorn starts (which applies the same `config` to each worker)."""
    settings = config(json=json, level=level)
    if settings is not None:
        logging.config.dictConfig(settings)
        return
    logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    if level != "debug":
        # Alembic announces its plugins and its dialect at INFO on every start; tidings says what a migration did.
        logging.getLogger("alembic").setLevel(logging.WARNING)
