"""Opaque cursors: feed positions (bound to one database's feed epoch) and page positions."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

FEED_PREFIX = "f1"
PAGE_PREFIX = "p1"
MAX_CURSOR_LENGTH = 200


class MalformedCursor(ValueError):
    """The string is not a cursor tidings made."""


def _encode(*parts: str) -> str:
    return base64.urlsafe_b64encode(":".join(parts).encode()).decode().rstrip("=")


def _decode(cursor: str, prefix: str, count: int) -> list[str]:
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise MalformedCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise MalformedCursor("cursor is not valid") from error
    parts = raw.split(":")
    if len(parts) != count or parts[0] != prefix:
        raise MalformedCursor("cursor is not valid")
    return parts


def _sequence(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise MalformedCursor("cursor is not valid")
    return int(text)


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """A position in one user's event feed: resume right after event `seq` of database `epoch`."""

    epoch: str
    seq: int

    def encode(self) -> str:
        return _encode(FEED_PREFIX, self.epoch, str(self.seq))

    @classmethod
    def decode(cls, cursor: str) -> FeedCursor:
        _, epoch, seq = _decode(cursor, FEED_PREFIX, 3)
        if not epoch.isalnum():
            raise MalformedCursor("cursor is not valid")
        return cls(epoch=epoch, seq=_sequence(seq))


def encode_page_cursor(seq: int) -> str:
    return _encode(PAGE_PREFIX, str(seq))


def decode_page_cursor(cursor: str) -> int:
    _, seq = _decode(cursor, PAGE_PREFIX, 2)
    return _sequence(seq)
