"""What counts as text: characters UTF-8 can encode, as the database, S3 keys and JSON need."""

from __future__ import annotations


def is_text(value: str) -> bool:
    """Whether `value` holds no lone surrogates: Python's stand-ins for bytes that were not UTF-8
    in a file name or an argument (b"\\xff" arrives as "\\udcff"), which UTF-8 cannot encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
