"""Storyboards: `POST /image-gen/batch` (all or nothing, 202, queued) and its progress (GET)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from imagegen import tasks
from imagegen.models import BatchMembership, GeneratedImage, ImageBatch
from imagegen.selectors import batch_images
from imagegen.serializers import MAX_ART_STYLE_CHARS, MAX_VISUAL_PROMPT_CHARS
from imagegen.tests.factories import GeneratedImageFactory
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

REALISTIC = {"visual_prompt": "A sleek water bottle on a wooden desk", "art_style": "photography"}
ARTISTIC = {"visual_prompt": "A fox in a snowy forest", "art_style": "watercolor painting"}


def storyboard(count: int, **overrides) -> list[dict]:
    return [{**REALISTIC, "uuid": f"segment-{index:03d}", **overrides} for index in range(count)]


def post_batch(api, project, items):
    return api.post("/image-gen/batch", {"projectId": project.id, "items": items}, format="json")


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Runs what the request queued once its transaction commits (the eager Celery tasks)."""

    def run(callable_, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = callable_(*args, **kwargs)
        return response, callbacks

    return run


def test_batch_answers_202_with_pending_items_and_generates_them(
    api, project, vendors, run_on_commit
):
    vendors.recraft()
    vendors.gemini()
    items = [
        {**REALISTIC, "uuid": "segment-001"},
        {**ARTISTIC, "uuid": "segment-002", "aspect_ratio": "9:16"},
    ]

    response, queued = run_on_commit(post_batch, api, project, items)

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["success"] is True
    assert [(item["uuid"], item["status"]) for item in body["items"]] == [
        ("segment-001", "pending"),
        ("segment-002", "pending"),
    ]
    assert len(queued) == 1  # one pass after commit publishes the whole storyboard
    batch = ImageBatch.objects.get(pk=body["batchId"])
    assert response["Location"].endswith(f"/image-gen/batch/{batch.id}")
    rows = {row.uuid: row for row in GeneratedImage.objects.filter(batch=batch)}
    assert {row.status for row in rows.values()} == {"succeeded"}
    assert rows["segment-001"].model == "recraft-ai"
    assert rows["segment-002"].model == "google-imagen"
    assert rows["segment-002"].aspect_ratio == "9:16"


def test_batch_items_stay_pending_until_the_transaction_commits(api, project, vendors):
    # No on_commit capture here: the test's transaction never commits, so nothing may run.
    response = post_batch(api, project, storyboard(3))

    assert response.status_code == 202
    assert set(GeneratedImage.objects.values_list("status", flat=True)) == {"pending"}
    assert len(vendors.mock.calls) == 0


def test_already_generated_items_are_reported_not_regenerated(api, project, vendors, run_on_commit):
    vendors.recraft()
    done = GeneratedImageFactory(project=project, uuid="segment-000", **REALISTIC)

    response, queued = run_on_commit(post_batch, api, project, storyboard(2))

    assert response.status_code == 202
    states = {item["uuid"]: (item["id"], item["status"]) for item in response.json()["items"]}
    assert states["segment-000"] == (done.id, "succeeded")
    assert states["segment-001"][1] == "pending"
    assert len(queued) == 1
    assert vendors.calls("recraft") == 1
    assert "1 image(s) for generation; 1 already generated" in response.json()["message"]


@pytest.mark.parametrize(
    ("bad_item", "field"),
    [
        ({"visual_prompt": ""}, "items[1].visual_prompt"),
        ({"visual_prompt": "x" * 801}, "items[1].visual_prompt"),
        ({"uuid": "has spaces"}, "items[1].uuid"),
        ({"aspect_ratio": "7:3"}, "items[1].aspect_ratio"),
        ({"model": "dall-e"}, "items[1].model"),
        ({"art_style": None}, "items[1].art_style"),
    ],
)
def test_one_bad_item_is_a_400_naming_it_and_nothing_is_recorded(
    api, project, vendors, bad_item, field, django_capture_on_commit_callbacks
):
    items = storyboard(3)
    items[1] = {**items[1], **bad_item}

    with django_capture_on_commit_callbacks() as queued:
        response = post_batch(api, project, items)

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["message"].startswith(f"Invalid input: {field}: ")
    assert list(body["errors"]) == [field]
    assert queued == []
    assert not GeneratedImage.objects.exists()
    assert not ImageBatch.objects.exists()


def test_an_item_that_is_not_an_object_is_named(api, project):
    response = post_batch(api, project, [*storyboard(1), "segment-002"])

    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid input: items[1]: ")


def test_duplicate_uuids_in_one_batch_are_a_400(api, project):
    items = storyboard(3)
    items[2]["uuid"] = items[0]["uuid"]

    response = post_batch(api, project, items)

    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid input: items[2].uuid: Duplicate uuid 'segment-000': items[0] has it already."
    )
    assert not GeneratedImage.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"items": []}, "items: This list may not be empty."),
        ({"items": "segment-001"}, "items: Expected a list of items"),
        ({}, "items: This field is required."),
    ],
)
def test_a_batch_without_items_is_a_400(api, project, body, message):
    response = api.post("/image-gen/batch", {"projectId": project.id, **body}, format="json")

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Invalid input: {message}")


