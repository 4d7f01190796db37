"""Views outside the apps: error pages outside the API views (unknown URLs, crashes before a
view) in the API's shape, the schema and the Swagger UI page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


def _error(message: str, code: str, status: int) -> JsonResponse:
    return JsonResponse({"success": False, "message": message, "code": code}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error("Malformed request.", "bad_request", 400)


def too_many_fields(request: HttpRequest) -> JsonResponse:
    return _error(
        f"Too many query parameters or form fields: at most "
        f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} are read.",
        "too_many_fields",
        400,
    )


def length_required(request: HttpRequest) -> JsonResponse:
    return _error(
        "Send the body with a Content-Length header; chunked request bodies are not supported.",
        "length_required",
        411,
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error("You do not have permission to do this.", "permission_denied", 403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error(f"No such endpoint: {request.path}", "not_found", 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return _error("Internal error; it has been logged.", "internal", 500)


class JsonErrorsMixin:
    """Errors in the API's JSON shape, for views whose documents are not JSON (the schema's
    YAML, the docs' HTML): a 405 or 406 came back as YAML or as an HTML page."""

    def finalize_response(
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaFormatNegotiation(DefaultContentNegotiation):
    """`?format=json` or `?format=yaml` picks the schema's format. The API itself takes no
    `format` parameter (URL_FORMAT_OVERRIDE is off): JSON is its only one."""

    def select_renderer(
        self, request: Request, renderers: list, format_suffix: str | None = None
    ) -> tuple:
        chosen = format_suffix or request.query_params.get("format")
        return super().select_renderer(request, renderers, chosen)


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    """`/schema`: the OpenAPI document, YAML by default."""

    content_negotiation_class = SchemaFormatNegotiation


class SwaggerUIView(JsonErrorsMixin, SpectacularSwaggerView):
    """`/docs`. drf-spectacular picks the page's template in `get()` only, so DRF's `OPTIONS`
    answer had no template to render (a 500): answer it as plain Django does, with `Allow`."""

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return View.options(self, request, *args, **kwargs)
