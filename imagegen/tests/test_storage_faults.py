"""S3 faults between the service and a real S3 endpoint (moto), injected by a loopback proxy:
refused connections, error answers, a store that stops answering, a put whose answer is lost."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from botocore.config import Config
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.utils import timezone
from PIL import Image

from config.settings.base import storage_backend
from config.storages import S3Storage
from conftest import S3_BUCKET, _s3_storages
from imagegen import services
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_admin import messages_of, regenerate
from imagegen.tests.test_api import SEED_POST, post_image

pytestmark = pytest.mark.django_db

STORAGE_CHECK = "StorageAnswers(alias='default')"
ONE_TRY = Config(retries={"total_max_attempts": 1})
ERRORS = {
    "503": ("503 Slow Down", "SlowDown"),
    "500": ("500 Internal Server Error", "InternalError"),
    "403": ("403 Forbidden", "AccessDenied"),
    "404": ("404 Not Found", "NoSuchBucket"),
}


class S3FaultProxy:
    """HTTP/1.1 in front of moto, one request per connection. `mode`: pass, close (close at
    once), hang (read the request, answer nothing for `hang_seconds`, close), 503/500/403 (an
    S3 error document), lost_put (a PUT reaches moto, its answer is dropped)."""

    def __init__(self, upstream: str) -> None:
        self.upstream_port = int(upstream.rsplit(":", 1)[1])
        self.mode = "pass"
        self.hang_seconds = 10.0
        self.requests: list[tuple[str, str, str]] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._stop = True
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    @staticmethod
    def _read_request(sock: socket.socket) -> tuple[bytes, bytes] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head, body

    def _forward(self, head: bytes, body: bytes) -> bytes:
        lines = [
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
        ]
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as upstream:
            upstream.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        head, sep, rest = answer.partition(b"\r\n\r\n")
        kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        return b"\r\n".join([*kept, b"Connection: close"]) + sep + rest

    def _handle(self, client: socket.socket) -> None:
        with client:
            mode = self.mode
            if mode == "close":
                return
            request = self._read_request(client)
            if request is None:
                return
            head, body = request
            method, path = head.split(b" ")[:2]
            self.requests.append((mode, method.decode(), path.decode()))
            if mode == "hang":
                client.settimeout(self.hang_seconds)
                try:
                    while client.recv(65536):
                        pass
                except OSError:
                    pass
                return
            if mode in ERRORS:
                status, code = ERRORS[mode]
                document = (
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{code}</Message><RequestId>PROXY</RequestId></Error>"
                ).encode()
                client.sendall(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n"
                    f"Content-Length: {len(document)}\r\nConnection: close\r\n\r\n".encode()
                    + (document if method != b"HEAD" else b"")
                )
                return
            answer = self._forward(head, body)
            if mode == "lost_put" and method == b"PUT":
                return  # stored, but the client never hears so
            client.sendall(answer)


@pytest.fixture
def s3_proxy(settings, moto_endpoint: str) -> Iterator[S3FaultProxy]:
    """Storage through the fault proxy, with the production S3 client settings (timeouts,
    retries) of config/settings/base.py."""
    proxy = S3FaultProxy(moto_endpoint)
    storages = _s3_storages(proxy.endpoint)
    production = storage_backend(S3_BUCKET)["OPTIONS"]["client_config"]
    storages["default"]["OPTIONS"]["client_config"] = production
    settings.STORAGES = storages
    yield proxy
    proxy.close()


@pytest.fixture
def one_try(settings, s3_proxy: S3FaultProxy) -> S3FaultProxy:
    """The proxy, with the client trying each call once: what a test counts is the same, and
    it does not wait out the retries' backoff."""
    storages = {**settings.STORAGES}
    options = storages["default"]["OPTIONS"]
    storages["default"] = {
        **storages["default"],
        "OPTIONS": {**options, "client_config": options["client_config"].merge(ONE_TRY)},
    }
    settings.STORAGES = storages
    return s3_proxy


def stored_image(s3_client, **fields) -> GeneratedImage:
    """A succeeded row whose record describes the JPEG behind its key."""
    data = vendor_payloads.image_bytes("JPEG", (64, 36))
    image = GeneratedImageFactory(image_size_bytes=len(data), width=64, height=36, **fields)
    s3_client.put_object(Bucket=S3_BUCKET, Key=image.s3_key, Body=data)
    return image


