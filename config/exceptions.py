"""The API's one error shape, `{"success": false, "message", "code"}`, for every failure."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404
from django.views.debug import SafeExceptionReporterFilter
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait after the database was unavailable.
DATABASE_RETRY_AFTER = 5


class ServiceError(Exception):
    """A domain failure raised by a service; subclasses set the HTTP status and a stable code."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "error"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def as_body(self) -> dict[str, Any]:
        """The API's error shape for this failure."""
        return {"success": False, "message": self.message, "code": self.code, **self.extra}


class DatabaseUnavailable(ServiceError):
    """The database went away (a restart, a failover, no pooled connection free in time):
    nothing the caller did, and over in seconds."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The database is unavailable right now; retry in a few seconds.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )


# SQLSTATE classes of a database that is not there to serve: connection exceptions (08), an
# operator's intervention such as a shutdown (57P), insufficient resources such as too many
# connections (53). A deadlock (40P01) or a statement timeout (57014) is not an outage.
# https://www.postgresql.org/docs/current/errcodes-appendix.html
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")


def _database_unavailable(exc: Exception) -> bool:
    """Whether `exc` says the database is away: a driver error from no connection (no
    SQLSTATE: refused, dropped, no pooled connection free in time) or one of those classes."""
    if not isinstance(exc, (DatabaseOperationalError, DatabaseInterfaceError)):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _token_message(detail: dict[str, Any]) -> str:
    """simplejwt's refusal nests its own `{"detail", "code", "messages"}`: its sentence, and
    why the token failed when it says ("Token is expired")."""
    reasons = [str(item["message"]) for item in detail.get("messages", []) if "message" in item]
    return f"{detail['detail']} ({reasons[0]})" if reasons else str(detail["detail"])


def validation_message(detail: Any) -> str:
    """The one-line message of a validation failure, as the API and the commands state it."""
    return f"Invalid input: {_first_message(detail)}"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Render any exception raised in an API view as the error shape; never HTML, never a trace."""
    if _database_unavailable(exc):
        # Logged, as an outage should be; the caller is told to retry.
        logger.exception("database_unavailable in %s", context.get("view").__class__.__name__)
        exc = DatabaseUnavailable()
    if isinstance(exc, ServiceError):
        return Response(exc.as_body(), status=exc.status_code, headers=exc.headers)
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found: it does not exist or you do not have access to it.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or "Malformed request.")

    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            {
                "success": False,
                "message": "Internal error; it has been logged.",
                "code": "internal",
            },
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = getattr(exc, "default_code", "error")
    body: dict[str, Any] = {"success": False, "code": code}
    if isinstance(exc, exceptions.ValidationError):
        body["message"] = validation_message(exc.detail)
        body["errors"] = exc.detail
    elif isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        # DRF has rounded the wait up already, and sends it as Retry-After.
        body["message"] = f"Too many requests; retry in {int(exc.wait)} s."
    elif isinstance(exc.detail, dict) and "detail" in exc.detail:
        body["message"] = _token_message(exc.detail)
    else:
        body["message"] = _first_message(exc.detail)
    response.data = body
    return response


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, which hides settings and request.META entries named like secrets
    (KEY, SECRET, PASS...), also hiding URLs and cache locations: DATABASE_URL (in META under
    runserver, which copies the environment), CACHE_URL, CACHES' LOCATION and
    CELERY_BROKER_URL hold passwords that DEBUG's error page and error e-mails showed."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|LOCATION|DSN", flags=re.I
    )
