"""Concurrent identical requests against a real server: one vendor call, one object, one row."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from conftest import S3_BUCKET
from imagegen import services
from imagegen.exceptions import GenerationInProgress, ImageConflict, ProjectGone, TooManyInFlight
from imagegen.models import BatchMembership, GeneratedImage, GenerationAttempt, ImageBatch
from imagegen.services import REPLAY_MESSAGE
from imagegen.testing import vendor_payloads
from imagegen.testing.fake_vendors import FakeVendorServer
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST
from projects.services import project_delete
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

PARALLEL_REQUESTS = 8
VENDOR_LATENCY = 0.5
# TLS ends at a proxy in production, which says so in this header.
BEHIND_TLS_PROXY = {"X-Forwarded-Proto": "https"}
SERVER_SECRET_KEY = "concurrency-test-" + "Zq8vL3mW" * 6


def test_database_refuses_a_second_row_for_the_same_project_and_uuid(project):
    GeneratedImageFactory(project=project, uuid="segment-1")

    with pytest.raises(IntegrityError):
        GeneratedImageFactory(project=project, uuid="segment-1")


@pytest.mark.django_db(transaction=True)
def test_in_flight_cap_holds_under_concurrent_claims(project, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    start = threading.Barrier(PARALLEL_REQUESTS)
    outcomes: list[str] = []

    def claim(number: int) -> None:
        start.wait()
        try:
            services.image_claim(
                user=project.owner,
                project=project,
                visual_prompt=SEED_POST["visual_prompt"],
                art_style=SEED_POST["art_style"],
                uuid=f"segment-{number}",
            )
            outcomes.append("claimed")
        except TooManyInFlight:
            outcomes.append("refused")
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(PARALLEL_REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["claimed"] * 2 + ["refused"] * (PARALLEL_REQUESTS - 2)
    assert GeneratedImage.objects.filter(status="running").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_request_and_a_storyboard_for_the_same_new_uuid_do_not_deadlock(project, monkeypatch):
    # The storyboard has inserted the uuid's row and is about to count its owner's queue; the
    # request (which has found no row yet) asks for the owner's lock meanwhile.
    inserted = threading.Event()
    count_queue = services._check_queued

    def after_inserting(*args, **kwargs):
        inserted.set()
        time.sleep(0.5)
        return count_queue(*args, **kwargs)

    monkeypatch.setattr(services, "_check_queued", after_inserting)
    fields = {"visual_prompt": SEED_POST["visual_prompt"], "art_style": SEED_POST["art_style"]}
    failures: list[BaseException] = []

    def storyboard() -> None:
        try:
            services.batch_create(
                user=project.owner,
                project=project,
                items=[services.BatchItem(uuid="segment-1", **fields)],
            )
        except BaseException as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)
        finally:
            connection.close()

    def request() -> None:
        inserted.wait(timeout=10)
        try:
            services.image_claim(user=project.owner, project=project, uuid="segment-1", **fields)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=storyboard), threading.Thread(target=request)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [type(failure) for failure in failures] == [GenerationInProgress]
    assert GeneratedImage.objects.filter(uuid="segment-1").count() == 1


def run_together(*targets) -> list[BaseException]:
    """Run each callable in its own thread (with its own connection); what they raised."""
    failures: list[BaseException] = []

    def run(target) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001  (reported to the test)
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.django_db(transaction=True)
def test_regenerating_while_the_owner_is_deleted_waits_and_finds_no_project(monkeypatch):
    from django.contrib import admin

    from accounts.admin import ImagegenUserAdmin
    from accounts.models import User
    from projects import services as project_services

    owner = UserFactory()
    ProjectFactory(owner=owner)
    first = ProjectFactory(owner=owner)  # the newest: deleted first
    image = GeneratedImageFactory(project=first, status="failed", s3_key="")
    deleted_first = threading.Event()
    delete_project = project_services.project_delete

    def pausing_after_the_first(*, project) -> None:
        delete_project(project=project)
        if project.pk == first.pk:
            deleted_first.set()
            time.sleep(0.5)  # the regeneration starts meanwhile

    monkeypatch.setattr(project_services, "project_delete", pausing_after_the_first)

    def regenerate() -> None:
        deleted_first.wait(timeout=10)
        services.image_regenerate(image=image)

    failures = run_together(
        lambda: ImagegenUserAdmin(User, admin.site).delete_model(None, owner), regenerate
    )

    assert [type(failure) for failure in failures] == [ProjectGone]
    assert not User.objects.filter(pk=owner.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_row_referring_to_the_owner_commits_while_a_claim_waits(project):
    # An admin edit locks the image, then writes a row that refers to its user (its LogEntry):
    # the foreign key is checked at commit, while a request for the same uuid holds the
    # owner's lock and waits for the image.
    image = GeneratedImageFactory(project=project, uuid="segment-1", status="failed", s3_key="")
    locked = threading.Event()

    def edit() -> None:
        with transaction.atomic():
            GeneratedImage.objects.select_for_update().get(pk=image.pk)
            locked.set()
            time.sleep(0.5)  # the request takes the owner's lock meanwhile
            ImageBatch.objects.create(user=project.owner, project=project)

    def request() -> None:
        locked.wait(timeout=10)
        services.image_claim(
            user=project.owner,
            project=project,
            uuid="segment-1",
            visual_prompt=image.visual_prompt,
            art_style=image.art_style,
            aspect_ratio=image.aspect_ratio,
        )

    assert run_together(edit, request) == []
    assert GeneratedImage.objects.get(pk=image.pk).status == "running"


@pytest.mark.django_db(transaction=True)
def test_a_patch_reading_a_slow_store_holds_up_none_of_the_owners_requests(
    project, monkeypatch, s3_storage
):
    image = GeneratedImageFactory(project=project, uuid="segment-1", status="succeeded")
    key = f"images/{project.id}/replacement.jpg"
    default_storage.save(key, ContentFile(vendor_payloads.image_bytes("JPEG")))
    reading = threading.Event()
    backend = type(storages["default"])
    exists = backend.exists

    def slow_exists(storage, name):
        reading.set()
        time.sleep(1.0)
        return exists(storage, name)

    monkeypatch.setattr(backend, "exists", slow_exists)
    waited: list[float] = []

    def claim(uuid: str) -> None:
        reading.wait(timeout=10)
        time.sleep(0.1)
        started = time.monotonic()
        with contextlib.suppress(GenerationInProgress, ImageConflict):
            services.image_claim(
                user=project.owner,
                project=project,
                uuid=uuid,
                visual_prompt="A different prompt",
                art_style="ink",
            )
        waited.append(time.monotonic() - started)

    failures = run_together(
        lambda: services.image_update(image=image, s3_key=key),
        lambda: claim("segment-1"),
        lambda: claim("segment-2"),
    )

    assert failures == []
    assert max(waited) < 0.5, waited


@contextlib.contextmanager
def pausing_after(marker: str, reached: threading.Event, seconds: float = 0.6):
    """In this thread, pause `seconds` after the first SQL statement containing `marker`."""

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if marker in sql and not reached.is_set():
            reached.set()
            time.sleep(seconds)
        return result

    with connection.execute_wrapper(wrapper):
        yield


def stored_in_a_batch(project) -> GeneratedImage:
    """A generated image with an attempt, that a storyboard counts among its items."""
    image = GeneratedImageFactory(project=project, status="succeeded")
    image.attempts.create(provider="recraft-ai", outcome="succeeded", latency_ms=1)
    batch = ImageBatch.objects.create(user=project.owner, project=project)
    BatchMembership.objects.create(batch=batch, image=image, position=0)
    return image


@pytest.mark.django_db(transaction=True)
def test_an_image_and_its_project_deleted_at_once_do_not_deadlock(project):
    image = stored_in_a_batch(project)
    reached = threading.Event()

    def delete_image() -> None:
        with pausing_after('DELETE FROM "imagegen_generationattempt"', reached):
            services.image_delete(image=image)

    def delete_project() -> None:
        reached.wait(timeout=10)
        project_delete(project=project)

    assert run_together(delete_image, delete_project) == []
    assert not GeneratedImage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_project_deleted_while_a_run_records_its_result_takes_the_result_too(project):
    image = GeneratedImageFactory(
        project=project, status="running", s3_key="", started_at=timezone.now()
    )
    reached = threading.Event()
    attempt = services.AttemptRecord(
        provider="recraft-ai", provider_model="recraftv4_1", outcome="succeeded", latency_ms=1
    )

    def finish() -> None:
        with pausing_after('INSERT INTO "imagegen_generationattempt"', reached):
            services._finish(image, attempts=[attempt], status="succeeded")

    def delete_project() -> None:
        reached.wait(timeout=10)
        project_delete(project=project)

    assert run_together(finish, delete_project) == []
    assert not GeneratedImage.objects.exists()
    assert not GenerationAttempt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_image_deleted_while_a_storyboard_replays_it_leaves_no_dangling_item(project):
    image = stored_in_a_batch(project)
    reached = threading.Event()
    item = services.BatchItem(
        visual_prompt=image.visual_prompt,
        art_style=image.art_style,
        uuid=image.uuid,
        aspect_ratio=image.aspect_ratio,
    )

    def replay() -> None:
        with pausing_after('INSERT INTO "imagegen_batchmembership"', reached):
            services.batch_create(user=project.owner, project=project, items=[item])

    def delete_image() -> None:
        reached.wait(timeout=10)
        services.image_delete(image=image)

    assert run_together(replay, delete_image) == []
    assert not GeneratedImage.objects.exists()
    assert not BatchMembership.objects.exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            requests.get(url, headers=BEHIND_TLS_PROXY, allow_redirects=False, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer at {url} within {timeout} s")


@pytest.fixture
def fake_vendors() -> Iterator[FakeVendorServer]:
    with FakeVendorServer(latency=VENDOR_LATENCY) as server:
        yield server


@contextlib.contextmanager
def gunicorn_server(
    fake_vendors,
    moto_endpoint,
    tmp_path: Path,
    *,
    workers: int = 2,
    threads: int = PARALLEL_REQUESTS,
    **extra_environment: str,
) -> Iterator[str]:
    """gunicorn with the repo's gunicorn.conf.py and production settings: worker processes of
    threads, the test database, S3 on moto and the vendors on the loopback fake."""
    port = free_port()
    database = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": SERVER_SECRET_KEY,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "RECRAFT_API_KEY": "rk-fake",
        "RECRAFT_API_URL": fake_vendors.recraft_url,
        "GEMINI_API_KEY": "gk-fake",
        "GEMINI_API_URL": fake_vendors.gemini_url,
        "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
        "AWS_S3_ENDPOINT_URL": moto_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "MEDIA_ROOT": str(tmp_path),
        **extra_environment,
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--config",
        "gunicorn.conf.py",  # the repo's, worker warm-up included; the flags below override it
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        "30",
        "--no-control-socket",  # its default path is shared by every gunicorn on the machine
    ]
    process = subprocess.Popen(  # noqa: S603  (gunicorn from this virtualenv)
        command,
        env=environment,
        cwd=django_settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(f"{url}/image-gen", process)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        _, errors = process.communicate(timeout=15)
        if process.returncode not in (0, -signal.SIGINT):
            print(errors.decode(errors="replace"))  # noqa: T201  (shown when the test fails)


@pytest.fixture
def server(transactional_db, fake_vendors, moto_endpoint, tmp_path: Path) -> Iterator[str]:
    """gunicorn with the repo's gunicorn.conf.py and production settings: two worker processes,
    threads, the test database, S3 on moto and the vendors on the loopback fake."""
    with gunicorn_server(fake_vendors, moto_endpoint, tmp_path) as url:
        yield url


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_identical_concurrent_posts_generate_once(server, fake_vendors, project, s3_client):
    session = requests.Session()
    # The server's own secret signs the token (the test database hashes passwords its own way).
    access = jwt.encode(
        AccessToken.for_user(project.owner).payload, SERVER_SECRET_KEY, algorithm="HS256"
    )
    session.headers.update({**BEHIND_TLS_PROXY, "Authorization": f"Bearer {access}"})
    body = {**SEED_POST, "projectId": project.id}
    start = threading.Barrier(PARALLEL_REQUESTS)
    answers: list[requests.Response] = []

    def post() -> None:
        start.wait()
        answers.append(session.post(f"{server}/image-gen", json=body, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(PARALLEL_REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replay = session.post(f"{server}/image-gen", json=body, timeout=30)
    session.close()

    created = [answer for answer in answers if answer.status_code == 201]
    assert len(created) == 1, [(answer.status_code, answer.text) for answer in answers]
    key = created[0].json()["s3_key"]
    for answer in answers:
        if answer is created[0]:
            continue
        outcome = (answer.status_code, answer.json()["success"])
        if answer.status_code == 200:
            assert (answer.json()["s3_key"], answer.json()["message"]) == (key, REPLAY_MESSAGE)
        else:
            assert outcome == (409, False), answer.text
            assert answer.json()["code"] == "in_progress"
            assert answer.headers["Retry-After"] == "5"
    assert fake_vendors.calls("recraft") + fake_vendors.calls("gemini") == 1
    listing = s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix=f"images/{project.id}/")
    assert [item["Key"] for item in listing["Contents"]] == [key]
    row = GeneratedImage.objects.get(project=project)
    assert (row.status, row.s3_key) == ("succeeded", key)
    assert replay.status_code == 200
    assert (replay.json()["s3_key"], replay.json()["message"]) == (key, REPLAY_MESSAGE)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_client_sending_its_body_slowly_holds_no_database_connection(
    fake_vendors, moto_endpoint, project, tmp_path
):
    # One worker whose pool has two connections: two clients that send their headers and the
    # start of a body, then stall (a slow upload, a Content-Length that promises more than
    # comes), must not take the database away from every other request of the process.
    access = jwt.encode(
        AccessToken.for_user(project.owner).payload, SERVER_SECRET_KEY, algorithm="HS256"
    )
    body = json.dumps({**SEED_POST, "projectId": project.id}).encode()
    head = (
        f"POST /image-gen HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
        f"Authorization: Bearer {access}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with gunicorn_server(
        fake_vendors,
        moto_endpoint,
        tmp_path,
        workers=1,
        threads=8,
        DATABASE_POOL_MIN_SIZE="1",
        DATABASE_POOL_MAX_SIZE="2",
        DATABASE_POOL_TIMEOUT="3",
    ) as url:
        port = int(url.rsplit(":", 1)[1])
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            for client in stalled:
                client.sendall(head + body[:10])
            time.sleep(1)  # their threads have authenticated them and wait for the body
            started = time.monotonic()
            answer = requests.get(
                f"{url}/image-gen",
                headers={**BEHIND_TLS_PROXY, "Authorization": f"Bearer {access}"},
                timeout=30,
            )
            took = time.monotonic() - started
        finally:
            for client in stalled:
                client.close()

    assert answer.status_code == 200, answer.text
    assert took < 2, took
