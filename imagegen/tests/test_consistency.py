"""Storage and database agree: object first then row, no object without a committed row."""

from __future__ import annotations

import socket
import threading
import time

import kombu.exceptions
import pytest
from botocore.config import Config
from django.core.files.storage import default_storage
from django.db import DatabaseError, OperationalError, connection, transaction
from django.utils import timezone

from conftest import S3_BUCKET
from imagegen import imaging, services, tasks
from imagegen.exceptions import ImageSuperseded, ProjectGone
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST, post_image
from projects.models import Project
from projects.services import project_delete
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

SEED_KEY = "images/{project}/" + SEED_POST["uuid"] + ".jpg"


def bucket_keys(s3_client) -> set[str]:
    listing = s3_client.list_objects_v2(Bucket=S3_BUCKET, Prefix="images/")
    return {item["Key"] for item in listing.get("Contents", [])}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def storage_down_by_endpoint(settings):
    """S3 at a loopback port nobody listens on: every call is refused at once, for longer than
    a run waits for the storage to come back."""
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 0
    options = settings.STORAGES["default"]["OPTIONS"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **settings.STORAGES["default"],
            "OPTIONS": {
                **options,
                "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=1),
            },
        },
    }


@pytest.fixture
def storage_down_by_save(monkeypatch):
    def refuse(storage, name, content):
        raise OSError("storage is down")

    monkeypatch.setattr("config.storages.S3Storage._save", refuse)


@pytest.fixture(params=["closed-endpoint", "failing-save"])
def storage_down(request):
    fixture = (
        "storage_down_by_endpoint" if request.param == "closed-endpoint" else "storage_down_by_save"
    )
    request.getfixturevalue(fixture)
    return request.param


def test_storage_failure_is_a_503_and_the_row_says_failed(
    api, project, vendors, storage_down, s3_client
):
    vendors.recraft()

    response = post_image(api, project)

    assert response.status_code == 503
    body = response.json()
    assert (body["success"], body["code"]) == (False, "storage_unavailable")
    assert "could not be stored" in body["message"]
    row = GeneratedImage.objects.get()
    assert (row.status, row.error_code, row.s3_key) == ("failed", "storage_unavailable", "")
    assert row.attempts.get().outcome == "succeeded"  # the vendor's image was paid for
    assert bucket_keys(s3_client) & {SEED_KEY.format(project=project.id)} == set()


def test_retry_after_storage_recovers_generates(api, project, vendors, settings, s3_client):
    vendors.recraft()
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 0  # down for longer than the run waits
    healthy = settings.STORAGES
    settings.STORAGES = {
        **healthy,
        "default": {
            **healthy["default"],
            "OPTIONS": {
                **healthy["default"]["OPTIONS"],
                "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                "client_config": Config(retries={"max_attempts": 1}, connect_timeout=1),
            },
        },
    }
    assert post_image(api, project).status_code == 503
    settings.STORAGES = healthy

    response = post_image(api, project)

    assert response.status_code == 201
    assert response.json()["s3_key"] in bucket_keys(s3_client)
    assert GeneratedImage.objects.get().status == "succeeded"


def test_object_exists_before_the_succeeded_row_is_written(
    api, project, vendors, monkeypatch, any_storage
):
    vendors.recraft()
    seen: list[tuple[str, bool]] = []
    finish = services._finish

    def spy(image, **fields):
        if fields.get("status") == GeneratedImage.Status.SUCCEEDED:
            seen.append((fields["s3_key"], default_storage.exists(fields["s3_key"])))
        return finish(image, **fields)

    monkeypatch.setattr(services, "_finish", spy)

    post_image(api, project)

    assert seen == [(SEED_KEY.format(project=project.id), True)]


def test_row_that_fails_to_commit_takes_its_object_with_it(
    api, project, vendors, monkeypatch, any_storage
):
    vendors.recraft()
    finish = services._finish

    def fail_on_success(image, **fields):
        if fields.get("status") == GeneratedImage.Status.SUCCEEDED:
            raise DatabaseError("connection lost during commit")
        return finish(image, **fields)

    monkeypatch.setattr(services, "_finish", fail_on_success)

    response = post_image(api, project)

    assert response.status_code >= 500
    assert response.json()["success"] is False
    assert not default_storage.exists(SEED_KEY.format(project=project.id))
    row = GeneratedImage.objects.get()
    assert row.status == "failed"  # not left "running": a retry may generate at once
    assert row.s3_key == ""