def object_size(s3_client, key: str) -> tuple[int, tuple[int, int]]:
    data = s3_client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
    return len(data), Image.open(io.BytesIO(data)).size


# ---------------------------------------------------------------------------------------------
# PATCH s3_key reads the storage: an unavailable store is a 503, not a 500.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["close", "503", "403"])
def test_patch_s3_key_while_storage_fails_is_a_503(api, user, s3_proxy, s3_client, mode):
    image = stored_image(s3_client, project__owner=user)
    other = f"images/{image.project_id}/manual/other.jpg"
    s3_client.put_object(Bucket=S3_BUCKET, Key=other, Body=vendor_payloads.image_bytes("JPEG"))
    s3_proxy.mode = mode

    response = api.patch(f"/image-gen/{image.id}", {"s3_key": other}, format="json")

    assert response.status_code == 503, response.json()
    body = response.json()
    assert (body["success"], body["code"]) == (False, "storage_unavailable")
    image.refresh_from_db()
    assert image.s3_key != other


def test_patch_s3_key_with_the_bucket_gone_is_a_503_not_a_missing_object(
    api, user, s3_client, settings, moto_endpoint
):
    # S3 answers a missing bucket with the 404 of a missing key: that was a 400 telling the
    # caller their key had no object.
    image = stored_image(s3_client, project__owner=user)
    storages = _s3_storages(moto_endpoint)
    storages["default"]["OPTIONS"]["bucket_name"] = "no-such-bucket"
    settings.STORAGES = storages

    response = api.patch(
        f"/image-gen/{image.id}",
        {"s3_key": f"images/{image.project_id}/manual/other.jpg"},
        format="json",
    )

    assert response.status_code == 503, response.json()
    body = response.json()
    assert body["code"] == "storage_unavailable"
    assert body["message"].startswith("The storage could not be read"), body


@pytest.mark.django_db(transaction=True)
def test_patch_s3_key_holds_no_database_connection_while_it_reads_the_storage(
    api, user, s3_client, monkeypatch
):
    # The reads can take minutes while S3 does not answer (four tries of 30 s each): a
    # connection held through them was one of the pool's 16, and 16 such PATCHes made every
    # other request of the process a 503 database_unavailable.
    image = stored_image(s3_client, project__owner=user)
    other = f"images/{image.project_id}/manual/other.jpg"
    s3_client.put_object(Bucket=S3_BUCKET, Key=other, Body=vendor_payloads.image_bytes("JPEG"))
    held: list[bool] = []
    exists = S3Storage.exists

    def spy(storage, name: str) -> bool:
        held.append(connection.connection is not None)
        return exists(storage, name)

    monkeypatch.setattr(S3Storage, "exists", spy)

    response = api.patch(f"/image-gen/{image.id}", {"s3_key": other}, format="json")

    assert response.status_code == 200, response.json()
    assert held == [False]


# ---------------------------------------------------------------------------------------------
# GET /health: the storage check is bounded in time and sees a bucket that is gone.
# ---------------------------------------------------------------------------------------------
def health() -> tuple[int, dict, float]:
    started = time.monotonic()
    response = Client().get("/health", HTTP_ACCEPT="application/json")
    return response.status_code, json.loads(response.content), time.monotonic() - started


def test_health_answers_within_seconds_while_storage_stops_answering(s3_proxy):
    s3_proxy.mode = "hang"

    status, checks, elapsed = health()

    assert status == 500
    assert checks[STORAGE_CHECK] != "OK"
    # README: "Give a probe a timeout of a few seconds: a check waits at most 5 s".
    assert elapsed < 8, f"/health took {elapsed:.1f} s"


def test_health_reports_a_bucket_that_does_not_exist(settings, moto_endpoint):
    storages = _s3_storages(moto_endpoint)
    storages["default"]["OPTIONS"]["bucket_name"] = "no-such-bucket"
    settings.STORAGES = storages

    status, checks, _ = health()

    assert status == 500
    assert checks[STORAGE_CHECK] != "OK"


