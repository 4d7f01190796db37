"""Public identifiers: short, URL-safe, roughly time-ordered strings like `c0mf3k2x7...`."""

from __future__ import annotations

import secrets
import string
import time

_ALPHABET = string.digits + string.ascii_lowercase
ID_LENGTH = 25
# What a path or a body accepts as an id: ours are 25 characters, the seed's example shorter.
ID_PATTERN = "[A-Za-z0-9]{1,40}"


def _base36(number: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 36)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits)) or "0"


def new_id() -> str:
    """A 25-character id: `c`, the time in milliseconds in base 36, then random base-36 digits."""
    stamp = _base36(time.time_ns() // 1_000_000).rjust(9, "0")
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(ID_LENGTH - 1 - len(stamp)))
    return f"c{stamp}{random_part}"
