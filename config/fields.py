"""Serializer fields shared by the API: strict strings (no numbers, no control characters) and
patterns that hold for the whole value."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers

# C0/C1 control characters except tab and newline, which prompts may legitimately contain.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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


class WholeValueRegexValidator(RegexValidator):
    """A RegexValidator for a pattern anchored `^...$` that the whole value must match: Python's
    `$` also matches before a trailing newline, so `"segment-1\n"` passed `^[a-z0-9-]+$`.
    The pattern stays plain, as the OpenAPI schema publishes it."""

    def __call__(self, value: Any) -> None:
        if not self.regex.fullmatch(str(value)):
            raise ValidationError(self.message, code=self.code, params={"value": value})
