"""Per-user rate limits: generation (`IMAGEGEN_THROTTLE_RATE`) and every other write
(`API_WRITE_THROTTLE_RATE`). Reads are not throttled.

The history lives in the default cache (Redis when `CACHE_URL` is set), so every worker process
counts against the same limit; while that cannot be reached, nothing is counted.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from config.cache import CacheOptionalThrottle


class WritesOnlyThrottle(CacheOptionalThrottle, UserRateThrottle):
    """The `scope`'s rate per user, on the methods that change something."""

    @property
    def THROTTLE_RATES(self) -> dict[str, str]:  # noqa: N802  (DRF's attribute name)
        # DRF copies the rates into the class at import; read them per request instead, so the
        # configured rate is the one in force.
        return api_settings.DEFAULT_THROTTLE_RATES

    def allow_request(self, request: Request, view: object) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class GenerationThrottle(WritesOnlyThrottle):
    """`IMAGEGEN_THROTTLE_RATE` on `POST /image-gen` and `POST /image-gen/batch`."""

    scope = "image-generation"


class WriteThrottle(WritesOnlyThrottle):
    """`API_WRITE_THROTTLE_RATE` on the API's other writes (projects, image edits and deletes):
    the project's default throttle."""

    scope = "writes"
