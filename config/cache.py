"""The shared cache holds protections (rate limits, circuit breakers), not data: when it cannot be
reached, requests go on without them instead of failing.

A Redis outage otherwise turned every generation and every login into a 500, and a breaker
update after a vendor call that had succeeded (and been paid for) threw its image away. After
one failure the process leaves the cache alone for `RETRY_SECONDS`, so a cache that does not
answer costs one request `CACHE_SOCKET_TIMEOUT`, not every cache call of every request; one
warning is logged per outage and process.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.request import Request

logger = logging.getLogger(__name__)

# What the Redis cache raises when its server refuses, drops or does not answer a call.
CACHE_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)
RETRY_SECONDS = 5.0

P = ParamSpec("P")
R = TypeVar("R")


class CacheOutage:
    """When this process may try the cache again (0: it is believed up)."""

    retry_at = 0.0

    @classmethod
    def clear(cls) -> None:
        """Believe the cache up: the next call goes to it."""
        cls.retry_at = 0.0


def without_cache(fallback: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function whose only outside calls are to the cache: while the cache cannot be
    reached, it returns `fallback` instead (the answer of an empty cache that keeps nothing)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if time.monotonic() < CacheOutage.retry_at:
                return fallback
            try:
                result = function(*args, **kwargs)
            except CACHE_UNAVAILABLE as exc:
                if not CacheOutage.retry_at:
                    logger.warning(
                        "cache_unavailable error=%s: %s; rate limits and circuit breakers are "
                        "off until it answers (tried again every %.0f s)",
                        type(exc).__name__,
                        exc,
                        RETRY_SECONDS,
                    )
                CacheOutage.retry_at = time.monotonic() + RETRY_SECONDS
                return fallback
            if CacheOutage.retry_at:
                CacheOutage.retry_at = 0.0
                logger.warning("cache_available: rate limits and circuit breakers are back on")
            return result

        return wrapper

    return decorate


class CacheOptionalThrottle:
    """A DRF throttle mixin that lets requests through while the cache cannot be reached."""

    @without_cache(fallback=True)
    def allow_request(self, request: Request, view: object) -> bool:
        return super().allow_request(request, view)  # type: ignore[misc]
