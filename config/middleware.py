"""Requests refused before any view sees them."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse


def reject_nul_bytes(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A NUL byte in the path or the query string is a 400 (`config.views.bad_request`).

    No URL of ours has one, and PostgreSQL can neither store nor compare one: an admin filter
    or object URL carrying `%00` reached the database and failed there with a 500.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            raise SuspiciousOperation("A NUL byte in the URL.")
        return get_response(request)

    return middleware