# ---------------------------------------------------------------------------------------------
# A put that reached S3 but whose answer was lost.
# ---------------------------------------------------------------------------------------------
def test_put_whose_answer_is_lost_is_recorded_not_paid_again(
    api, project, vendors, one_try, s3_client
):
    vendors.recraft()
    one_try.mode = "lost_put"

    response = post_image(api, project)

    one_try.mode = "pass"
    key = f"images/{project.id}/{SEED_POST['uuid']}.jpg"
    row = GeneratedImage.objects.get()
    # The object is there: either the row records it, or nothing was stored.
    stored = s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix=key).get("KeyCount", 0)
    assert (row.status, row.s3_key) == ("succeeded", key) or stored == 0
    assert response.status_code == 201, response.json()
    assert row.attempts.count() == 1
    assert (row.image_size_bytes, (row.width, row.height)) == object_size(s3_client, key)


def test_failed_regeneration_keeps_the_previous_image_when_the_put_answer_is_lost(
    user, vendors, no_sleep, one_try, s3_client
):
    image = stored_image(s3_client, project__owner=user)
    before = object_size(s3_client, image.s3_key)
    regenerated = vendor_payloads.image_bytes("WEBP", (512, 288))
    vendors.recraft(body=vendor_payloads.recraft_success(regenerated))
    one_try.mode = "lost_put"

    with contextlib.suppress(Exception):  # what the admin action catches and reports
        services.image_regenerate(image=image)

    one_try.mode = "pass"
    image.refresh_from_db()
    assert image.status == "succeeded"
    # The row describes the object behind its key: the old one kept, or the new one recorded.
    assert (image.image_size_bytes, (image.width, image.height)) == object_size(
        s3_client, image.s3_key
    ), f"row says {image.image_size_bytes} bytes {image.width}x{image.height}, before {before}"


# ---------------------------------------------------------------------------------------------
# A store that fails for a while: the paid image is stored once it is back, not paid again.
# ---------------------------------------------------------------------------------------------
def test_a_paid_image_is_stored_once_the_storage_answers_again(
    api, project, vendors, one_try, s3_client, monkeypatch
):
    vendors.recraft()
    one_try.mode = "close"  # every connection dropped: the storage is away
    waits: list[float] = []

    def storage_back_after_two_waits(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            one_try.mode = "pass"

    monkeypatch.setattr(services, "sleep", storage_back_after_two_waits)

    response = post_image(api, project)

    assert response.status_code == 201, response.json()
    assert waits == [0.5, 1.0]
    row = GeneratedImage.objects.get()
    assert (row.status, row.attempts.count()) == ("succeeded", 1)
    assert (row.image_size_bytes, (row.width, row.height)) == object_size(s3_client, row.s3_key)


def test_a_run_taken_over_while_it_waits_for_the_storage_does_not_write_over_the_new_run(
    api, project, vendors, one_try, s3_client, settings, monkeypatch
):
    # The first run's image A (512x288); the run that takes the row over stores B (640x480).
    for size in ((512, 288), (640, 480)):
        png = vendor_payloads.image_bytes("PNG", size)
        vendors.recraft(body=vendor_payloads.recraft_success(png))
    one_try.mode = "close"  # S3 away: the first run waits for it
    waits: list[float] = []

    def taken_over_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            return
        # Its lease runs out while it waits: the sweep queues the row again, and a worker
        # generates and records it once S3 is back.
        one_try.mode = "pass"
        row = GeneratedImage.objects.get()
        expired = timezone.now() - timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE + 1)
        GeneratedImage.objects.filter(pk=row.pk).update(started_at=expired)
        assert services.images_sweep_stale().requeued == [row.pk]
        assert services.image_run_task(image_id=row.pk).status == "succeeded"

    monkeypatch.setattr(services, "sleep", taken_over_meanwhile)

    response = post_image(api, project)

    assert response.status_code == 409, response.json()
    row = GeneratedImage.objects.get()
    assert (row.status, row.width, row.height) == ("succeeded", 640, 480)
    assert (row.image_size_bytes, (row.width, row.height)) == object_size(s3_client, row.s3_key)


def test_a_storage_try_that_could_not_end_within_the_budget_is_not_started(
    api, project, vendors, settings, s3_proxy, no_sleep
):
    # Each try of an S3 that does not answer lasts the client's timeouts (two minutes with the
    # production client): a try started just inside the budget ran that long past it.
    storages = {**settings.STORAGES}
    options = storages["default"]["OPTIONS"]
    bounded = Config(read_timeout=1, retries={"total_max_attempts": 1})
    storages["default"] = {
        **storages["default"],
        "OPTIONS": {**options, "client_config": options["client_config"].merge(bounded)},
    }
    settings.STORAGES = storages
    # A try lasts about 4 s here (the 1 s read timeout, then the 3 s check for a lost answer).
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 6
    vendors.recraft()
    s3_proxy.mode = "hang"

    response = post_image(api, project)

    assert response.status_code == 503, response.json()
    assert no_sleep == []
    puts = [path for _, method, path in s3_proxy.requests if method == "PUT"]
    assert len(puts) == 1, s3_proxy.requests


