"""Values that parse but cannot work stop start-up by name (they were a 500, a hang or a flood
at the first request, task or tick that reached them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def settings_import(**environ: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("IMAGEGEN_", "DATABASE_", "JWT_", "API_", "AUTH_", "CACHE_", "LOG_"))
    }
    env.update(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/imagegen",
        PYTHONPATH=str(ROOT),
        **environ,
    )
    return subprocess.run(
        [sys.executable, "-c", "import config.settings.base"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "DATABASE_CONN_MAX_AGE",
            "60",
            "DATABASE_CONN_MAX_AGE=60 cannot be used with the connection pool",
        ),
        ("DATABASE_CONN_MAX_AGE", "-1", "DATABASE_CONN_MAX_AGE=-1 must be at least 0"),
        ("DATABASE_POOL_MIN_SIZE", "-1", "DATABASE_POOL_MIN_SIZE=-1 must be at least 0"),
        ("DATABASE_POOL_MAX_SIZE", "0", "DATABASE_POOL_MAX_SIZE=0 must be at least 1"),
        ("DATABASE_POOL_TIMEOUT", "0", "DATABASE_POOL_TIMEOUT=0 must be more than 0"),
        ("IMAGEGEN_PROVIDER_ATTEMPTS", "0", "IMAGEGEN_PROVIDER_ATTEMPTS=0 must be at least 1"),
        (
            "IMAGEGEN_CONVERSION_CONCURRENCY",
            "0",
            "IMAGEGEN_CONVERSION_CONCURRENCY=0 must be at least 1",
        ),
        (
            "IMAGEGEN_PROVIDER_CONCURRENCY",
            "0",
            "IMAGEGEN_PROVIDER_CONCURRENCY=0 must be at least 1",
        ),
        ("IMAGEGEN_LIST_DEFAULT_LIMIT", "0", "IMAGEGEN_LIST_DEFAULT_LIMIT=0 must be at least 1"),
        ("IMAGEGEN_MAX_IMAGE_BYTES", "0", "IMAGEGEN_MAX_IMAGE_BYTES=0 must be at least 1"),
        ("IMAGEGEN_SWEEP_INTERVAL", "0", "IMAGEGEN_SWEEP_INTERVAL=0 must be more than 0"),
        ("JWT_ACCESS_MINUTES", "0", "JWT_ACCESS_MINUTES=0 must be at least 1"),
        ("API_MAX_BODY_BYTES", "-1", "API_MAX_BODY_BYTES=-1 must be at least 1"),
        ("API_WRITE_THROTTLE_RATE", "120", "API_WRITE_THROTTLE_RATE='120' is not a rate"),
        ("IMAGEGEN_THROTTLE_RATE", "", "IMAGEGEN_THROTTLE_RATE='' is not a rate"),
        ("AUTH_THROTTLE_RATE", "30/x", "AUTH_THROTTLE_RATE='30/x' is not a rate"),
        ("CACHE_URL", "redis//127.0.0.1:6379/1", "CACHE_URL is not a Redis URL"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL='VERBOSE' is not"),
    ],
)
def test_a_value_that_cannot_work_stops_start_up_by_name(name, value, expected):
    result = settings_import(**{name: value})

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: " + expected), last


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_CONN_MAX_AGE", "0"),
        ("DATABASE_POOL_MIN_SIZE", "0"),
        ("API_WRITE_THROTTLE_RATE", "120/min"),
        ("AUTH_THROTTLE_RATE", "5/second"),
        ("CACHE_URL", "redis://127.0.0.1:6379/1"),
        ("LOG_LEVEL", "warning"),
        # Below the other setting's default, which follows it down.
        ("IMAGEGEN_LIST_MAX_LIMIT", "50"),
        ("DATABASE_POOL_MAX_SIZE", "1"),
    ],
)
def test_working_values_still_start(name, value):
    result = settings_import(**{name: value})

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"IMAGEGEN_LIST_DEFAULT_LIMIT": "100", "IMAGEGEN_LIST_MAX_LIMIT": "50"},
            "IMAGEGEN_LIST_DEFAULT_LIMIT=100 is more than IMAGEGEN_LIST_MAX_LIMIT=50",
        ),
        (
            {"DATABASE_POOL_MIN_SIZE": "4", "DATABASE_POOL_MAX_SIZE": "2"},
            "DATABASE_POOL_MIN_SIZE=4 is more than DATABASE_POOL_MAX_SIZE=2",
        ),
    ],
)
def test_two_settings_that_contradict_each_other_are_both_named(environ, expected):
    result = settings_import(**environ)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: " + expected), last
