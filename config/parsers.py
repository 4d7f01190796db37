"""The API's JSON parser: DRF's, refusing JSON nested too deeply to decode as malformed."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # `[[[[...` a few thousand deep exhausts Python's decoder stack: the client's fault.
            raise ParseError("JSON parse error - nested too deeply.") from exc
