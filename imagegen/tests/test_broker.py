"""A real `celery -A config worker --pool threads` on Redis finishes a storyboard."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client

from config.celery import app as celery_app
from conftest import S3_BUCKET
from imagegen.testing.fake_vendors import FakeVendorServer

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.django_db(transaction=True)]

BROKER_URL = os.environ.get("IMAGEGEN_TEST_BROKER_URL", "redis://127.0.0.1:6379/3")
REPO = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def vendor_server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer(latency=0.2) as server:
        yield server


@pytest.fixture
def fake_vendors(vendor_server: FakeVendorServer) -> FakeVendorServer:
    vendor_server.reset()
    return vendor_server


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {BROKER_URL}")
    client.flushdb()
    yield BROKER_URL
    client.flushdb()


@pytest.fixture(scope="module")
def worker(
    django_db_setup, broker: str, vendor_server: FakeVendorServer, moto_endpoint: str
) -> Iterator[None]:
    """One worker process on the test database, the loopback vendors and the moto bucket."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": broker,
        "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
        "AWS_S3_ENDPOINT_URL": moto_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "RECRAFT_API_KEY": "fake-recraft-key",
        "RECRAFT_API_URL": vendor_server.recraft_url,
        "GEMINI_API_KEY": "fake-gemini-key",
        "GEMINI_API_URL": vendor_server.gemini_url,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    command += ["--pool", "threads", "--concurrency", "8", "--loglevel", "INFO", "--without-gossip"]
    process = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ready = threading.Event()
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(30):
            pytest.fail("the worker did not start:\n" + "".join(output[-40:]))
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def publish_to_broker(broker: str, monkeypatch, settings) -> None:
    """This process queues tasks on Redis instead of running them in-process."""
    # Celery reads the broker from the environment before its settings. Eager calls made
    # earlier in this process left connection and producer pools for the default broker: drop
    # them (Celery does the same after a fork).
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    # The services read the setting too: eager, they re-read rows the worker may have started.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)


def wait_for_done(api, batch_id: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = api.get(f"/image-gen/batch/{batch_id}").json()
        if body["done"] or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_a_worker_generates_a_storyboard_queued_on_redis(
    api, project, worker, publish_to_broker, fake_vendors
):
    items = [
        {"visual_prompt": f"A lighthouse at dusk, shot {index}", "art_style": "photography"}
        | {"uuid": f"shot-{index:02d}"}
        for index in range(6)
    ]
    items[5] |= {"visual_prompt": "A fox in the snow", "art_style": "watercolor painting"}

    accepted = api.post(
        "/image-gen/batch", {"projectId": project.id, "items": items}, format="json"
    )
    assert accepted.status_code == 202, accepted.json()
    assert {item["status"] for item in accepted.json()["items"]} == {"pending"}

    body = wait_for_done(api, accepted.json()["batchId"], seconds=30)

    assert body["counts"] == {"pending": 0, "running": 0, "succeeded": 6, "failed": 0}
    assert (fake_vendors.calls("recraft"), fake_vendors.calls("gemini")) == (5, 1)
    for item in body["items"]:
        assert default_storage.exists(item["s3Key"])


def test_a_duplicate_delivery_on_a_real_worker_generates_once(
    api, project, worker, publish_to_broker, fake_vendors
):
    from imagegen.tasks import generate_image

    accepted = api.post(
        "/image-gen/batch",
        {
            "projectId": project.id,
            "items": [{"visual_prompt": "A red door", "art_style": "", "uuid": "door"}],
        },
        format="json",
    )
    image_id = accepted.json()["items"][0]["id"]
    for _ in range(3):
        generate_image.delay(image_id)

    body = wait_for_done(api, accepted.json()["batchId"], seconds=30)
    time.sleep(0.5)  # the duplicates are picked up at once by idle threads

    assert body["counts"]["succeeded"] == 1
    assert fake_vendors.calls("recraft") == 1


def test_a_real_worker_deletes_a_deleted_projects_objects(
    api, project, worker, publish_to_broker, fake_vendors
):
    accepted = api.post(
        "/image-gen/batch",
        {
            "projectId": project.id,
            "items": [
                {"visual_prompt": f"A red door, take {n}", "art_style": "", "uuid": f"door-{n}"}
                for n in range(3)
            ],
        },
        format="json",
    )
    keys = [item["s3Key"] for item in wait_for_done(api, accepted.json()["batchId"], 30)["items"]]
    assert all(default_storage.exists(key) for key in keys)

    response = api.delete(f"/projects/{project.id}")

    assert response.status_code == 204
    deadline = time.monotonic() + 15
    while any(default_storage.exists(key) for key in keys) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(default_storage.exists(key) for key in keys)


def test_the_status_probe_hears_a_worker_on_the_broker(worker, publish_to_broker, settings):
    settings.CELERY_BROKER_URL = BROKER_URL
    response = Client().get("/health", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.json()
    assert response.json()["CeleryWorkers()"] == "OK"
