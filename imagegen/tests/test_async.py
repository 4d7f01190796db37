"""Background generation in eager mode: `Prefer: respond-async`, the task, retries, the sweep."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imagegen import services, tasks
from imagegen.exceptions import ImageSuperseded
from imagegen.models import GeneratedImage
from imagegen.providers.base import GenerationResult
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST

pytestmark = pytest.mark.django_db

PREFER_ASYNC = {"HTTP_PREFER": "respond-async"}


def post_image(api, project, *, headers=None, **overrides):
    body = {**SEED_POST, "projectId": project.id, **overrides}
    return api.post("/image-gen", body, format="json", **(headers or {}))


@pytest.fixture
def pending(project):
    return GeneratedImageFactory(
        project=project,
        status="pending",
        s3_key="",
        image_size_bytes=None,
        model="",
        provider_model="",
        message="",
    )


def all_providers_fail(vendors) -> None:
    vendors.recraft(503, b"upstream overloaded")
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE", "The model is overloaded"))


# ---------------------------------------------------------------------------------------------
# POST /image-gen with Prefer: respond-async
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prefer", ["respond-async", "respond-async, wait=10", "return=minimal; x=1, Respond-Async"]
)
def test_prefer_respond_async_answers_202_with_the_pending_record(
    api, project, vendors, prefer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = post_image(api, project, headers={"HTTP_PREFER": prefer})

    assert response.status_code == 202, response.json()
    assert response["Preference-Applied"] == "respond-async"
    body = response.json()
    assert (body["status"], body["success"], body["s3_key"]) == ("pending", False, "")
    assert body["image_size_bytes"] is None
    assert body["message"] == services.QUEUED_MESSAGE
    assert response["Location"].endswith(f"/image-gen/{body['id']}")
    assert len(queued) == 1
    assert len(vendors.mock.calls) == 0


def test_async_request_is_generated_after_commit_and_readable_by_its_location(
    api, project, vendors, django_capture_on_commit_callbacks
):
    vendors.recraft()

    with django_capture_on_commit_callbacks(execute=True):
        accepted = post_image(api, project, headers=PREFER_ASYNC)
    done = api.get(accepted["Location"])

    assert done.status_code == 200
    assert (done.json()["status"], done.json()["success"]) == ("succeeded", True)
    assert done.json()["s3Key"] == f"images/{project.id}/{SEED_POST['uuid']}.jpg"


def test_async_request_for_a_generated_uuid_replays_at_once(api, project, vendors):
    vendors.recraft()
    post_image(api, project)

    replay = post_image(api, project, headers=PREFER_ASYNC)

    assert replay.status_code == 200
    assert replay.json()["status"] == "succeeded"
    assert "Preference-Applied" not in replay
    assert vendors.calls("recraft") == 1


def test_without_prefer_the_post_waits_for_the_image(api, project, vendors):
    vendors.recraft()

    response = post_image(api, project, headers={"HTTP_PREFER": "return=minimal"})

    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"


def test_bad_async_request_is_a_400_and_queues_nothing(
    api, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        response = post_image(api, project, visual_prompt="", headers=PREFER_ASYNC)

    assert response.status_code == 400
    assert queued == []
    assert not GeneratedImage.objects.exists()


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------
def test_a_task_delivered_twice_generates_once(pending, vendors):
    vendors.recraft()

    first = tasks.generate_image.delay(pending.id).get()
    second = tasks.generate_image.delay(pending.id).get()

    assert (first, second) == ("succeeded", "skipped")
    assert vendors.calls("recraft") == 1
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert pending.attempts.count() == 1


def test_a_queued_image_edited_before_its_turn_is_routed_and_made_from_the_edit(
    api, project, vendors, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        accepted = post_image(api, project, headers=PREFER_ASYNC, model="auto")
    assert accepted.json()["routing"]["category"] == "realistic"
    edit = {"visual_prompt": "A title card with the words 'CHAPTER ONE' in bold letters"}
    vendors.gemini()

    edited = api.patch(f"/image-gen/{accepted.json()['id']}", edit, format="json")
    for callback in queued:
        callback()

    assert edited.json()["image"]["routing"]["category"] == "text"
    image = GeneratedImage.objects.get()
    assert (image.status, image.model) == ("succeeded", "google-imagen")
    assert vendors.calls("gemini") == 1
    assert "CHAPTER ONE" in vendors.mock.calls[0].request.body.decode()


def test_a_task_for_a_running_image_does_nothing(pending, vendors):
    GeneratedImage.objects.filter(pk=pending.pk).update(status="running")

    assert tasks.generate_image.delay(pending.id).get() == "skipped"
    assert len(vendors.mock.calls) == 0


def test_a_task_for_a_deleted_image_does_nothing(pending, vendors):
    pending.delete()

    assert tasks.generate_image.delay(pending.id).get() == "skipped"
    assert len(vendors.mock.calls) == 0


def test_the_task_flips_pending_to_running_before_calling_a_vendor(pending, monkeypatch, settings):
    settings.IMAGEGEN_TASK_RETRIES = 0
    seen = []

    def observe(request, order, **kwargs):
        seen.append(GeneratedImage.objects.get(pk=pending.pk).status)
        raise services.ProvidersExhausted([], [])

    monkeypatch.setattr(services, "call_providers", observe)

    tasks.generate_image.delay(pending.id).get()

    assert seen == ["running"]


def test_provider_faults_put_the_image_back_to_pending_and_retry_it(
    pending, vendors, no_sleep, settings, monkeypatch
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    settings.IMAGEGEN_TASK_RETRIES = 2
    statuses = []
    requeue = services.image_requeue

    def spy(**kwargs):
        requeued = requeue(**kwargs)
        statuses.append(GeneratedImage.objects.get(pk=pending.pk).status)
        return requeued

    monkeypatch.setattr(services, "image_requeue", spy)
    all_providers_fail(vendors)
    vendors.recraft()  # the second run succeeds

    assert tasks.generate_image.delay(pending.id).get() == "succeeded"

    assert statuses == ["pending"]
    pending.refresh_from_db()
    assert (pending.status, pending.error_code) == ("succeeded", "")
    assert vendors.calls("recraft") == 2
    assert list(pending.attempts.values_list("outcome", flat=True)) == [
        "unavailable",
        "unavailable",
        "succeeded",
    ]


def test_retries_stop_after_the_configured_count_and_the_image_stays_failed(
    pending, vendors, no_sleep, settings
):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    settings.IMAGEGEN_TASK_RETRIES = 2
    settings.IMAGEGEN_BREAKER_THRESHOLD = 100
    all_providers_fail(vendors)

    assert tasks.generate_image.delay(pending.id).get() == "failed"

    pending.refresh_from_db()
    assert (pending.status, pending.error_code) == ("failed", "providers_failed")
    assert vendors.calls("recraft") == 3  # the run and two retries
    assert pending.finished_at is not None


def test_retry_delay_doubles_each_time(pending, vendors, no_sleep, settings, monkeypatch):
    settings.IMAGEGEN_PROVIDER_ATTEMPTS = 1
    settings.IMAGEGEN_TASK_RETRIES = 2
    settings.IMAGEGEN_TASK_RETRY_DELAY = 30
    settings.IMAGEGEN_BREAKER_THRESHOLD = 100
    countdowns = []
    retry = tasks.generate_image.retry

    def spy(*args, countdown=None, **kwargs):
        countdowns.append(countdown)
        return retry(*args, countdown=countdown, **kwargs)

    monkeypatch.setattr(tasks.generate_image, "retry", spy)
    all_providers_fail(vendors)

    tasks.generate_image.delay(pending.id).get()

    assert countdowns == [30, 60]


def test_refused_content_is_not_retried(pending, vendors, no_sleep, settings):
    settings.IMAGEGEN_FALLBACK_ON_BLOCK = False
    GeneratedImage.objects.filter(pk=pending.pk).update(
        art_style="watercolor painting", routing_category="artistic"
    )
    vendors.gemini(200, vendor_payloads.gemini_prompt_blocked("SAFETY"))

    assert tasks.generate_image.delay(pending.id).get() == "failed"

    pending.refresh_from_db()
    assert (pending.status, pending.error_code) == ("failed", "content_blocked")
    assert vendors.calls("gemini") == 1


def test_a_prompt_no_provider_draws_is_not_retried(pending, vendors, no_sleep, settings):
    settings.IMAGEGEN_PROVIDERS = {"google-imagen": settings.IMAGEGEN_PROVIDERS["google-imagen"]}
    settings.IMAGEGEN_TASK_RETRIES = 2
    for _ in range(6):
        vendors.gemini(body=vendor_payloads.gemini_finished_without_image("NO_IMAGE"))

    assert tasks.generate_image.delay(pending.id).get() == "failed"

    pending.refresh_from_db()
    assert (pending.status, pending.error_code) == ("failed", "no_image")
    assert vendors.calls("gemini") == 2


def test_respond_async_is_refused_past_the_queue_cap_and_a_direct_request_is_not(
    api, project, settings, vendors
):
    settings.IMAGEGEN_MAX_QUEUED_PER_USER = 1
    GeneratedImageFactory(project=project, status="pending", s3_key="")
    vendors.recraft()

    queued = post_image(api, project, headers=PREFER_ASYNC, uuid="segment-queued")
    direct = post_image(api, project, uuid="segment-direct")

    assert (queued.status_code, queued.json()["code"]) == (429, "too_many_queued")
    assert not GeneratedImage.objects.filter(uuid="segment-queued").exists()
    assert direct.status_code == 201, direct.json()


def test_a_broker_outage_does_not_fail_the_request(
    api, project, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(tasks.generate_image, "delay", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_image(api, project, headers=PREFER_ASYNC)

    assert response.status_code == 202
    assert GeneratedImage.objects.get().status == "pending"


# ---------------------------------------------------------------------------------------------
# Per-provider concurrency
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def slot_held_briefly(settings, monkeypatch):
    """The only recraft-ai call slot, held by another thread for 0.3 s; a wait of 0.1 s renews
    a lease."""
    settings.IMAGEGEN_PROVIDER_CONCURRENCY = 1
    monkeypatch.setattr(services, "LEASE_RENEWAL_WAIT", 0.1)
    taken = threading.Event()

    def hold() -> None:
        with services.provider_slot("recraft-ai"):
            taken.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait()
    yield
    holder.join()


def running_since(project, started_at) -> GeneratedImage:
    return GeneratedImageFactory(
        project=project,
        status="running",
        background=True,
        s3_key="",
        started_at=started_at,
        requested_model="recraft-ai",
    )


def test_waiting_for_a_call_slot_starts_the_lease_again(project, vendors, slot_held_briefly):
    queued_at = timezone.now() - timedelta(minutes=9)
    image = running_since(project, queued_at)
    vendors.recraft()

    services.image_run(image)

    image.refresh_from_db()
    assert image.status == "succeeded"
    assert image.started_at > queued_at + timedelta(minutes=8)


def test_a_row_taken_over_while_waiting_for_a_slot_is_not_paid_for(
    project, vendors, slot_held_briefly
):
    image = running_since(project, timezone.now())
    taken_over_at = timezone.now() + timedelta(seconds=1)
    GeneratedImage.objects.filter(pk=image.pk).update(started_at=taken_over_at)

    with pytest.raises(ImageSuperseded):
        services.image_run(image)

    image.refresh_from_db()
    assert (image.status, image.started_at) == ("running", taken_over_at)
    assert vendors.calls("recraft") == 0


def test_a_short_wait_for_a_slot_writes_nothing_more(project, vendors, settings):
    image = running_since(project, timezone.now())
    vendors.recraft()

    with CaptureQueriesContext(connection) as queries:
        services.image_run(image)

    assert not [query for query in queries if 'started_at" = ' in query["sql"].split("WHERE")[0]]


def test_calls_to_one_provider_are_bounded_per_process(settings):
    settings.IMAGEGEN_PROVIDER_CONCURRENCY = 2
    lock = threading.Lock()
    in_flight, peak = 0, 0

    def call() -> None:
        nonlocal in_flight, peak
        with services.provider_slot("recraft-ai"):
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.02)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 2


def test_the_pipeline_calls_the_provider_inside_its_slot(pending, monkeypatch, settings):
    settings.IMAGEGEN_PROVIDER_CONCURRENCY = 1
    provider = services.get_providers()["recraft-ai"]
    held = []

    def generate(request, *, timeout):
        slots = services._provider_slots[("recraft-ai", 1)]
        held.append(not slots.acquire(blocking=False))
        return GenerationResult(
            image_bytes=vendor_payloads.image_bytes("PNG"),
            mime_type="image/png",
            provider_model="recraftv4_1",
        )

    monkeypatch.setattr(provider, "generate", generate)

    tasks.generate_image.delay(pending.id).get()

    assert held == [True]


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------
def stale(settings) -> timezone.datetime:
    return timezone.now() - timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE + 1)


def test_sweep_queues_a_stale_running_image_again_and_it_generates(
    project, vendors, settings, django_capture_on_commit_callbacks
):
    vendors.recraft()
    image = GeneratedImageFactory(
        project=project, status="running", started_at=stale(settings), s3_key=""
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = services.images_sweep_stale()

    assert (result.requeued, result.failed) == ([image.id], [])
    image.refresh_from_db()
    assert image.status == "succeeded"
    assert vendors.calls("recraft") == 1


def test_a_request_time_image_the_sweep_queues_again_is_background_work(project, settings):
    image = GeneratedImageFactory(
        project=project, status="running", background=False, started_at=stale(settings), s3_key=""
    )

    services.images_sweep_stale()

    image.refresh_from_db()
    assert (image.status, image.background) == ("pending", True)


def test_sweep_fails_an_image_whose_second_run_also_went_stale(project, settings):
    image = GeneratedImageFactory(
        project=project,
        status="running",
        started_at=stale(settings),
        error_code=services.LEASE_EXPIRED,
        s3_key="",
    )

    result = services.images_sweep_stale()

    assert (result.requeued, result.failed) == ([], [image.id])
    image.refresh_from_db()
    assert (image.status, image.error_code) == ("failed", services.LEASE_EXPIRED)
    assert "abandoned" in image.message
    assert image.finished_at is not None


def test_sweep_leaves_running_images_within_their_lease_alone(
    project, settings, django_capture_on_commit_callbacks
):
    fresh = GeneratedImageFactory(project=project, status="running", started_at=timezone.now())
    done = GeneratedImageFactory(project=project, status="succeeded", started_at=stale(settings))

    with django_capture_on_commit_callbacks() as queued:
        result = services.images_sweep_stale()

    assert (result.requeued, result.failed, queued) == ([], [], [])
    assert GeneratedImage.objects.get(pk=fresh.pk).status == "running"
    assert GeneratedImage.objects.get(pk=done.pk).status == "succeeded"


def test_sweep_queues_a_pending_image_whose_task_was_lost(
    pending, settings, django_capture_on_commit_callbacks
):
    GeneratedImage.objects.filter(pk=pending.pk).update(updated_at=stale(settings))

    with django_capture_on_commit_callbacks() as queued:
        first = services.images_sweep_stale()
    with django_capture_on_commit_callbacks() as queued_again:
        second = services.images_sweep_stale()

    assert first.requeued == [pending.id]
    assert len(queued) == 1
    assert (second.requeued, queued_again) == ([], [])  # not again before another lease


def test_sweep_command_reports_what_it_did(project, settings, capsys):
    image = GeneratedImageFactory(
        project=project,
        status="running",
        started_at=stale(settings),
        error_code=services.LEASE_EXPIRED,
    )

    call_command("imagegen_sweep")

    out = capsys.readouterr().out
    assert "0 queued again, 1 failed" in out
    assert image.id in out


def test_sweep_task_is_scheduled_by_celery_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["imagegen-sweep-stale"]

    assert entry["task"] == tasks.sweep_stale.name
    assert tasks.sweep_stale.delay().get() == {"requeued": 0, "failed": 0}


# ---------------------------------------------------------------------------------------------
# Storage connections in many threads
# ---------------------------------------------------------------------------------------------
def test_storage_threads_share_one_boto3_resource_and_still_store(moto_endpoint, s3_client):
    from config.storages import S3Storage
    from conftest import S3_BUCKET, S3_CREDENTIALS

    storage = S3Storage(
        bucket_name=S3_BUCKET, endpoint_url=moto_endpoint, region_name="us-east-1", **S3_CREDENTIALS
    )
    connections, urls = set(), []
    ready = threading.Barrier(6)

    def work(index: int) -> None:
        ready.wait()
        connections.add(id(storage.connection))
        key = storage.save(f"images/threads/{index}.jpg", ContentFile(b"jpeg bytes"))
        urls.append(storage.url(key))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(connections) == 1
    assert len(set(urls)) == 6
    for index in range(6):
        head = s3_client.head_object(Bucket=S3_BUCKET, Key=f"images/threads/{index}.jpg")
        assert (head["ContentType"], head["ContentLength"]) == ("image/jpeg", len(b"jpeg bytes"))
    twin = S3Storage(
        bucket_name=S3_BUCKET, endpoint_url=moto_endpoint, region_name="us-east-1", **S3_CREDENTIALS
    )
    elsewhere = S3Storage(
        bucket_name=S3_BUCKET, endpoint_url="http://127.0.0.1:9", region_name="us-east-1"
    )
    assert twin.connection is storage.connection
    assert elsewhere.connection is not storage.connection


def test_the_s3_storage_setting_uses_the_shared_resource_backend():
    from config.settings.base import storage_backend

    assert storage_backend("a-bucket")["BACKEND"] == "config.storages.S3Storage"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_without_a_broker_the_async_answer_carries_the_status_reached(
    api, project, vendors, no_sleep, outcome
):
    if outcome == "succeeded":
        vendors.recraft()
    else:
        all_providers_fail(vendors)

    response = post_image(api, project, headers=PREFER_ASYNC)

    assert response.status_code == 202
    image = GeneratedImage.objects.get()
    assert (response.json()["status"], image.status) == (outcome, outcome)
    assert response.json()["message"] == image.message
    assert image.message.startswith({"succeeded": "Image generated", "failed": "Every"}[outcome])


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_batch_answer_carries_the_statuses_reached(api, project, vendors):
    vendors.recraft()
    vendors.recraft()
    items = [{**SEED_POST, "uuid": f"segment-{number}"} for number in (1, 2)]

    response = api.post(
        "/image-gen/batch", {"projectId": project.id, "items": items}, format="json"
    )

    assert response.status_code == 202
    assert [item["status"] for item in response.json()["items"]] == ["succeeded", "succeeded"]


def test_a_database_outage_while_recording_puts_the_image_back_to_pending_and_retries_it(
    pending, vendors, settings, monkeypatch, no_sleep
):
    settings.IMAGEGEN_TASK_RETRIES = 1
    settings.IMAGEGEN_RECORD_RETRY_SECONDS = 0
    vendors.recraft()
    vendors.recraft()
    finish, failures = services._finish, []

    def database_gone_once(image, **fields):
        if fields.get("status") == GeneratedImage.Status.SUCCEEDED and not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return finish(image, **fields)

    monkeypatch.setattr(services, "_finish", database_gone_once)

    assert tasks.generate_image.delay(pending.id).get() == "succeeded"
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert vendors.calls("recraft") == 2  # the run whose result was lost, and the retry
