"""The shared cache holds protections (rate limits, circuit breakers), not data: when it cannot be
reached, requests go on without them instead of failing.

A Redis outage otherwise turned every generation and every login into a 500, and a breaker
update after a vendor call that had succeeded (and been paid for) threw its image away. After
a failure the process leaves the cache alone: every `RETRY_SECONDS` one call (of any thread)
tries it again, so a cache that does not answer holds up the calls in flight when it stops and
then one call per process every `RETRY_SECONDS`, each for at most `CACHE_SOCKET_TIMEOUT`, not
every cache call of every request. One warning is logged when an outage starts, one when it
ends.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework.request import Request

logger = logging.getLogger(__name__)

# What the Redis cache raises when its server refuses, drops or does not answer a call, or
# answers it with an error: out of memory, a read-only replica after a failover, MISCONF.
CACHE_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, RedisResponseError)
RETRY_SECONDS = 5.0

P = ParamSpec("P")
R = TypeVar("R")


class CacheOutage:
    """This process's view of the cache: down from a failure until a call made after it
    succeeds. Shared by every thread, under a lock."""

    _lock = threading.Lock()
    failed_at = 0.0  # monotonic time of the latest failure; 0 while the cache is believed up
    retry_at = 0.0  # no call goes to the cache before this

    @classmethod
    def clear(cls) -> None:
        """Believe the cache up: the next call goes to it."""
        with cls._lock:
            cls.failed_at = cls.retry_at = 0.0

    @classmethod
    def may_try(cls) -> bool:
        """Whether a call may go to the cache now. During an outage, the first caller after each
        `RETRY_SECONDS` is the one that tries; the others keep to the fallback meanwhile."""
        if not cls.failed_at:
            return True
        with cls._lock:
            now = time.monotonic()
            if not cls.failed_at:
                return True
            if now < cls.retry_at:
                return False
            cls.retry_at = now + RETRY_SECONDS
            return True

    @classmethod
    def failed(cls, exc: Exception) -> None:
        with cls._lock:
            starting = not cls.failed_at
            cls.failed_at = time.monotonic()
            cls.retry_at = cls.failed_at + RETRY_SECONDS
        if starting:
            logger.warning(
                "cache_unavailable error=%s: %s; rate limits and circuit breakers are off "
                "until it answers (tried again every %.0f s)",
                type(exc).__name__,
                exc,
                RETRY_SECONDS,
            )

    @classmethod
    def succeeded(cls, started: float) -> None:
        """A call that started at `started` (monotonic) succeeded: the outage is over, unless
        the call had started before its latest failure."""
        if not cls.failed_at:
            return
        with cls._lock:
            if not cls.failed_at or started < cls.failed_at:
                return
            cls.failed_at = cls.retry_at = 0.0
        logger.warning("cache_available: rate limits and circuit breakers are back on")


def without_cache(fallback: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function whose only outside calls are to the cache: while the cache cannot be
    reached, it returns `fallback` instead (the answer of an empty cache that keeps nothing)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not CacheOutage.may_try():
                return fallback
            started = time.monotonic()
            try:
                result = function(*args, **kwargs)
            except CACHE_UNAVAILABLE as exc:
                CacheOutage.failed(exc)
                return fallback
            CacheOutage.succeeded(started)
            return result

        return wrapper

    return decorate


class CacheOptionalThrottle:
    """A DRF throttle mixin that lets requests through while the cache cannot be reached."""

    @without_cache(fallback=True)
    def allow_request(self, request: Request, view: object) -> bool:
        return super().allow_request(request, view)  # type: ignore[misc]
