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


def storable(text: str) -> bool:
    """Whether every backend stores the text as sent: no NUL (PostgreSQL's text and jsonb hold none) and no half of
    a surrogate pair (it has no UTF-8; a JSON escape such as \\ud800 in a token's claims can carry one)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable_json(value: object) -> bool:
    """Whether every string of a JSON value, its object keys too, is `storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(storable(key) and storable_json(item) for key, item in value.items())
    if isinstance(value, list):
        return all(storable_json(item) for item in value)
    return True


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
    "storable",
    "storable_json",
]
