"""gunicorn.conf.py: a stop or a worker's recycling lets every request in flight finish."""

from __future__ import annotations

import runpy

import pytest
from django.conf import settings


def gunicorn_settings(monkeypatch, **environment: str) -> dict:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(settings.BASE_DIR / "gunicorn.conf.py"))


@pytest.mark.parametrize(
    ("environment", "timeout"), [({}, 600), ({"GUNICORN_TIMEOUT": "900"}, 900)]
)
def test_requests_in_flight_get_as_long_as_a_request_may_take(monkeypatch, environment, timeout):
    monkeypatch.delenv("GUNICORN_TIMEOUT", raising=False)
    monkeypatch.delenv("GUNICORN_GRACEFUL_TIMEOUT", raising=False)

    config = gunicorn_settings(monkeypatch, **environment)

    assert (config["timeout"], config["graceful_timeout"]) == (timeout, timeout)


def test_the_graceful_timeout_can_be_set_on_its_own(monkeypatch):
    config = gunicorn_settings(monkeypatch, GUNICORN_GRACEFUL_TIMEOUT="30")

    assert config["graceful_timeout"] == 30
