"""Requests refused before any view sees them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError

from config.views import bad_request, length_required, too_many_fields

logger = logging.getLogger(__name__)


def refuse_too_many_fields(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """More query parameters or form fields than `DATA_UPLOAD_MAX_NUMBER_FIELDS` is a 400 that
    says so, in the API's error shape, logged as a warning.

    Django refuses them when a view first reads them, as a bare "bad request" with an error in
    the log; with DEBUG on its error page read them again and failed with a plain-text 500.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        try:
            request.GET  # noqa: B018
            _posted_form(request)
        except TooManyFieldsSent:
            logger.warning("too_many_fields path=%r", request.path[:200])
            return too_many_fields(request)
        return get_response(request)

    return middleware


def reject_nul_bytes(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A NUL byte in the path, the query string or a posted form is a 400 in the API's error
    shape, also with DEBUG on, logged as a warning (a scanner's probes must not fill the error
    log).

    No URL or form field of ours has one, and PostgreSQL can neither store nor compare one: an
    admin filter, object URL or action (`_selected_action=%00`) carrying one reached the
    database and failed there with a 500. JSON bodies are the API's serializers' to check.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or _has_nul(request.GET):
            logger.warning("nul_byte_in_url path=%r", request.path[:200])
            return bad_request(request)
        if _has_nul(_posted_form(request)):
            logger.warning("nul_byte_in_form path=%r", request.path[:200])
            return bad_request(request)
        return get_response(request)

    return middleware


def _posted_form(request: HttpRequest) -> QueryDict:
    """A POST's form fields, or nothing for any other request or body."""
    if request.method != "POST" or request.content_type not in _FORM_TYPES:
        return QueryDict()
    try:
        # Buffered first: a multipart form parsed straight from the stream leaves a view (the
        # API's, which answers 415 to any form) no body to read.
        request.body  # noqa: B018
        return request.POST
    except (RequestDataTooBig, MultiPartParserError):
        return QueryDict()  # too large or malformed: the view refuses it in its own way


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(data: QueryDict) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in data.lists()
    )


def refuse_chunked_bodies(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A body sent chunked, without a Content-Length, is a 411 that says what to send.

    Django reads exactly Content-Length bytes of a body (none when it is missing), so such a
    request reached the views as if it had no body: a PATCH answered "name: This field is
    required." for a body that had it.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        takes_body = request.method in ("POST", "PUT", "PATCH")
        if chunked and takes_body and not request.META.get("CONTENT_LENGTH"):
            return length_required(request)
        return get_response(request)

    return middleware


def read_body_first(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A request's body (at most `DATA_UPLOAD_MAX_MEMORY_SIZE`, 4 MiB) is read before anything
    else runs, the token check's database lookup included.

    DRF reads the body when a view first asks for `request.data`, after authentication has
    taken a pooled database connection, which Django keeps until the response. A client that
    sent its headers and then trickled or stalled its body (a slow upload, a Content-Length
    promising more than comes) held one of the process's `DATABASE_POOL_MAX_SIZE` connections
    all that time: 16 such clients made every other request of the process a 503
    `database_unavailable` after `DATABASE_POOL_TIMEOUT`, and `/health/ready` fail.
    A body over the cap is left unread for the view to refuse (413) as before.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method in ("POST", "PUT", "PATCH") and request.META.get("CONTENT_LENGTH"):
            with contextlib.suppress(RequestDataTooBig):
                request.body  # noqa: B018
        return get_response(request)

    return middleware