def test_a_batch_over_the_configured_maximum_is_a_400(api, project, settings):
    settings.IMAGEGEN_BATCH_MAX_ITEMS = 3

    response = post_batch(api, project, storyboard(4))

    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid input: items: A batch holds at most 3 items; this one has 4."
    )
    assert not GeneratedImage.objects.exists()


def test_the_largest_batch_fits_the_body_cap_however_its_json_is_escaped(api, project):
    # Emoji: 12 bytes each as JSON encoders write them by default ("\ud83c\udfac").
    items = [
        {
            "visual_prompt": "\U0001f3ac" * MAX_VISUAL_PROMPT_CHARS,
            "art_style": "\U0001f3a8" * MAX_ART_STYLE_CHARS,
            "uuid": f"segment-{index:03d}",
        }
        for index in range(settings.IMAGEGEN_BATCH_MAX_ITEMS)
    ]
    body = json.dumps({"projectId": project.id, "items": items})

    response = api.post("/image-gen/batch", body, content_type="application/json")

    assert len(body) > 2_000_000
    assert response.status_code == 202, response.json()


def test_the_default_maximum_of_200_items_is_accepted(api, project, django_assert_num_queries):
    # New segments are inserted in one statement, not claimed one by one.
    with django_assert_num_queries(14):
        response = post_batch(api, project, storyboard(200))

    assert response.status_code == 202
    assert GeneratedImage.objects.filter(status="pending").count() == 200
    ids = [item["id"] for item in response.json()["items"]]
    assert ids == list(
        GeneratedImage.objects.filter(pk__in=ids).order_by("uuid").values_list("pk", flat=True)
    )


def test_a_batch_mixing_new_and_known_segments_claims_the_known_ones(
    api, project, settings, django_capture_on_commit_callbacks
):
    same = {
        "project": project,
        "visual_prompt": REALISTIC["visual_prompt"],
        "art_style": REALISTIC["art_style"],
        "aspect_ratio": settings.IMAGEGEN_DEFAULT_ASPECT_RATIO,
    }
    done = GeneratedImageFactory(uuid="segment-001", status="succeeded", **same)
    failed = GeneratedImageFactory(uuid="segment-002", status="failed", s3_key="", **same)

    with django_capture_on_commit_callbacks():
        response = post_batch(api, project, storyboard(4))

    assert response.status_code == 202, response.json()
    states = {item["uuid"]: item["status"] for item in response.json()["items"]}
    assert states == {
        "segment-000": "pending",
        "segment-001": "succeeded",
        "segment-002": "pending",
        "segment-003": "pending",
    }
    batch = ImageBatch.objects.get()
    assert [image.uuid for image in batch_images(batch=batch)] == list(states)
    failed.refresh_from_db()
    assert (failed.status, failed.batch_id) == ("pending", batch.pk)
    done.refresh_from_db()
    assert (done.status, done.batch_id) == ("succeeded", None)