def failing_to_record(monkeypatch, times: int) -> list[int]:
    """`_finish` of a success raises the database's "connection lost" `times` times."""
    finish, failures = services._finish, []

    def flaky(image, **fields):
        if fields.get("status") == GeneratedImage.Status.SUCCEEDED and len(failures) < times:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return finish(image, **fields)

    monkeypatch.setattr(services, "_finish", flaky)
    return failures


def test_a_stored_image_is_recorded_once_the_database_is_back(
    api, project, vendors, monkeypatch, no_sleep, s3_client
):
    vendors.recraft()
    failing_to_record(monkeypatch, times=3)

    response = post_image(api, project)

    assert response.status_code == 201, response.json()
    assert no_sleep == [0.5, 1.0, 2.0]
    row = GeneratedImage.objects.get()
    assert (row.status, row.s3_key) == ("succeeded", response.json()["s3_key"])
    assert row.attempts.count() == 1
    assert row.s3_key in bucket_keys(s3_client)


def test_a_commit_whose_answer_was_lost_is_reported_as_recorded(
    api, project, vendors, monkeypatch, no_sleep, s3_client
):
    vendors.recraft()
    finish, lost = services._finish, []

    def committed_then_connection_lost(image, **fields):
        recorded = finish(image, **fields)
        if fields.get("status") == GeneratedImage.Status.SUCCEEDED and not lost:
            lost.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return recorded

    monkeypatch.setattr(services, "_finish", committed_then_connection_lost)

    response = post_image(api, project)

    assert response.status_code == 201, response.json()
    row = GeneratedImage.objects.get()
    assert (row.status, row.attempts.count()) == ("succeeded", 1)
    assert response.json()["s3_key"] == row.s3_key
    assert row.s3_key in bucket_keys(s3_client)


def test_a_database_away_longer_than_the_retries_is_a_503_and_the_image_is_not_kept(
    api, project, vendors, monkeypatch, no_sleep, settings, s3_client
):
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 5
    vendors.recraft()
    failing_to_record(monkeypatch, times=100)

    response = post_image(api, project)

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert no_sleep == [0.5, 1.0, 2.0, 1.5]  # 5 s in all
    assert SEED_KEY.format(project=project.id) not in bucket_keys(s3_client)
    assert GeneratedImage.objects.get().status == "failed"


# ---------------------------------------------------------------------------------------------
# Deleting removes the objects, after the commit and only then.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def stored_image(project, s3_client):
    image = GeneratedImageFactory(project=project)
    s3_client.put_object(Bucket=S3_BUCKET, Key=image.s3_key, Body=b"jpeg")
    return image


