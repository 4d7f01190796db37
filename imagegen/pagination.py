"""Bounded lists that stay JSON arrays: `limit` + opaque `cursor`, next page in a `Link` header."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import CursorPagination
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