def test_a_storyboard_sent_again_leaves_the_first_batch_as_it_was(
    api, project, vendors, run_on_commit
):
    for _ in range(3):
        vendors.recraft()
    first, _ = run_on_commit(post_batch, api, project, storyboard(2))
    before = api.get(f"/image-gen/batch/{first.json()['batchId']}").json()

    second, _ = run_on_commit(post_batch, api, project, storyboard(3)[1:])

    after = api.get(f"/image-gen/batch/{first.json()['batchId']}").json()
    assert {key: after[key] for key in ("counts", "total", "costUsd")} == {
        key: before[key] for key in ("counts", "total", "costUsd")
    }
    assert [item["uuid"] for item in after["items"]] == ["segment-000", "segment-001"]
    resent = api.get(f"/image-gen/batch/{second.json()['batchId']}").json()
    assert [item["uuid"] for item in resent["items"]] == ["segment-001", "segment-002"]
    assert resent["counts"]["succeeded"] == 2
    assert vendors.calls("recraft") == 3


def test_a_batch_for_another_users_project_is_a_404_and_records_nothing(api, other_project):
    response = post_batch(api, other_project, storyboard(2))

    assert response.status_code == 404
    assert not GeneratedImage.objects.exists()
    assert not ImageBatch.objects.exists()


@pytest.mark.parametrize("holder", ["moved", "segment-000"])  # the latter an item itself
def test_an_item_whose_key_holds_another_images_object_refuses_the_whole_batch(
    api, project, django_capture_on_commit_callbacks, holder
):
    moved_to = f"images/{project.id}/segment-002.jpg"  # an image's s3_key, changed by a PATCH
    GeneratedImageFactory(project=project, uuid=holder, s3_key=moved_to, **REALISTIC)

    with django_capture_on_commit_callbacks() as queued:
        response = post_batch(api, project, storyboard(3))

    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["index"]) == ("uuid_conflict", 2)
    assert body["message"].startswith("items[2]: uuid 'segment-002' stores its image at")
    assert queued == []
    assert GeneratedImage.objects.count() == 1
    assert not ImageBatch.objects.exists()


def test_an_item_in_the_records_spelling_or_for_another_project_refuses_the_batch(
    api, project, other_project
):
    items = storyboard(3)
    items[1]["aspectRatio"] = "1:1"
    items[2]["projectId"] = other_project.id

    response = post_batch(api, project, items)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "items[1].aspectRatio": ["Unknown field; this body spells it 'aspect_ratio'."],
        "items[2].projectId": [
            f"'{other_project.id}' is not this batch's project ('{project.id}'): a batch makes "
            "all its items in the project it names."
        ],
    }
    assert not GeneratedImage.objects.exists()


def test_an_item_naming_the_batchs_own_project_is_taken(api, project, vendors):
    vendors.recraft()
    items = [{**storyboard(1)[0], "projectId": project.id}]

    assert post_batch(api, project, items).status_code == 202


def test_an_item_whose_uuid_holds_another_prompt_refuses_the_whole_batch(
    api, project, django_capture_on_commit_callbacks
):
    GeneratedImageFactory(project=project, uuid="segment-001", visual_prompt="Something else")

    with django_capture_on_commit_callbacks() as queued:
        response = post_batch(api, project, storyboard(3))

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "uuid_conflict"
    assert body["index"] == 1
    assert body["message"].startswith("items[1]: uuid 'segment-001'")
    assert queued == []
    assert GeneratedImage.objects.count() == 1
    assert not ImageBatch.objects.exists()


