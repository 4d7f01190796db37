"""Error pages outside the API views (unknown URLs, crashes before a view) in the API's shape."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse


def _error(message: str, code: str, status: int) -> JsonResponse:
    return JsonResponse({"success": False, "message": message, "code": code}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error("Malformed request.", "bad_request", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error("You do not have permission to do this.", "permission_denied", 403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _error(f"No such endpoint: {request.path}", "not_found", 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return _error("Internal error; it has been logged.", "internal", 500)
