"""A circuit breaker per provider, kept in Django's cache so every worker shares its state."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from config.cache import without_cache

# Providers whose latest success this process could not record in the cache (set operations
# are atomic under the GIL).
_unrecorded_successes: set[str] = set()


class CircuitBreaker:
    """Closed until `threshold` consecutive failures; open for `cooldown` seconds; then one trial.

    State lives in the cache (Redis in production) under `imagegen:breaker:<name>:*`, so a dead
    vendor costs one worker's timeouts, not every request's. While the cache cannot be reached,
    every breaker is closed and keeps no count (`config.cache`); `state` alone still raises, so
    that an operator asking for it learns of the outage.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        prefix = f"imagegen:breaker:{name}"
        self._failures_key = f"{prefix}:failures"
        self._open_until_key = f"{prefix}:open_until"
        self._trial_key = f"{prefix}:trial"
        self._reason_key = f"{prefix}:last_failure"

    @property
    def threshold(self) -> int:
        return settings.IMAGEGEN_BREAKER_THRESHOLD

    @property
    def cooldown(self) -> float:
        return settings.IMAGEGEN_BREAKER_COOLDOWN

    def state(self) -> str:
        """`closed`, `open`, or `half-open` (cool-down over, a trial may go through)."""
        open_until = cache.get(self._open_until_key)
        if open_until is None:
            return "closed"
        return "open" if time.time() < open_until else "half-open"

    @without_cache(fallback=True)
    def allow(self) -> bool:
        """Whether a call may go to the provider now. Half-open lets exactly one caller through."""
        self._record_unrecorded_success()
        state = self.state()
        if state == "closed":
            return True
        if state == "open":
            return False
        # The trial's slot must outlive the trial call itself, or a second caller slips in.
        slot_seconds = max(self.cooldown, settings.IMAGEGEN_PROVIDER_TIMEOUT + 5)
        return cache.add(self._trial_key, 1, timeout=slot_seconds)

    def record_success(self) -> None:
        """Close the breaker. While the cache cannot be reached, the success is kept in this
        process and recorded before its next decision: a trial that went well would otherwise
        keep its slot, and the provider stay skipped, until the slot ran out (a minute)."""
        if self._close():
            _unrecorded_successes.discard(self.name)
        else:
            _unrecorded_successes.add(self.name)

    @without_cache(fallback=False)
    def _close(self) -> bool:
        cache.delete_many(
            [self._failures_key, self._open_until_key, self._trial_key, self._reason_key]
        )
        return True

    @staticmethod
    def forget_unrecorded_successes() -> None:
        """Drop the successes this process still has to record (for a fresh start in tests)."""
        _unrecorded_successes.clear()

    def _record_unrecorded_success(self) -> None:
        if self.name in _unrecorded_successes and self._close():
            _unrecorded_successes.discard(self.name)

    @without_cache(fallback=None)
    def record_failure(self, reason: str = "") -> None:
        """Count a failure; `reason` (what the vendor did) is kept to say why calls are skipped."""
        self._record_unrecorded_success()
        cache.set(self._reason_key, reason[:200], timeout=None)
        if self.state() == "half-open":
            self._open()
            return
        cache.add(self._failures_key, 0, timeout=None)
        try:
            failures = cache.incr(self._failures_key)
        except ValueError:  # expired between add and incr
            cache.set(self._failures_key, 1, timeout=None)
            failures = 1
        if failures >= self.threshold:
            self._open()

    @without_cache(fallback="")
    def last_failure(self) -> str:
        """The reason given with the latest failure since the last success, or ""."""
        return cache.get(self._reason_key) or ""

    @without_cache(fallback=0.0)
    def seconds_until_trial(self) -> float:
        open_until = cache.get(self._open_until_key)
        return max(open_until - time.time(), 0.0) if open_until else 0.0

    def _open(self) -> None:
        cache.set(self._open_until_key, time.time() + self.cooldown, timeout=None)
        cache.set(self._failures_key, 0, timeout=None)
        cache.delete(self._trial_key)
