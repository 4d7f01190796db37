"""The cache holds rate limits and circuit breakers: when Redis is down, requests go on without
them (one warning per outage), and an image already paid for is never lost to it."""

from __future__ import annotations

import ast
import logging
import socket
import subprocess
import threading
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from accounts.tests.factories import PASSWORD
from config.cache import CacheOutage, without_cache
from conftest import settings_in_new_process
from imagegen.breaker import CircuitBreaker
from imagegen.models import GeneratedImage
from imagegen.tests.test_api import SEED_POST

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down(settings) -> None:
    """The default cache is Redis on a port nothing listens on: every call is refused."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }


def outage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("cache_")]


def test_a_generation_goes_on_without_the_cache(api, project, vendors, redis_down, caplog):
    vendors.recraft()

    first = api.post("/image-gen", {**SEED_POST, "projectId": project.id}, format="json")
    second = api.post(
        "/image-gen", {**SEED_POST, "uuid": "segment-2", "projectId": project.id}, format="json"
    )

    assert (first.status_code, second.status_code) == (201, 201), first.content
    assert vendors.calls("recraft") == 2
    assert GeneratedImage.objects.filter(status="succeeded").count() == 2
    [warning] = outage_warnings(caplog)  # one per outage, not one per call
    assert warning.startswith("cache_unavailable error=ConnectionError: ")
    assert "rate limits and circuit breakers are off" in warning


def test_a_storyboard_is_queued_and_generated_without_the_cache(
    api, project, vendors, redis_down, django_capture_on_commit_callbacks
):
    vendors.recraft()
    body = {"projectId": project.id, "items": [{**SEED_POST}]}

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/image-gen/batch", body, format="json")

    assert response.status_code == 202, response.content
    assert GeneratedImage.objects.get().status == "succeeded"


def test_logging_in_goes_on_without_the_cache(anonymous, user, redis_down):
    response = anonymous.post(
        "/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200, response.content
    assert set(response.json()) >= {"access", "refresh"}


@pytest.mark.parametrize(
    ("cache_call", "error"),
    [
        # The breaker records the vendor's success once the paid image is back.
        ("imagegen.breaker.cache.delete_many", RedisConnectionError("Connection reset by peer")),
        # A Redis that answers with an error is as unavailable as one that does not answer.
        ("django.core.cache.cache.get", RedisResponseError("MISCONF Redis is configured to save")),
    ],
    ids=["reset after the vendor call", "MISCONF"],
)
def test_a_generation_is_kept_whichever_cache_call_fails(
    api, project, vendors, monkeypatch, cache_call, error
):
    vendors.recraft()

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(cache_call, failing)

    response = api.post("/image-gen", {**SEED_POST, "projectId": project.id}, format="json")

    assert response.status_code == 201, response.content
    assert GeneratedImage.objects.get().status == "succeeded"


def test_the_cache_is_left_alone_for_a_while_after_a_failure_then_tried_again(caplog):
    calls = []

    @without_cache(fallback="fallback")
    def read(answer: Exception | str) -> str:
        calls.append(answer)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with caplog.at_level(logging.WARNING, logger="config.cache"):
        assert read(RedisConnectionError("refused")) == "fallback"
        assert read("up") == "fallback"  # within the retry window: not even tried
        CacheOutage.retry_at = 1.0  # the window is over
        assert read("up") == "up"
        assert read("up") == "up"

    assert calls == [calls[0], "up", "up"]
    assert [message.split(" ")[0] for message in outage_warnings(caplog)] == [
        "cache_unavailable",
        "cache_available:",
    ]


def test_after_the_window_one_thread_tries_the_cache_while_the_others_fall_back():
    CacheOutage.failed(RedisConnectionError("refused"))
    CacheOutage.retry_at = 1.0  # the window is over
    calls = []
    start = threading.Barrier(16)

    @without_cache(fallback="fallback")
    def read() -> str:
        calls.append(1)
        time.sleep(0.2)  # a cache that does not answer
        raise RedisTimeoutError("Timeout reading from socket")

    def call() -> None:
        start.wait()
        read()

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1


def test_an_outage_is_over_only_for_a_call_made_after_its_failure(caplog):
    release = threading.Event()

    @without_cache(fallback="fallback")
    def slow_read() -> str:
        release.wait(5)
        return "up"

    early = threading.Thread(target=slow_read)
    early.start()  # in flight before the failure
    time.sleep(0.05)
    CacheOutage.failed(RedisConnectionError("refused"))
    release.set()
    early.join()

    assert CacheOutage.failed_at  # still down: that call proves nothing about now
    assert [m.split(" ")[0] for m in outage_warnings(caplog)] == ["cache_unavailable"]


def test_an_outage_is_logged_once_however_many_calls_fail(caplog):
    @without_cache(fallback=None)
    def refused() -> None:
        raise RedisConnectionError("refused")

    for _ in range(3):
        refused()
        CacheOutage.retry_at = 1.0  # each later call is a retry after the window

    assert len(outage_warnings(caplog)) == 1


@pytest.mark.parametrize(
    ("method", "arguments", "fallback"),
    [
        ("allow", (), True),
        ("record_success", (), None),
        ("record_failure", ("HTTP 503",), None),
        ("last_failure", (), ""),
        ("seconds_until_trial", (), 0.0),
    ],
)
def test_a_breaker_falls_back_to_closed_without_the_cache(redis_down, method, arguments, fallback):
    breaker = CircuitBreaker("recraft-ai")

    assert getattr(breaker, method)(*arguments) == fallback


def test_a_breakers_state_still_says_the_cache_is_down(redis_down):
    # What an operator asks for (imagegen_providers): the outage must show, not "closed".
    with pytest.raises(RedisConnectionError):
        CircuitBreaker("recraft-ai").state()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_cache_timeout_that_is_not_positive_is_refused(value):
    with pytest.raises(subprocess.CalledProcessError) as refusal:
        settings_in_new_process(
            "settings.CACHES",
            DJANGO_SETTINGS_MODULE="config.settings.local",
            CACHE_SOCKET_TIMEOUT=value,
        )

    assert f"CACHE_SOCKET_TIMEOUT={value} must be more than 0 seconds." in refusal.value.stderr


def test_other_errors_are_not_taken_for_an_outage():
    @without_cache(fallback=True)
    def broken() -> bool:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        broken()
    assert CacheOutage.retry_at == 0.0


def test_redis_calls_time_out_after_cache_socket_timeout():
    shown = settings_in_new_process(
        "settings.CACHES['default']['OPTIONS']",
        DJANGO_SETTINGS_MODULE="config.settings.local",
        CACHE_URL="redis://127.0.0.1:6379/1",
        CACHE_SOCKET_TIMEOUT="0.25",
    )

    assert ast.literal_eval(shown) == {"socket_connect_timeout": 0.25, "socket_timeout": 0.25}
