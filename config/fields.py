"""Serializer fields shared by the API: strict strings (no numbers, no control characters)."""

from __future__ import annotations

import re
from typing import Any

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
