"""The cache holds rate limits and circuit breakers: when Redis is down, requests go on without
them (one warning per outage), and an image already paid for is never lost to it."""

from __future__ import annotations

import ast
import logging
import socket

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.tests.factories import PASSWORD
from config.cache import CacheOutage, without_cache
from conftest import settings_in_new_process
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


def test_an_image_paid_for_is_kept_when_the_cache_fails_after_the_vendor_call(
    api, project, vendors, monkeypatch
):
    vendors.recraft()

    def refused(*args, **kwargs):
        raise RedisConnectionError("Connection reset by peer")

    # The breaker records the vendor's success once the image is back.
    monkeypatch.setattr("imagegen.breaker.cache.delete_many", refused)

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
