"""The per-provider circuit breaker, on the local-memory cache and on the real Redis cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError

from config.cache import CacheOutage
from imagegen.breaker import CircuitBreaker
from imagegen.testing import vendor_payloads
from imagegen.tests.test_pipeline_faults import outcomes, post

pytestmark = pytest.mark.django_db

REDIS_CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
    }
}
THRESHOLD = 3
COOLDOWN = 30.0


class Clock:
    """Stands in for the breaker's wall clock."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("imagegen.breaker.time", fake)
    return fake


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = REDIS_CACHES
    cache.clear()  # FLUSHDB on database 15, the tests' own
    yield
    cache.clear()


@pytest.fixture(params=["locmem", "redis"])
def shared_cache(request, settings) -> str:
    """Runs a test on Django's local-memory cache and on Redis."""
    settings.IMAGEGEN_BREAKER_THRESHOLD = THRESHOLD
    settings.IMAGEGEN_BREAKER_COOLDOWN = COOLDOWN
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    return request.param


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


def test_stays_closed_below_the_threshold(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")

    fail(breaker, THRESHOLD - 1)

    assert breaker.state() == "closed"
    assert breaker.allow()


def test_opens_after_threshold_consecutive_failures(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")

    fail(breaker, THRESHOLD)

    assert breaker.state() == "open"
    assert not breaker.allow()
    assert breaker.seconds_until_trial() == pytest.approx(COOLDOWN)


def test_the_breaker_keeps_the_last_failure_until_a_success(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")

    breaker.record_failure("HTTP 503: upstream overloaded")
    breaker.record_failure("HTTP 429: too many requests")
    kept = breaker.last_failure()
    breaker.record_success()

    assert (kept, breaker.last_failure()) == ("HTTP 429: too many requests", "")


def test_a_success_resets_the_count(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")

    fail(breaker, THRESHOLD - 1)
    breaker.record_success()
    fail(breaker, THRESHOLD - 1)

    assert breaker.state() == "closed"


def test_stays_open_until_the_cooldown_is_over(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")
    fail(breaker, THRESHOLD)

    clock.advance(COOLDOWN - 1)

    assert not breaker.allow()
    assert breaker.seconds_until_trial() == pytest.approx(1)


def test_after_the_cooldown_exactly_one_trial_goes_through(shared_cache, clock):
    fail(CircuitBreaker("recraft-ai"), THRESHOLD)
    clock.advance(COOLDOWN)
    workers = [CircuitBreaker("recraft-ai") for _ in range(4)]

    allowed = [worker.allow() for worker in workers]

    assert workers[0].state() == "half-open"
    assert allowed == [True, False, False, False]


def test_a_successful_trial_closes_the_breaker(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")
    fail(breaker, THRESHOLD)
    clock.advance(COOLDOWN)
    assert breaker.allow()

    breaker.record_success()

    assert breaker.state() == "closed"
    assert [breaker.allow() for _ in range(3)] == [True, True, True]
    fail(breaker, THRESHOLD - 1)
    assert breaker.state() == "closed"


class CacheThatDropsDeletes:
    """The cache, but deleting keys fails with a dropped connection while `down`."""

    def __init__(self, real) -> None:
        self.real, self.down = real, True

    def delete_many(self, keys):
        if self.down:
            raise RedisConnectionError("Connection reset by peer")
        return self.real.delete_many(keys)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_trials_success_the_cache_missed_is_recorded_before_the_next_decision(
    shared_cache, clock, monkeypatch
):
    breaker = CircuitBreaker("recraft-ai")
    fail(breaker, THRESHOLD)
    clock.advance(COOLDOWN)
    assert breaker.allow()
    flaky = CacheThatDropsDeletes(cache)
    monkeypatch.setattr("imagegen.breaker.cache", flaky)
    breaker.record_success()
    flaky.down = False
    CacheOutage.clear()  # the outage's quiet window is over

    assert [CircuitBreaker("recraft-ai").allow() for _ in range(3)] == [True, True, True]
    assert breaker.state() == "closed"


def test_a_failed_trial_opens_it_for_another_cooldown(shared_cache, clock):
    breaker = CircuitBreaker("recraft-ai")
    fail(breaker, THRESHOLD)
    clock.advance(COOLDOWN)
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state() == "open"
    assert breaker.seconds_until_trial() == pytest.approx(COOLDOWN)
    clock.advance(COOLDOWN)
    assert breaker.allow()


def test_each_provider_has_its_own_breaker(shared_cache, clock):
    fail(CircuitBreaker("recraft-ai"), THRESHOLD)

    assert CircuitBreaker("google-imagen").state() == "closed"


def test_state_is_shared_between_threads(shared_cache, clock):
    # Django gives each thread its own cache connection: for Redis, another client.
    thread = threading.Thread(target=fail, args=(CircuitBreaker("recraft-ai"), THRESHOLD))
    thread.start()
    thread.join()

    assert CircuitBreaker("recraft-ai").state() == "open"


def test_redis_state_is_shared_across_processes(redis_cache, settings):
    settings.IMAGEGEN_BREAKER_THRESHOLD = 2
    other_worker = f"""
import django
django.setup()
from django.test import override_settings
with override_settings(CACHES={REDIS_CACHES!r}, IMAGEGEN_BREAKER_THRESHOLD=2):
    from imagegen.breaker import CircuitBreaker
    breaker = CircuitBreaker("recraft-ai")
    breaker.record_failure()
    breaker.record_failure()
    print(breaker.state())
"""

    finished = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", other_worker],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "open"
    assert not CircuitBreaker("recraft-ai").allow()


# ---------------------------------------------------------------------------------------------
# The breaker in the pipeline.
# ---------------------------------------------------------------------------------------------
def test_open_provider_is_skipped_without_a_call_until_one_trial_decides(
    api, project, vendors, no_sleep, settings, shared_cache, clock
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    for _ in range(THRESHOLD):
        vendors.recraft(503, b"unavailable")
        vendors.gemini()
        assert post(api, project).json()["model"] == "google-imagen"
    vendors.gemini()

    skipped = post(api, project)

    assert skipped.status_code == 201
    assert vendors.calls("recraft") == THRESHOLD
    assert outcomes(skipped) == [("recraft-ai", "circuit_open"), ("google-imagen", "succeeded")]
    assert "recraft-ai circuit open" in skipped.json()["message"]

    clock.advance(COOLDOWN)
    vendors.recraft()
    trial = post(api, project)

    assert trial.json()["model"] == "recraft-ai"
    assert vendors.calls("recraft") == THRESHOLD + 1
    assert CircuitBreaker("recraft-ai").state() == "closed"


def test_retries_stop_once_the_breaker_opens(
    api, project, vendors, no_sleep, settings, shared_cache
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = THRESHOLD + 2
    for _ in range(THRESHOLD):
        vendors.recraft(503, b"unavailable")
    vendors.gemini()

    response = post(api, project)

    assert vendors.calls("recraft") == THRESHOLD
    assert outcomes(response)[THRESHOLD] == ("recraft-ai", "circuit_open")


def test_every_breaker_open_is_a_502_without_a_call(api, project, vendors, settings, shared_cache):
    fail(CircuitBreaker("recraft-ai"), THRESHOLD)
    fail(CircuitBreaker("google-imagen"), THRESHOLD)

    response = post(api, project)

    assert response.status_code == 502
    assert response.json()["success"] is False
    assert "failed repeatedly" in response.json()["message"]
    assert vendors.calls("recraft") + vendors.calls("gemini") == 0


def test_a_request_that_finds_every_breaker_open_is_told_what_opened_them(
    api, project, vendors, no_sleep, settings, shared_cache
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = THRESHOLD
    for _ in range(THRESHOLD):
        vendors.recraft(429, {"code": "rate_limit", "message": "Too many requests"})
        vendors.gemini(200, b"<html>gateway</html>")
    assert post(api, project).status_code == 502
    vendor_calls = len(vendors.mock.calls)

    response = post(api, project)

    message = response.json()["message"]
    assert response.status_code == 502
    assert len(vendors.mock.calls) == vendor_calls
    recraft, gemini = message.removeprefix("Every image provider failed (").split("; google")
    assert recraft.startswith("recraft-ai: skipped: recraft-ai failed repeatedly (last: ")
    assert "429" in recraft
    assert "google-imagen failed repeatedly (last: " in gemini


def test_a_failure_summary_names_each_providers_real_error_not_only_skips(
    api, project, vendors, no_sleep, settings, shared_cache
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = THRESHOLD + 2
    for _ in range(THRESHOLD):
        vendors.recraft(503, b"upstream overloaded")
    fail(CircuitBreaker("google-imagen"), THRESHOLD)

    response = post(api, project)

    summary = response.json()["message"]
    assert response.status_code == 502
    assert summary.startswith("Every image provider failed (recraft-ai: ")
    assert "recraft-ai: skipped" not in summary  # its real 503, not the skip that followed
    assert "503" in summary.split("; ")[0]
    assert "google-imagen: skipped: google-imagen failed repeatedly" in summary


def test_safety_blocks_do_not_open_the_breaker(api, project, vendors, settings, shared_cache):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    for _ in range(THRESHOLD + 1):
        vendors.gemini(body=vendor_payloads.gemini_prompt_blocked())
        assert post(api, project, model="google-imagen").status_code == 422

    assert CircuitBreaker("google-imagen").state() == "closed"


def test_a_trial_the_vendor_answers_with_a_block_closes_the_circuit(
    api, project, vendors, no_sleep, settings, monkeypatch
):
    settings.IMAGEGEN_BREAKER_THRESHOLD = 1
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    breaker = CircuitBreaker("google-imagen")
    breaker.record_failure()
    clock = time.time()
    monkeypatch.setattr("imagegen.breaker.time.time", lambda: clock + 31)
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked("SAFETY"))

    response = api.post(
        "/image-gen",
        {
            "visual_prompt": "A fox",
            "art_style": "watercolor",
            "uuid": "trial-1",
            "projectId": project.id,
            "model": "google-imagen",
        },
        format="json",
    )

    assert response.status_code == 422
    assert breaker.state() == "closed"
