"""Health probes: live answers without the database, ready checks the database and migrations,
/health the shared services too; all of them whatever the Host header, none redirected."""

from __future__ import annotations

import json
import time

import pytest
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from config.celery import app as celery_app
from config.health import MigrationsApplied
from config.tests.test_cache import closed_port, redis_down  # noqa: F401  (a fixture)
from conftest import python_process
from imagegen.tests.test_batch import silent_broker  # noqa: F401  (a fixture)
from imagegen.tests.test_broker import BROKER_URL, broker  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
# What a ready process's checks report.
READY = {"Database(alias='default')": "OK", "MigrationsApplied(alias='default')": "OK"}


@pytest.fixture(autouse=True)
def _forget_applied_migrations() -> None:
    MigrationsApplied._applied.clear()


def probe(path: str, **headers: str) -> tuple[int, dict]:
    response = Client().get(path, **{**JSON, **headers})
    return response.status_code, json.loads(response.content)


def test_liveness_runs_no_check():
    assert probe("/health/live") == (200, {})


def test_readiness_checks_the_database_and_migrations():
    assert probe("/health/ready") == (200, READY)


@pytest.mark.django_db(transaction=True)  # the checks run in threads of their own
def test_readiness_fails_while_a_migration_is_not_applied():
    latest = MigrationRecorder.Migration.objects.filter(app="imagegen").latest("id")
    latest.delete()  # as if this release's `migrate` had not run yet
    try:
        status, checks = probe("/health/ready")
    finally:
        MigrationRecorder.Migration.objects.create(app=latest.app, name=latest.name)
    assert status == 500
    assert checks["MigrationsApplied(alias='default')"] == (
        f"Unavailable: 1 migration(s) not applied: imagegen.{latest.name}"
    )


def test_readiness_does_not_look_migrations_up_again_once_applied(monkeypatch):
    looked_up = []

    def executor(connection):
        looked_up.append(connection.alias)
        return MigrationExecutor(connection)

    monkeypatch.setattr("config.health.MigrationExecutor", executor)
    assert probe("/health/ready")[0] == 200
    assert probe("/health/ready")[0] == 200
    assert looked_up == ["default"]


def test_without_the_database_readiness_fails_and_liveness_does_not():
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "answers = [Client().get(path, HTTP_ACCEPT='application/json') "
        "for path in ('/health/live', '/health/ready')]; "
        "print(json.dumps([[r.status_code, json.loads(r.content)] for r in answers]))"
    )
    process = python_process(
        script,
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/imagegen",
        DATABASE_POOL_TIMEOUT="1",
    )
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    live, (status, checks) = json.loads(output.strip().splitlines()[-1])
    assert live == [200, {}]
    assert status == 500
    assert checks["Database(alias='default')"] == "Unavailable: connection failed"
    assert checks["MigrationsApplied(alias='default')"] == (
        "Unavailable: the database could not be read"
    )


def test_status_checks_cache_and_storage_and_no_broker_when_none_is_configured():
    assert probe("/health") == (
        200,
        {**READY, "Cache(alias='default')": "OK", "StorageAnswers(alias='default')": "OK"},
    )


@pytest.mark.usefixtures("file_storage")
def test_status_checks_file_system_storage():
    assert probe("/health")[1]["StorageAnswers(alias='default')"] == "OK"


def test_status_fails_while_storage_does_not_answer(settings):
    options = settings.STORAGES["default"]["OPTIONS"]
    unreachable = {**options, "endpoint_url": f"http://127.0.0.1:{closed_port()}"}
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": unreachable},
    }
    status, checks = probe("/health")
    assert status == 500
    assert checks["StorageAnswers(alias='default')"] == (
        "Unavailable: the storage did not answer (EndpointConnectionError)"
    )
    assert checks["Database(alias='default')"] == "OK"


def test_status_fails_while_the_broker_does_not_answer(settings, monkeypatch):
    unreachable = f"redis://127.0.0.1:{closed_port()}/0"
    settings.CELERY_BROKER_URL = unreachable
    monkeypatch.setattr(celery_app.conf, "broker_url", unreachable)
    monkeypatch.setattr(celery_app, "_pool", None)
    started = time.monotonic()
    status, checks = probe("/health")
    assert status == 500
    assert checks["CeleryWorkers()"] == "Unavailable: the broker did not answer"
    assert time.monotonic() - started < 3


@pytest.mark.usefixtures("broker")
def test_status_fails_while_no_worker_listens_on_the_broker(settings, monkeypatch):
    settings.CELERY_BROKER_URL = BROKER_URL
    monkeypatch.setattr(celery_app.conf, "broker_url", BROKER_URL)
    monkeypatch.setattr(celery_app, "_pool", None)
    status, checks = probe("/health")
    assert status == 500
    assert checks["CeleryWorkers()"] == "Unavailable: Celery workers unavailable"


@pytest.mark.usefixtures("redis_down")
def test_status_fails_while_the_cache_does_not_answer():
    status, checks = probe("/health")
    assert status == 500
    assert checks["Cache(alias='default')"] == "Unexpected Result: Connection Error"


def test_no_storage_object_is_written_by_a_probe(s3_client):
    before = s3_client.list_objects_v2(Bucket="imagegen-test").get("KeyCount", 0)
    assert probe("/health")[0] == 200
    assert s3_client.list_objects_v2(Bucket="imagegen-test").get("KeyCount", 0) == before


@pytest.mark.parametrize("path", ["/health", "/health/", "/health/live", "/health/ready/"])
def test_probes_answer_whatever_the_host_header(path, settings):
    settings.ALLOWED_HOSTS = ["api.example.com"]
    assert Client().get(path, HTTP_HOST="10.0.3.7:8000", **JSON).status_code == 200
    assert Client().get("/image-gen", HTTP_HOST="10.0.3.7:8000").status_code == 400


def test_probes_are_not_redirected_to_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/health/ready", **JSON).status_code == 200
    assert Client().get("/image-gen").status_code == 301


def test_a_malformed_accept_header_is_a_406_that_says_what_to_send():
    response = Client().get("/health/ready", HTTP_ACCEPT="nonsense")
    assert response.status_code == 406
    assert "the Accept header is malformed" in response.content.decode()
    assert Client().get("/health/ready?format=json", HTTP_ACCEPT="nonsense").status_code == 200


def test_probes_are_never_cached():
    response = Client().get("/health/ready", **JSON)
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_probe_takes_get_only(method):
    assert getattr(Client(enforce_csrf_checks=True), method)("/health/ready").status_code == 405


def test_status_answers_within_a_checks_budget_while_the_broker_stops_answering(
    settings, monkeypatch, request
):
    # A frozen Redis (SIGSTOP, a hung host) accepts connections and never answers. README: "a
    # check waits at most 5 s (the worker ping 1 s)"; the broker check used to hold /health for
    # two of the broker's socket timeouts (10 s by default), every probe a gunicorn thread.
    silent = request.getfixturevalue("silent_broker")
    settings.CELERY_BROKER_URL = silent
    monkeypatch.setattr(celery_app.conf, "broker_url", silent)
    monkeypatch.setattr(celery_app, "_pool", None)
    started = time.monotonic()
    status, checks = probe("/health")
    seconds = time.monotonic() - started
    assert status == 500
    assert checks["CeleryWorkers()"] == "Unavailable: the broker did not answer"
    assert seconds < 5
