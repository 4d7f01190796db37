"""`(projectId, uuid)` names one image: replays, conflicts, retries after failure, in progress."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from imagegen.models import GeneratedImage
from imagegen.serializers import GenerationAnswerSerializer
from imagegen.services import REPLAY_MESSAGE
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST, post_image
from projects.tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

# A replay repeats every field of the answer but these: the message says "replay", and presigned
# URLs are signed anew.
STABLE_FIELDS = [
    field
    for field in GenerationAnswerSerializer.Meta.fields
    if field not in ("message", "image_url")
]


def vendor_calls(vendors) -> int:
    return len(vendors.mock.calls)


def stored_bytes(key: str) -> bytes:
    with default_storage.open(key) as stored:
        return stored.read()


def test_replay_returns_the_stored_result_without_calling_a_provider(
    api, project, vendors, any_storage
):
    vendors.recraft()
    first = post_image(api, project)
    stored = stored_bytes(first.json()["s3_key"])

    replay = post_image(api, project)

    assert first.status_code == 201
    assert replay.status_code == 200
    assert {field: replay.json()[field] for field in STABLE_FIELDS} == {
        field: first.json()[field] for field in STABLE_FIELDS
    }
    assert vendor_calls(vendors) == 1
    assert GeneratedImage.objects.count() == 1
    assert stored_bytes(replay.json()["s3_key"]) == stored


def test_replay_says_it_is_a_replay(api, project, vendors):
    vendors.recraft()
    post_image(api, project)

    replay = post_image(api, project)

    assert replay.json()["message"] == REPLAY_MESSAGE
    assert "replay" in replay.json()["message"]


def test_replay_matches_the_prompt_after_trimming(api, project, vendors):
    vendors.recraft()
    post_image(api, project)

    replay = post_image(api, project, visual_prompt=f"  {SEED_POST['visual_prompt']}\n")

    assert replay.status_code == 200
    assert vendor_calls(vendors) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"visual_prompt": "A red bicycle leaning on a brick wall"},
        {"art_style": "watercolor painting"},
        {"art_style": ""},
        {"aspect_ratio": "1:1"},
    ],
    ids=["prompt", "style", "no-style", "aspect-ratio"],
)
def test_same_uuid_with_different_content_is_a_409_that_changes_nothing(
    api, project, vendors, change
):
    vendors.recraft()
    first = post_image(api, project).json()
    row_before = GeneratedImage.objects.values().get()
    stored = stored_bytes(first["s3_key"])

    response = post_image(api, project, **change)

    assert response.status_code == 409
    body = response.json()
    assert body["success"] is False
    assert body["code"] == "uuid_conflict"
    assert SEED_POST["uuid"] in body["message"]
    assert "different prompt" in body["message"]
    assert GeneratedImage.objects.values().get() == row_before
    assert stored_bytes(first["s3_key"]) == stored
    assert vendor_calls(vendors) == 1


def test_same_uuid_in_another_project_is_another_image(api, user, project, vendors):
    vendors.recraft()
    second_project = ProjectFactory(owner=user)

    first = post_image(api, project)
    second = post_image(api, second_project)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["s3_key"] != second.json()["s3_key"]
    assert vendor_calls(vendors) == 2


def test_retry_after_provider_failure_generates(api, project, vendors, no_sleep):
    vendors.recraft(503, b"upstream overloaded")
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE", "The model is overloaded"))
    failed = post_image(api, project)
    assert failed.status_code == 502
    vendors.mock.reset()
    vendors.recraft()

    retry = post_image(api, project)

    assert retry.status_code == 201, retry.json()
    assert retry.json()["id"] == failed.json()["id"]
    assert vendors.calls("recraft") == 1
    row = GeneratedImage.objects.get()
    assert (row.status, row.error_code) == ("succeeded", "")
    assert default_storage.exists(row.s3_key)


def test_retry_after_a_safety_block_may_rephrase_the_prompt(api, project, vendors, no_sleep):
    vendors.gemini(200, vendor_payloads.gemini_prompt_blocked("SAFETY"))
    vendors.recraft(200, b"not json")  # the fallback is no better
    blocked = post_image(api, project, art_style="watercolor painting")
    assert blocked.status_code == 422
    vendors.mock.reset()
    vendors.gemini()

    rephrased = post_image(
        api, project, visual_prompt="A calm lake at dawn", art_style="watercolor painting"
    )

    assert rephrased.status_code == 201, rephrased.json()
    row = GeneratedImage.objects.get()
    assert (row.status, row.visual_prompt) == ("succeeded", "A calm lake at dawn")


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (GeneratedImage.Status.PENDING, "is queued for generation in the background; follow it"),
        (GeneratedImage.Status.RUNNING, "is being generated right now"),
    ],
)
def test_request_for_a_uuid_being_generated_is_a_409_in_progress(
    api, project, vendors, status, says
):
    image = GeneratedImageFactory(
        project=project,
        uuid=SEED_POST["uuid"],
        visual_prompt=SEED_POST["visual_prompt"],
        art_style=SEED_POST["art_style"],
        status=status,
        s3_key="",
        started_at=timezone.now(),
    )

    response = post_image(api, project)

    assert response.status_code == 409
    assert response["Retry-After"] == "5"
    body = response.json()
    assert (body["success"], body["code"], body["id"]) == (False, "in_progress", image.id)
    assert says in body["message"]
    assert vendor_calls(vendors) == 0
    image.refresh_from_db()
    assert image.status == status


def test_generation_abandoned_past_its_lease_may_be_retried(api, project, vendors, settings):
    GeneratedImageFactory(
        project=project,
        uuid=SEED_POST["uuid"],
        visual_prompt=SEED_POST["visual_prompt"],
        art_style=SEED_POST["art_style"],
        status=GeneratedImage.Status.RUNNING,
        s3_key="",
        started_at=timezone.now() - timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE + 1),
    )
    vendors.recraft()

    response = post_image(api, project)

    assert response.status_code == 201
    assert GeneratedImage.objects.get().status == "succeeded"


def test_replay_after_patch_of_the_prompt_is_a_conflict(api, project, vendors):
    vendors.recraft()
    image_id = post_image(api, project).json()["id"]
    api.patch(f"/image-gen/{image_id}", {"visual_prompt": "A new scene"}, format="json")

    response = post_image(api, project)

    assert response.status_code == 409
    assert vendor_calls(vendors) == 1
