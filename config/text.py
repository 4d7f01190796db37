"""What counts as text (characters UTF-8 can encode, as the database, S3 keys and JSON need),
and how a message shows text it was given."""

from __future__ import annotations


def is_text(value: str) -> bool:
    """Whether `value` holds no lone surrogates: Python's stand-ins for bytes that were not UTF-8
    in a file name or an argument (b"\\xff" arrives as "\\udcff"), which UTF-8 cannot encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: object, limit: int = 40) -> str:
    """`value` as a message may echo it: its repr, at most `limit` characters, an ellipsis
    marking a cut (a string keeps its closing quote)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{text[: limit - 2]}\N{HORIZONTAL ELLIPSIS}{text[-1]}"
    return f"{text[: limit - 1]}\N{HORIZONTAL ELLIPSIS}"


def printable(text: str) -> str:
    """`text` as any terminal can print it: a character UTF-8 cannot encode (a file name's byte
    that was not UTF-8) is written as its escape, "\\udcff"."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
