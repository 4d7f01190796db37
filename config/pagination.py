"""Bounded lists that stay JSON arrays: `limit` + opaque `cursor`, next page in a `Link` header.
Every list of the API (images, projects) pages this way."""

from __future__ import annotations

from base64 import b64decode
from datetime import timedelta

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response


class LinkHeaderCursorPagination(CursorPagination):
    """Cursor pagination over (-created_at, -id) whose body is the page itself."""

    ordering = ("-created_at", "-id")
    cursor_query_param = "cursor"
    page_size_query_param = "limit"

    def __init__(self) -> None:
        # Read per request (a paginator lives as long as its view), so settings overrides apply.
        self.page_size = settings.IMAGEGEN_LIST_DEFAULT_LIMIT
        self.max_page_size = settings.IMAGEGEN_LIST_MAX_LIMIT

    def get_page_size(self, request: Request) -> int:
        """`limit`: a whole number from 1; above `IMAGEGEN_LIST_MAX_LIMIT` it is capped."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            # Digits only: int() also takes " 5", "+5", "1_0" and full-width "５".
            limit = int(raw) if raw.isascii() and raw.isdigit() else 0
        except ValueError:  # past Python's limit on the digits of an int
            limit = 0
        if limit < 1:
            raise ValidationError(
                {"limit": [f"Must be a whole number from 1 to {self.max_page_size}."]}
            )
        return min(limit, self.max_page_size)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """The `cursor` of a `Link` header; anything else is invalid input (400), not a 404."""
        invalid = ValidationError(
            {"cursor": ['Invalid cursor: use the URL of the Link header\'s rel="next".']}
        )
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded == "":
            # A client that lost the cursor would get the first page again, and again.
            raise invalid
        try:
            if encoded is not None:
                b64decode(encoded, validate=True)  # DRF would skip stray characters
            cursor = super().decode_cursor(request)
        except (NotFound, ValueError):
            raise invalid from None
        if cursor is not None and cursor.position is not None:
            # Only the timestamps this paginator writes (UTC) are accepted: any other offset,
            # even a valid ISO one, may be out of the database's range.
            try:
                position = parse_datetime(cursor.position)
            except ValueError:
                position = None
            if position is None or position.utcoffset() != timedelta(0):
                raise invalid
        return cursor

    def get_paginated_response(self, data: list) -> Response:
        links = []
        if (next_url := self.get_next_link()) is not None:
            links.append(f'<{next_url}>; rel="next"')
        if (previous_url := self.get_previous_link()) is not None:
            links.append(f'<{previous_url}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return schema

    def get_schema_operation_parameters(self, view: object) -> list[dict]:
        """`limit` as `get_page_size` takes it: from 1, and no maximum, since a larger limit is
        capped rather than refused; `cursor` is only ever a `Link` header's."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Items per page, from 1 (default {self.page_size}); a page holds at most "
                    f"{self.max_page_size}, and a larger limit is capped to that."
                )
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    'Opaque: take it from the `Link` header\'s rel="next" (or "prev") URL.'
                )
        return parameters
