"""The limits on what clients send: one place for the rules, their error messages and the SDL that documents them."""

from __future__ import annotations

from datetime import timedelta

from tidings.store import MAX_CATEGORY

MAX_TITLE = 200  # characters
MAX_MESSAGE = 10_000  # characters
MAX_DATA_BYTES = 16 * 1024  # of `data` as JSON
MAX_IDEMPOTENCY_KEY = 200  # characters
MAX_PAGE = 100  # `first` of any list
MAX_TIMER_AHEAD = timedelta(days=366)  # how far ahead a snooze may end or an expiry be set
MAX_COLLAPSE_KEY = 200  # characters
MAX_MUTED_CATEGORIES = 100  # categories one user may mute
MAX_BATCH = 1000  # inputs of one createNotifications

__all__ = [
    "MAX_BATCH",
    "MAX_CATEGORY",
    "MAX_COLLAPSE_KEY",
    "MAX_DATA_BYTES",
    "MAX_IDEMPOTENCY_KEY",
    "MAX_MESSAGE",
    "MAX_MUTED_CATEGORIES",
    "MAX_PAGE",
    "MAX_TIMER_AHEAD",
    "MAX_TITLE",
]