def test_a_batch_is_accepted_while_the_user_is_at_the_in_flight_cap(api, project, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    GeneratedImageFactory.create_batch(
        2, project=project, status="running", started_at=timezone.now()
    )

    response = post_batch(api, project, storyboard(3))

    assert response.status_code == 202, response.json()


@pytest.mark.parametrize(("queued", "sent", "status"), [(2, 3, 202), (3, 3, 429), (0, 6, 429)])
def test_a_users_queue_is_capped_across_batches(
    api, project, settings, django_capture_on_commit_callbacks, queued, sent, status
):
    settings.IMAGEGEN_MAX_QUEUED_PER_USER = 5
    GeneratedImageFactory.create_batch(queued, project=project, status="pending", s3_key="")

    with django_capture_on_commit_callbacks() as published:
        response = post_batch(api, project, storyboard(sent))

    assert response.status_code == status, response.json()
    if status == 429:
        assert response.json()["code"] == "too_many_queued"
        assert response.json()["message"] == (
            f"This would leave {queued + sent} of your images waiting for generation (the limit "
            "is 5); wait for some to finish, or send fewer."
        )
        assert response["Retry-After"] == "30"
        assert published == []
        assert GeneratedImage.objects.count() == queued
        assert not ImageBatch.objects.exists()


def test_retried_items_count_against_the_queue_cap(api, project, settings):
    settings.IMAGEGEN_MAX_QUEUED_PER_USER = 1
    for uuid in ("segment-000", "segment-001"):
        GeneratedImageFactory(
            project=project,
            uuid=uuid,
            status="failed",
            s3_key="",
            visual_prompt=REALISTIC["visual_prompt"],
            art_style=REALISTIC["art_style"],
            aspect_ratio=settings.IMAGEGEN_DEFAULT_ASPECT_RATIO,
        )

    response = post_batch(api, project, storyboard(2))

    assert response.status_code == 429
    assert response.json()["index"] == 1
    assert list(GeneratedImage.objects.values_list("status", flat=True)) == ["failed"] * 2


def test_batch_progress_counts_statuses_and_cost(api, project):
    batch = ImageBatch.objects.create(user=project.owner, project=project)
    images = [
        GeneratedImageFactory(project=project, batch=batch, status=status, cost_usd=Decimal(cost))
        for status, cost in [("succeeded", "0.035"), ("succeeded", "0.039"), ("failed", "0.01")]
    ]
    images.append(GeneratedImageFactory(project=project, batch=batch, status="pending", s3_key=""))
    BatchMembership.objects.bulk_create(
        BatchMembership(batch=batch, image=image, position=position)
        for position, image in enumerate(images)
    )
    GeneratedImageFactory(project=project)  # not in the batch

    response = api.get(f"/image-gen/batch/{batch.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"pending": 1, "running": 0, "succeeded": 2, "failed": 1}
    assert (body["total"], body["done"]) == (4, False)
    assert body["costUsd"] == pytest.approx(0.084)
    assert len(body["items"]) == 4
    assert {item["batchId"] for item in body["items"]} == {batch.id}


def test_batch_progress_follows_the_generation_to_done(api, project, vendors, run_on_commit):
    vendors.recraft()
    response, _ = run_on_commit(post_batch, api, project, storyboard(3))

    body = api.get(f"/image-gen/batch/{response.json()['batchId']}").json()

    assert body["counts"]["succeeded"] == 3
    assert body["done"] is True
    assert body["costUsd"] == pytest.approx(3 * 0.035)
    assert all(item["imageUrl"] for item in body["items"])


@pytest.mark.parametrize("path", ["/image-gen/batch/{id}", "/image-gen/batch/doesnotexist"])
def test_another_users_batch_is_a_404(other_api, project, path):
    batch = ImageBatch.objects.create(user=project.owner, project=project)

    response = other_api.get(path.format(id=batch.id))

    assert response.status_code == 404
    assert response.json()["success"] is False


def test_batch_needs_authentication(anonymous, project):
    response = post_batch(anonymous, project, storyboard(1))

    assert response.status_code == 401


def test_batch_of_a_second_project_leaves_the_first_projects_uuids_alone(
    api, user, project, vendors, run_on_commit
):
    vendors.recraft()
    second = ProjectFactory(owner=user)
    GeneratedImageFactory(project=project, uuid="segment-000", **REALISTIC)

    response, queued = run_on_commit(post_batch, api, second, storyboard(1))

    assert response.json()["items"][0]["status"] == "pending"
    assert len(queued) == 1


# ---------------------------------------------------------------------------------------------
# A broker outage: the answer is not held, the rows wait for the sweep.
# ---------------------------------------------------------------------------------------------
REFUSED = "Error 111 connecting to 127.0.0.1:6379. Connection refused."


def test_a_broker_outage_costs_one_failed_publish_and_leaves_the_rows_pending(
    api, project, vendors, run_on_commit, monkeypatch, caplog
):
    published = []

    def refused(image_id: str) -> None:
        published.append(image_id)
        raise OperationalError(REFUSED)

    monkeypatch.setattr(tasks, "generate_image", SimpleNamespace(delay=refused))

    response, _ = run_on_commit(post_batch, api, project, storyboard(20))

    assert response.status_code == 202
    assert len(published) == 1
    assert set(GeneratedImage.objects.values_list("status", flat=True)) == {"pending"}
    assert [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("enqueue_failed")
    ] == [f"enqueue_failed queued=0 left_pending=20 error=OperationalError: {REFUSED}"]
    assert len(vendors.mock.calls) == 0


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that accepts connections and never answers, as a frozen Redis does."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def publish(url: str, **transport_options: float) -> tuple[BaseException | None, float]:
    """Publish one task to `url` with the configured options (and `transport_options`), in a
    thread that the test gives up on after 20 s; returns the error raised and the seconds."""
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, **transport_options}
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            with celery_app.connection_for_write(url, transport_options=options) as connection:
                celery_app.send_task("imagegen.generate_image", ("nothing",), connection=connection)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert outcome, "the publish was still waiting after 20 s"
    return outcome[0], time.monotonic() - started


def test_broker_sockets_time_out_by_default():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS

    assert options["socket_timeout"] == options["socket_connect_timeout"] == 5.0
    assert settings.CELERY_TASK_PUBLISH_RETRY_POLICY["max_retries"] == 1


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_publish_to_a_broker_that_refuses_fails_after_one_retry():
    error, seconds = publish("redis://127.0.0.1:1/0")  # nothing listens on port 1

    assert isinstance(error, OperationalError)
    assert 0.5 <= seconds < 2  # one retry, 0.5 s later


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_publish_to_a_broker_that_stops_answering_fails_after_its_socket_timeout(
    silent_broker,
):
    error, seconds = publish(silent_broker, socket_timeout=0.5, socket_connect_timeout=0.5)

    assert isinstance(error, OperationalError)
    assert 0.5 <= seconds < 3


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_each_batchs_images_as_its_items():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("imagegen", "0002_generationattempt_usage")])
    old = executor.loader.project_state([("imagegen", "0002_generationattempt_usage")]).apps
    project = ProjectFactory()
    batch = old.get_model("imagegen", "ImageBatch").objects.create(
        project_id=project.id, user_id=project.owner_id
    )
    images = [GeneratedImageFactory.build(project=project, uuid=f"s-{n}") for n in range(3)]
    Image = old.get_model("imagegen", "GeneratedImage")  # noqa: N806
    fields = ("id", "project_id", "user_id", "uuid", "visual_prompt", "aspect_ratio", "status")
    for image in images:
        Image.objects.create(batch_id=batch.id, **{name: getattr(image, name) for name in fields})

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert [image.uuid for image in batch_images(batch=ImageBatch.objects.get())] == [
        "s-0",
        "s-1",
        "s-2",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_migration_marks_queued_work_as_background():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("imagegen", "0004_prompts_in_nfc")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    project = ProjectFactory()
    batch = old.get_model("imagegen", "ImageBatch").objects.create(
        project_id=project.id, user_id=project.owner_id
    )
    Image = old.get_model("imagegen", "GeneratedImage")  # noqa: N806
    rows = {
        "queued": ("pending", None),
        "storyboard-running": ("running", batch.id),
        "request-running": ("running", None),
        "done": ("succeeded", batch.id),
    }
    for uuid, (status, batch_id) in rows.items():
        Image.objects.create(
            id=uuid,
            project_id=project.id,
            user_id=project.owner_id,
            uuid=uuid,
            status=status,
            batch_id=batch_id,
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert dict(GeneratedImage.objects.values_list("uuid", "background")) == {
        "queued": True,
        "storyboard-running": True,
        "request-running": False,
        "done": False,
    }
    with connection.cursor() as cursor:  # a row inserted without the column, as before it
        cursor.execute(
            "INSERT INTO imagegen_generatedimage (id, project_id, user_id, uuid, visual_prompt, "
            "art_style, aspect_ratio, requested_model, status, model, provider_model, message, "
            "error_code, block_reason, s3_key, cost_usd, routing_category, routing_signals, "
            "router_version, created_at, updated_at) SELECT 'olderrelease', project_id, user_id, "
            "'older-release', visual_prompt, art_style, aspect_ratio, requested_model, status, "
            "model, provider_model, message, error_code, block_reason, s3_key, cost_usd, "
            "routing_category, routing_signals, router_version, created_at, updated_at "
            "FROM imagegen_generatedimage WHERE uuid = 'done'"
        )
    assert GeneratedImage.objects.get(uuid="older-release").background is False