def test_admin_regeneration_stops_at_the_first_image_the_storage_fails(
    admin_client, user, vendors, one_try, s3_client, settings
):
    # Each further image would pay its vendor, then wait out the storage's retries: ten of them
    # outlived the server's timeout.
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 0
    first = stored_image(s3_client, project__owner=user)
    others = [stored_image(s3_client, project=first.project) for _ in range(2)]
    vendors.recraft()
    one_try.mode = "close"

    response = regenerate(admin_client, [first, *others])

    assert vendors.calls("recraft") == 1
    failed, skipped = messages_of(response)
    assert failed.startswith("1 image(s) failed to regenerate: ")
    assert skipped.startswith("Not attempted, as the storage is unavailable (2): ")


@pytest.mark.parametrize("mode", ["403", "404"])
def test_a_storage_that_refuses_the_put_is_not_tried_again(
    api, project, vendors, one_try, settings, no_sleep, mode
):
    # Credentials or a bucket that are wrong stay wrong: the caller hears it at once.
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 30
    vendors.recraft()
    one_try.mode = mode

    response = post_image(api, project)

    assert response.status_code == 503, response.json()
    assert response.json()["code"] == "storage_unavailable"
    assert no_sleep == []
    puts = [path for _, method, path in one_try.requests if method == "PUT"]
    assert len(puts) == 1, one_try.requests


# ---------------------------------------------------------------------------------------------
# A deletion that lands late, after the same uuid was generated again into its key.
# ---------------------------------------------------------------------------------------------
def _object_exists(s3_client, key: str) -> bool:
    return s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix=key).get("KeyCount", 0) == 1


def test_an_image_generated_while_its_key_was_being_deleted_is_not_left_succeeded_without_object(
    s3_client, project, monkeypatch
):
    old = stored_image(s3_client, project=project, uuid="seg-07")
    key = old.s3_key
    old.delete()  # DELETE /image-gen/<id>: the row goes, the object's deletion is queued
    real_delete = default_storage.delete
    regenerated = []

    def slow_delete(name: str) -> None:
        # While S3 hung and botocore retried the DELETE (5-30 s per try), the same uuid was
        # POSTed again, generated (0.2-1 s), stored at the same key and recorded succeeded.
        regenerated.append(stored_image(s3_client, project=project, uuid="seg-07"))
        real_delete(name)  # the retried DELETE lands now

    class SlowDeletes:
        def __getattr__(self, name):
            return slow_delete if name == "delete" else getattr(default_storage, name)

    monkeypatch.setattr(services, "default_storage", SlowDeletes())

    services.objects_delete(keys=[key])

    new = GeneratedImage.objects.get(pk=regenerated[0].pk)
    if new.status == GeneratedImage.Status.SUCCEEDED:
        assert _object_exists(s3_client, new.s3_key), "a succeeded row refers to a deleted object"
    else:  # the deletion noticed and let the row go: the same request generates again
        assert new.status == GeneratedImage.Status.FAILED
        assert new.error_code == "object_missing"
        assert new.s3_key == ""


# ---------------------------------------------------------------------------------------------
# Deleting objects in the background: a store that fails is not tried once per key.
# ---------------------------------------------------------------------------------------------
def test_object_deletion_stops_at_the_first_key_the_storage_fails(one_try, s3_client):
    keys = [f"images/p1/seg-{index}.jpg" for index in range(3)]
    for key in keys:
        s3_client.put_object(Bucket=S3_BUCKET, Key=key, Body=b"jpeg")
    one_try.mode = "503"

    services.objects_delete(keys=keys)

    # Frozen S3 measured 120 s per key (30 s read timeout x 4 tries): one key's tries only.
    deletes = [path for mode, method, path in one_try.requests if method == "DELETE"]
    assert {path.rsplit("/", 1)[1] for path in deletes} == {"seg-0.jpg"}, deletes