def test_deleting_an_image_deletes_its_object_after_commit(
    api, stored_image, s3_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.delete(f"/image-gen/{stored_image.id}")
        assert stored_image.s3_key in bucket_keys(s3_client)  # not before the commit
    for callback in callbacks:
        callback()

    assert response.status_code == 204
    assert stored_image.s3_key not in bucket_keys(s3_client)
    assert not GeneratedImage.objects.exists()


def test_deleting_a_project_deletes_its_objects_and_no_others(
    api, user, project, s3_client, django_capture_on_commit_callbacks
):
    mine = GeneratedImageFactory.create_batch(3, project=project)
    unstored = GeneratedImageFactory(project=project, s3_key="", status="failed")
    neighbour = GeneratedImageFactory(project=ProjectFactory(owner=user))
    for image in [*mine, neighbour]:
        s3_client.put_object(Bucket=S3_BUCKET, Key=image.s3_key, Body=b"jpeg")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/projects/{project.id}")

    assert response.status_code == 204
    remaining = bucket_keys(s3_client)
    assert {image.s3_key for image in mine} & remaining == set()
    assert neighbour.s3_key in remaining
    assert list(GeneratedImage.objects.values_list("pk", flat=True)) == [neighbour.pk]
    assert not GeneratedImage.objects.filter(pk=unstored.pk).exists()


def test_failed_row_deletion_keeps_the_object(
    api, stored_image, s3_client, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise DatabaseError("database is read-only")

    monkeypatch.setattr(GeneratedImage, "delete", refuse)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.delete(f"/image-gen/{stored_image.id}")

    assert response.status_code == 500
    assert response.json()["success"] is False
    assert callbacks == []
    assert stored_image.s3_key in bucket_keys(s3_client)


def test_object_that_cannot_be_deleted_is_logged_and_the_row_still_goes(
    api, stored_image, s3_client, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def refuse(storage, name):
        raise OSError("storage is down")

    monkeypatch.setattr("storages.backends.s3.S3Storage.delete", refuse)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/image-gen/{stored_image.id}")

    assert response.status_code == 204
    assert not GeneratedImage.objects.exists()
    assert f"storage_delete_failed key={stored_image.s3_key}" in caplog.text


def test_with_a_broker_the_objects_are_deleted_by_tasks_not_by_the_request(
    api, project, s3_client, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "DELETE_KEYS_PER_TASK", 2)
    queued = []
    monkeypatch.setattr("imagegen.tasks.delete_objects.delay", queued.append)
    monkeypatch.setattr("storages.backends.s3.S3Storage.delete", pytest.fail)
    images = GeneratedImageFactory.create_batch(3, project=project)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/projects/{project.id}")

    assert response.status_code == 204
    assert [len(chunk) for chunk in queued] == [2, 1]
    assert {key for chunk in queued for key in chunk} == {image.s3_key for image in images}


def test_a_late_deletion_keeps_the_object_of_the_same_uuid_generated_again(
    api, project, vendors, s3_client, monkeypatch, django_capture_on_commit_callbacks
):
    vendors.recraft()
    vendors.recraft()
    first = post_image(api, project).json()
    queued = []
    monkeypatch.setattr("imagegen.tasks.delete_objects.delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/image-gen/{first['id']}")
    stored = []

    def run_the_deletion_once_stored(storage, name, content, *args, **kwargs):
        stored.append(original_save(storage, name, content, *args, **kwargs))
        # The queued task runs now: after the new object is written, before its row says so.
        for keys in queued:
            tasks.delete_objects(keys)
        return stored[-1]

    original_save = type(default_storage._wrapped).save
    monkeypatch.setattr(type(default_storage._wrapped), "save", run_the_deletion_once_stored)

    again = post_image(api, project)

    assert again.status_code == 201, again.json()
    assert again.json()["s3_key"] == first["s3_key"]
    assert first["s3_key"] in bucket_keys(s3_client)


def test_a_broker_outage_leaves_the_objects_to_reconcile(
    api, stored_image, s3_client, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def refuse(keys):
        raise kombu.exceptions.OperationalError("connection refused")

    monkeypatch.setattr("imagegen.tasks.delete_objects.delay", refuse)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/image-gen/{stored_image.id}")

    assert response.status_code == 204
    assert stored_image.s3_key in bucket_keys(s3_client)
    assert "delete_enqueue_failed left_to_reconcile=1" in caplog.text


def test_deleting_an_image_keeps_an_object_another_row_refers_to(
    api, project, s3_client, django_capture_on_commit_callbacks
):
    # Two rows on one object, as an earlier release let a key change and a generation leave
    # them (an image moved to a uuid's key, then that uuid generated).
    shared_key = f"images/{project.id}/later-segment.jpg"
    s3_client.put_object(Bucket=S3_BUCKET, Key=shared_key, Body=vendor_payloads.image_bytes("JPEG"))
    repointed = GeneratedImageFactory(project=project, s3_key=shared_key)
    GeneratedImageFactory(project=project, uuid="later-segment", s3_key=shared_key)

    with django_capture_on_commit_callbacks(execute=True):
        api.delete(f"/image-gen/{repointed.id}")

    assert shared_key in bucket_keys(s3_client)


# ---------------------------------------------------------------------------------------------
# A generation finishing late never overwrites what happened to its row meanwhile.
# ---------------------------------------------------------------------------------------------
def claim(project):
    return services.image_claim(
        user=project.owner,
        project=project,
        visual_prompt="A lighthouse at dusk",
        art_style="documentary photograph",
        uuid="segment-late",
    ).image


def test_a_project_deleted_before_the_claim_is_a_404_not_a_conflict(project):
    stale = Project.objects.get(pk=project.pk)
    project_delete(project=project)

    with pytest.raises(ProjectGone):
        claim(stale)
    with pytest.raises(ProjectGone):
        services.batch_create(
            user=stale.owner,
            project=stale,
            items=[services.BatchItem(visual_prompt="A fox", art_style="ink", uuid="s-1")],
        )

    assert not GeneratedImage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_project_deletion_waits_for_images_being_recorded_and_takes_them_too(project):
    recorded, release = threading.Event(), threading.Event()
    failures = []

    def record_an_image() -> None:
        try:
            with transaction.atomic():
                assert Project.objects.lock_for_images(project.pk)
                GeneratedImageFactory(project=project, uuid="in-flight")
                recorded.set()
                release.wait(10)
        except Exception as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)
        finally:
            connection.close()

    recorder = threading.Thread(target=record_an_image)
    recorder.start()
    assert recorded.wait(10)
    deleter = threading.Thread(target=lambda: (project_delete(project=project), connection.close()))
    deleter.start()
    deleter.join(0.5)
    waited = deleter.is_alive()
    release.set()
    recorder.join(10)
    deleter.join(10)

    assert waited, "the deletion must wait for the transaction recording an image"
    assert failures == []
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not GeneratedImage.objects.exists()


def test_image_deleted_while_generating_does_not_come_back(project, vendors, s3_client):
    vendors.recraft()
    image = claim(project)
    services.image_delete(image=GeneratedImage.objects.get(pk=image.pk))

    with pytest.raises(ImageSuperseded):
        services.image_run(image)

    assert not GeneratedImage.objects.filter(pk=image.pk).exists()
    assert f"images/{project.id}/segment-late.jpg" not in bucket_keys(s3_client)


def test_project_deleted_while_generating_is_a_conflict_not_a_crash(project, vendors, s3_client):
    vendors.recraft()
    image = claim(project)
    project.delete()

    with pytest.raises(ImageSuperseded):
        services.image_run(image)

    assert f"images/{image.project_id}/segment-late.jpg" not in bucket_keys(s3_client)


class StorageThat:
    """The storage, but `meanwhile` happens while the run's object is being put."""

    def __init__(self, meanwhile) -> None:
        self.meanwhile = meanwhile

    def __getattr__(self, name: str):
        return getattr(default_storage, name)

    def save(self, name, content):
        stored = default_storage.save(name, content)
        self.meanwhile()
        return stored


LATE_KEY = "images/{project.id}/segment-late.jpg"


def run_taken_over_while_storing(project, monkeypatch) -> GeneratedImage:
    """Claim and run an image whose row another run takes over while its object is put."""
    image = claim(project)
    retake = GeneratedImage.objects.filter(pk=image.pk).update
    monkeypatch.setattr(
        services, "default_storage", StorageThat(lambda: retake(started_at=timezone.now()))
    )
    with pytest.raises(ImageSuperseded):
        services.image_run(image)
    return image


def test_a_run_taken_over_after_its_lease_leaves_the_key_to_the_run_that_owns_the_row(
    project, vendors, s3_client, monkeypatch
):
    """The late run stores, then finds the row is another run's, which writes the same key and
    may have stored it already: deleting the object would leave that run's success without
    one."""
    vendors.recraft()

    image = run_taken_over_while_storing(project, monkeypatch)

    assert LATE_KEY.format(project=project) in bucket_keys(s3_client)
    assert GeneratedImage.objects.get(pk=image.pk).status == "running"


def test_a_run_whose_image_was_deleted_and_asked_for_again_leaves_the_key_to_the_new_one(
    project, vendors, s3_client, monkeypatch
):
    vendors.recraft()
    image = claim(project)
    asked_again = []

    def delete_and_ask_again() -> None:
        services.image_delete(image=GeneratedImage.objects.get(pk=image.pk))
        asked_again.append(claim(project))

    monkeypatch.setattr(services, "default_storage", StorageThat(delete_and_ask_again))

    with pytest.raises(ImageSuperseded):
        services.image_run(image)

    assert LATE_KEY.format(project=project) in bucket_keys(s3_client)
    assert GeneratedImage.objects.get().pk == asked_again[0].pk != image.pk


@pytest.mark.parametrize("delete", ["image", "project"])
def test_an_object_left_by_a_taken_over_run_goes_with_its_image_or_project(
    project, vendors, s3_client, monkeypatch, django_capture_on_commit_callbacks, delete
):
    """The run that took the row over failed and stored nothing: no row refers to the object
    the late run left, yet deleting the image or its project removes it."""
    vendors.recraft()
    image = run_taken_over_while_storing(project, monkeypatch)
    GeneratedImage.objects.filter(pk=image.pk).update(status="failed", s3_key="")
    left = LATE_KEY.format(project=project)
    assert left in bucket_keys(s3_client)

    with django_capture_on_commit_callbacks(execute=True):
        if delete == "image":
            services.image_delete(image=GeneratedImage.objects.get(pk=image.pk))
        else:
            project_delete(project=project)

    assert left not in bucket_keys(s3_client)


def test_edit_made_while_generating_survives_the_result(project, vendors):
    vendors.recraft()
    image = claim(project)
    services.image_update(
        image=GeneratedImage.objects.get(pk=image.pk), visual_prompt="An edited prompt"
    )

    services.image_run(image)

    row = GeneratedImage.objects.get(pk=image.pk)
    assert row.visual_prompt == "An edited prompt"
    assert row.status == "succeeded"
    assert row.attempts.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("background", "settled"), [(False, ("failed", "record_failed")), (True, ("pending", ""))]
)
def test_a_row_left_running_by_an_outage_is_settled_once_the_database_is_back(
    project, monkeypatch, no_sleep, background, settled
):
    image = GeneratedImageFactory(
        project=project,
        status="running",
        started_at=timezone.now(),
        s3_key="",
        background=background,
    )
    mark_ended, tries = services._mark_ended, []

    def database_away_twice(image, **fields):
        tries.append(1)
        if len(tries) <= 2:
            raise OperationalError("connection failed: the database system is starting up")
        return mark_ended(image, **fields)

    monkeypatch.setattr(services, "_mark_ended", database_away_twice)

    services._release(image, error_code="record_failed", message="Could not be recorded. Retry.")
    services._release(image, error_code="internal", message="Crashed.")  # the run's second try

    deadline = time.monotonic() + 10
    while GeneratedImage.objects.get(pk=image.pk).status == "running":
        assert time.monotonic() < deadline, "the row stayed running"
        time.sleep(0.05)
    row = GeneratedImage.objects.get(pk=image.pk)
    assert (row.status, row.error_code) == settled
    assert len(tries) == 3  # the release, then the thread's two tries; the second release waited
    assert image.id not in services._releasing_later


def test_a_late_run_does_not_overwrite_the_image_of_the_same_uuid_generated_again(
    project, vendors, s3_client, monkeypatch
):
    """An image deleted while it was generated, then asked for again and generated (a new row,
    succeeded) before the first run's vendor call ended: the first run must not put its picture
    over the object the new row describes."""
    late = vendor_payloads.image_bytes("WEBP", (64, 36), color="red")
    vendors.recraft(body=vendor_payloads.recraft_success(late))
    fresh = vendor_payloads.image_bytes("WEBP", (40, 40))
    vendors.recraft(body=vendor_payloads.recraft_success(fresh))
    image = claim(project)
    again, first = [], []

    def delete_and_generate_again() -> None:
        services.image_delete(image=GeneratedImage.objects.get(pk=image.pk))
        again.append(services.image_run(claim(project)))

    original = services.provider_attempt

    def first_call_ends_last(*args, **kwargs):
        answer = original(*args, **kwargs)
        if not first:  # the first run's vendor call ends once the second run has finished
            first.append(True)
            delete_and_generate_again()
        return answer

    monkeypatch.setattr(services, "provider_attempt", first_call_ends_last)

    with pytest.raises(ImageSuperseded):
        services.image_run(image)

    row = GeneratedImage.objects.get()
    assert row.pk == again[0].pk
    assert row.status == "succeeded"
    stored = s3_client.get_object(Bucket=S3_BUCKET, Key=row.s3_key)["Body"].read()
    assert imaging.jpeg_size(stored) == (row.width, row.height) == (40, 40)
    assert len(stored) == row.image_size_bytes
