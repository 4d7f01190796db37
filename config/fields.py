"""Serializer fields shared by the API: strict strings (no numbers, no control characters) and
patterns that hold for the whole value."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.fields import empty

# C0/C1 control characters except tab, newline and carriage return, which prompts may
# legitimately contain. Written as a character class's contents, in escapes that Python's `re`
# and ECMA-262 (the OpenAPI schema's patterns) read alike.
CONTROL_CHARACTERS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
# What every DRF CharField refuses (ProhibitNullCharactersValidator).
NUL = r"\u0000"
# What `str.strip()` removes (`str.isspace()`): a trimmed field of only these is blank.
WHITESPACE = (
    r"\t\n\u000b\u000c\r\u001c-\u001f\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029"
    r"\u202f\u205f\u3000"
)


def _character_class(codes: list[int]) -> str:
    """The contents of a character class matching `codes` (all in the BMP), in ranges."""
    parts, start = [], None
    for index, code in enumerate(codes):
        start = code if start is None else start
        if index + 1 == len(codes) or codes[index + 1] != code + 1:
            parts.append(f"\\u{start:04x}" + (f"-\\u{code:04x}" if code != start else ""))
            start = None
    return "".join(parts)


@cache
def invisible_characters() -> str:
    """The characters of the BMP that draw nothing (`_draws_nothing`), as a character class's
    contents. ECMA-262 patterns without the `u` flag cannot name a character beyond the BMP,
    such as the tag characters, so there the server (`has_nothing_visible`) is the stricter."""
    return _character_class([code for code in range(0x10000) if _draws_nothing(chr(code))])


# Unicode's default-ignorable code points that are not format characters (DerivedCoreProperties:
# Default_Ignorable_Code_Point minus category Cf): the combining grapheme joiner, the Hangul
# fillers, Khmer's inherent vowels, variation selectors, and reserved ones. Fonts draw none of
# them. The braille blank is not among them, but it is drawn as nothing.
_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2065, 0x2065),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0FFF),
)


def _draws_nothing(char: str) -> bool:
    """A format character (category Cf: zero-width spaces and joiners, bidi marks, the byte
    order mark) or another character that draws nothing (`_IGNORABLE`)."""
    code = ord(char)
    return unicodedata.category(char) == "Cf" or any(
        first <= code <= last for first, last in _IGNORABLE
    )


def has_nothing_visible(value: str) -> bool:
    """Whether `value` is only whitespace and characters that draw nothing: a blank."""
    return all(char.isspace() or _draws_nothing(char) for char in value)


_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


class StrictCharField(serializers.CharField):
    """A CharField that accepts only JSON strings (not numbers, booleans or lists) and no NUL or
    other control characters, also where they count as whitespace (U+001C-U+001F); whitespace
    is trimmed, and a value with nothing visible in it (whitespace and characters that draw
    nothing, such as U+200B or the Hangul filler U+3164, only) is blank. With `nfc`, the value
    is stored in Unicode's composed form (NFC): "Café" typed as e + combining accent is the
    same text as with é."""

    default_error_messages = {
        "not_a_string": "Must be a string.",
        "control_characters": "Must not contain control characters.",
        "composed_too_long": "Must be at most {max_length} characters in Unicode's composed "
        "form (NFC), which some characters double; this is {length}.",
    }

    def __init__(self, *, nfc: bool = False, **kwargs: Any) -> None:
        self.nfc = nfc
        super().__init__(**kwargs)

    def run_validation(self, data: Any = empty) -> Any:
        # Before DRF's blank check, which takes a value of control "whitespace" for a blank.
        if isinstance(data, str):
            if _CONTROL.search(data):
                self.fail("control_characters")
            if self.trim_whitespace and has_nothing_visible(data):
                if not self.allow_blank:
                    self.fail("blank")
                return ""
        value = super().run_validation(data)
        if not (self.nfc and value):
            return value
        # `max_length` held for the characters as sent, as the schema's `maxLength` counts
        # them; it holds for the composed form too, which is what is stored and sent upstream
        # (NFC makes a few characters two, such as U+0958).
        composed = unicodedata.normalize("NFC", value)
        if self.max_length is not None and len(composed) > self.max_length:
            self.fail("composed_too_long", max_length=self.max_length, length=len(composed))
        return composed

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


def text_pattern(field: serializers.CharField) -> str:
    """The schema `pattern` of the non-empty strings `field` takes: none of the characters it
    refuses (control characters, or NUL for a plain CharField). A trimmed field that refuses a
    blank needs a visible character (not whitespace; for a strict field, no character that
    draws nothing either); a plain CharField judges a value of only whitespace before its
    characters, so where a blank is allowed it takes such a value whatever it holds. The empty
    string is left to `minLength`, or to the empty alternative (`oneOf`) drf-spectacular adds
    for a field that allows a blank."""
    if isinstance(field, StrictCharField):
        refused, blank = CONTROL_CHARACTERS, f"{WHITESPACE}{invisible_characters()}"
        if not field.trim_whitespace or field.allow_blank:
            return f"^[^{refused}]+$"
    else:
        refused, blank = NUL, WHITESPACE
        if not field.trim_whitespace:
            return f"^[^{refused}]+$"
        if field.allow_blank:
            return f"^(?:[{blank}]+|[^{refused}]+)$"
    return f"^[^{refused}]*[^{refused}{blank}][^{refused}]*$"


class WholeValueRegexValidator(RegexValidator):
    """A RegexValidator for a pattern anchored `^...$` that the whole value must match: Python's
    `$` also matches before a trailing newline, so `"segment-1\n"` passed `^[a-z0-9-]+$`.
    The pattern stays plain, as the OpenAPI schema publishes it."""

    def __call__(self, value: Any) -> None:
        if not self.regex.fullmatch(str(value)):
            raise ValidationError(self.message, code=self.code, params={"value": value})
