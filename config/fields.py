"""Serializer fields shared by the API: strict strings (no numbers, no control characters) and
patterns that hold for the whole value."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers

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
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


class StrictCharField(serializers.CharField):
    """A CharField that accepts only JSON strings (not numbers, booleans or lists) and no NUL or
    other control characters; whitespace is trimmed."""

    default_error_messages = {
        "not_a_string": "Must be a string.",
        "control_characters": "Must not contain control characters.",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        if _CONTROL.search(data):
            self.fail("control_characters")
        return super().to_internal_value(data)


def text_pattern(field: serializers.CharField) -> str:
    """The schema `pattern` of the non-empty strings `field` takes: none of the characters it
    refuses (control characters, or NUL for a plain CharField). A trimmed field judges a value of
    only whitespace before its characters: blank, it is refused, or taken as "" where a blank is
    allowed. The empty string is left to `minLength`, or to the empty alternative (`oneOf`)
    drf-spectacular adds for a field that allows a blank."""
    refused = CONTROL_CHARACTERS if isinstance(field, StrictCharField) else NUL
    if not field.trim_whitespace:
        return f"^[^{refused}]+$"
    if field.allow_blank:
        return f"^(?:[{WHITESPACE}]+|[^{refused}]+)$"
    return f"^[^{refused}]*[^{refused}{WHITESPACE}][^{refused}]*$"


class WholeValueRegexValidator(RegexValidator):
    """A RegexValidator for a pattern anchored `^...$` that the whole value must match: Python's
    `$` also matches before a trailing newline, so `"segment-1\n"` passed `^[a-z0-9-]+$`.
    The pattern stays plain, as the OpenAPI schema publishes it."""

    def __call__(self, value: Any) -> None:
        if not self.regex.fullmatch(str(value)):
            raise ValidationError(self.message, code=self.code, params={"value": value})
