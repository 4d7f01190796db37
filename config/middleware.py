"""Requests refused before any view sees them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.views import bad_request

logger = logging.getLogger(__name__)


def reject_nul_bytes(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A NUL byte in the path or the query string is a 400 in the API's error shape, also with
    DEBUG on, logged as a warning (a scanner's probes must not fill the error log).

    No URL of ours has one, and PostgreSQL can neither store nor compare one: an admin filter
    or object URL carrying `%00` reached the database and failed there with a 500.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            logger.warning("nul_byte_in_url path=%r", request.path[:200])
            return bad_request(request)
        return get_response(request)

    return middleware
