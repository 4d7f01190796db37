"""The worker warm-up: what a fresh worker loads before its first request."""

from __future__ import annotations

import logging

import pytest

from config import warmup
from config.storages import S3Storage


def test_every_step_runs_cleanly(caplog):
    with caplog.at_level(logging.WARNING, logger="config.warmup"):
        warmup.warm_up()

    assert caplog.records == []


def test_the_storage_step_builds_the_shared_s3_resource(monkeypatch):
    monkeypatch.setattr(S3Storage, "_shared_connections", {})

    warmup._storage()

    assert len(S3Storage._shared_connections) == 1


@pytest.mark.usefixtures("file_storage")
def test_the_storage_step_has_nothing_to_build_on_the_file_system(monkeypatch):
    monkeypatch.setattr(S3Storage, "_shared_connections", {})

    warmup._storage()

    assert S3Storage._shared_connections == {}


def test_a_failing_step_is_logged_and_the_others_still_run(monkeypatch, caplog):
    ran = []

    def broken() -> None:
        raise RuntimeError("no such module")

    def fine() -> None:
        ran.append("fine")

    monkeypatch.setattr(warmup, "STEPS", (broken, fine))
    with caplog.at_level(logging.WARNING, logger="config.warmup"):
        warmup.warm_up()

    assert ran == ["fine"]
    assert "warm_up step broken failed" in caplog.text
