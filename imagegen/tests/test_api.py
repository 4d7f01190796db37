"""The seed's three endpoints end to end: real PostgreSQL, S3 on moto, vendors via `responses`."""

from __future__ import annotations

import io
import unicodedata

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from conftest import new_uuid
from imagegen import services
from imagegen.models import GeneratedImage
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory

pytestmark = pytest.mark.django_db

SEED_POST = {
    "visual_prompt": (
        "A sleek eco-friendly water bottle on a wooden desk with green plants in the background"
    ),
    "art_style": "modern minimalist photography",
    "uuid": "segment-001-image",
}
SEED_PATCH = {
    "visual_prompt": (
        "A sleek eco-friendly water bottle on a wooden desk with green plants in the background, "
        "focusing on sustainability and health benefits"
    ),
    "art_style": "cinematic photography with soft lighting",
}


def post_image(api, project, **overrides):
    return api.post(
        "/image-gen", {**SEED_POST, "projectId": project.id, **overrides}, format="json"
    )


def test_seed_post_stores_a_jpeg_and_answers_the_seed_shape(api, project, vendors, any_storage):
    vendors.recraft()

    response = post_image(api, project)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert list(body)[:5] == ["success", "s3_key", "model", "message", "image_size_bytes"]
    assert body["success"] is True
    assert body["model"] == "recraft-ai"
    assert body["message"] == "Image generated successfully"
    assert body["s3_key"] == f"images/{project.id}/segment-001-image.jpg"
    with default_storage.open(body["s3_key"]) as stored:
        data = stored.read()
    assert len(data) == body["image_size_bytes"]
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert (image.width, image.height) == (body["width"], body["height"])
    row = GeneratedImage.objects.get(pk=body["id"])
    assert row.status == "succeeded"
    assert row.provider_model == "recraftv4_1"
    assert row.user == project.owner


def test_s3_object_has_jpeg_content_type(api, project, vendors, s3_client):
    vendors.recraft()

    key = post_image(api, project).json()["s3_key"]

    head = s3_client.head_object(Bucket="imagegen-test", Key=key)
    assert head["ContentType"] == "image/jpeg"


def test_artistic_prompt_goes_to_google(api, project, vendors):
    vendors.gemini()

    response = post_image(api, project, art_style="watercolor painting", uuid=new_uuid())

    assert response.status_code == 201
    assert response.json()["model"] == "google-imagen"
    assert response.json()["provider_model"] == "gemini-2.5-flash-image"


def test_explicit_model_overrides_routing(api, project, vendors):
    vendors.gemini()

    response = post_image(api, project, model="google-imagen", uuid=new_uuid())

    assert response.json()["model"] == "google-imagen"
    assert vendors.calls("recraft") == 0


@pytest.mark.parametrize("path", ["/image-gen", "/image-gen/"])
def test_trailing_slash_is_optional(api, project, vendors, path):
    vendors.recraft()

    response = api.post(path, {**SEED_POST, "projectId": project.id}, format="json")

    assert response.status_code == 201


def test_list_is_newest_first_in_camel_case(api, project):
    older = GeneratedImageFactory(project=project)
    newer = GeneratedImageFactory(project=project)

    response = api.get("/image-gen")

    assert response.status_code == 200
    items = response.json()
    assert [item["id"] for item in items] == [newer.id, older.id]
    for key in (
        "id",
        "visualPrompt",
        "artStyle",
        "uuid",
        "success",
        "s3Key",
        "model",
        "message",
        "imageSizeBytes",
        "projectId",
        "userId",
        "createdAt",
        "providerModel",
        "width",
        "height",
        "imageUrl",
        "costUsd",
        "routing",
        "status",
    ):
        assert key in items[0]
    assert items[0]["imageUrl"].startswith("http")  # presigned on S3


def test_list_filters_by_id_and_project(api, user, project):
    from projects.tests.factories import ProjectFactory

    second_project = ProjectFactory(owner=user)
    first = GeneratedImageFactory(project=project)
    GeneratedImageFactory(project=second_project)

    by_project = api.get("/image-gen", {"projectId": project.id}).json()
    by_id = api.get("/image-gen", {"id": first.id}).json()

    assert [item["id"] for item in by_project] == [first.id]
    assert [item["id"] for item in by_id] == [first.id]


def test_patch_answers_the_seed_shape(api, project, s3_client):
    image = GeneratedImageFactory(project=project)
    new_key = f"images/{project.id}/updated-segment-001-image.jpg"
    s3_client.put_object(
        Bucket="imagegen-test", Key=new_key, Body=vendor_payloads.image_bytes("JPEG")
    )

    response = api.patch(f"/image-gen/{image.id}", {**SEED_PATCH, "s3_key": new_key}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Image prompt, art style, and S3 key updated successfully"
    assert body["image"]["visualPrompt"] == SEED_PATCH["visual_prompt"]
    assert body["image"]["artStyle"] == SEED_PATCH["art_style"]
    assert body["image"]["s3Key"] == new_key
    assert body["image"]["project"] == {"id": project.id, "name": project.name}


def test_patch_message_names_only_what_changed(api, project):
    image = GeneratedImageFactory(project=project)

    response = api.patch(f"/image-gen/{image.id}", SEED_PATCH, format="json")

    assert response.json()["message"] == "Image prompt and art style updated successfully"
    image.refresh_from_db()
    assert image.art_style == SEED_PATCH["art_style"]


@pytest.mark.parametrize("with_key", [False, True])
def test_patch_of_an_image_deleted_meanwhile_is_a_404_that_writes_nothing(
    api, project, s3_client, monkeypatch, with_key
):
    image = GeneratedImageFactory(project=project)
    new_key = f"images/{project.id}/uploaded.jpg"
    jpeg = vendor_payloads.image_bytes("JPEG")
    s3_client.put_object(Bucket="imagegen-test", Key=new_key, Body=jpeg)
    update = services.image_update

    def deleted_meanwhile(**arguments):
        # A DELETE lands while the PATCH is on its way (reading S3 for a new key, say).
        GeneratedImage.objects.filter(pk=image.pk).delete()
        return update(**arguments)

    monkeypatch.setattr(services, "image_update", deleted_meanwhile)
    body = {**SEED_PATCH, "s3_key": new_key} if with_key else SEED_PATCH

    response = api.patch(f"/image-gen/{image.id}", body, format="json")

    assert response.status_code == 404, response.json()
    assert response.json()["code"] == "not_found"
    assert not GeneratedImage.objects.exists()


def test_patch_refuses_the_key_another_segment_generates_into(api, project, s3_client):
    other = GeneratedImageFactory(project=project, uuid="seg-b", s3_key="")
    image = GeneratedImageFactory(project=project, uuid="seg-a")
    key = f"images/{project.id}/seg-b.jpg"  # where seg-b's next generation writes
    s3_client.put_object(Bucket="imagegen-test", Key=key, Body=vendor_payloads.image_bytes("JPEG"))

    response = api.patch(f"/image-gen/{image.id}", {"s3_key": key}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_s3_key"
    assert response.json()["message"] == (
        f"'{key}' is where image {other.id} (uuid 'seg-b') stores its generations; "
        "choose another key."
    )
    assert GeneratedImage.objects.get(pk=image.pk).s3_key == image.s3_key


def test_patch_takes_back_the_images_own_generation_key(api, project, s3_client):
    image = GeneratedImageFactory(project=project, uuid="seg-a", s3_key="")
    key = f"images/{project.id}/seg-a.jpg"
    s3_client.put_object(Bucket="imagegen-test", Key=key, Body=vendor_payloads.image_bytes("JPEG"))

    response = api.patch(f"/image-gen/{image.id}", {"s3_key": key}, format="json")

    assert response.status_code == 200, response.json()


def test_a_uuid_whose_key_holds_another_images_object_is_a_409_before_any_call(
    api, project, vendors, s3_client
):
    key = f"images/{project.id}/seg-b.jpg"
    holder = GeneratedImageFactory(project=project, uuid="seg-a", s3_key=key)
    s3_client.put_object(Bucket="imagegen-test", Key=key, Body=b"seg-a's picture")

    response = post_image(api, project, uuid="seg-b")

    assert response.status_code == 409
    assert response.json()["code"] == "uuid_conflict"
    assert response.json()["message"].startswith(
        f"uuid 'seg-b' stores its image at '{key}', which is image {holder.id}'s object"
    )
    assert vendors.calls("recraft") == 0
    assert list(GeneratedImage.objects.values_list("uuid", flat=True)) == ["seg-a"]
    assert s3_client.get_object(Bucket="imagegen-test", Key=key)["Body"].read() == (
        b"seg-a's picture"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/image-gen"),
        ("post", "/image-gen"),
        ("patch", "/image-gen/abc"),
        ("get", "/projects"),
        ("post", "/projects"),
    ],
)
def test_every_endpoint_requires_a_token(anonymous, method, path):
    response = getattr(anonymous, method)(path, {}, format="json")

    assert response.status_code == 401
    assert response.json()["success"] is False


def test_token_endpoints_issue_and_rotate(anonymous, user):
    pair = anonymous.post(
        "/auth/token",
        {"username": user.username, "password": "correct-horse-battery"},
        format="json",
    ).json()
    refreshed = anonymous.post("/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")
    replayed = anonymous.post("/auth/token/refresh", {"refresh": pair["refresh"]}, format="json")

    assert set(pair) == {"access", "refresh"}
    assert refreshed.status_code == 200
    assert "refresh" in refreshed.json()
    assert replayed.status_code == 401  # the rotated refresh token is blacklisted


def test_second_user_sees_none_of_the_first_users_data(api, other_api, project):
    image = GeneratedImageFactory(project=project)

    assert other_api.get("/image-gen").json() == []
    assert other_api.get(f"/image-gen/{image.id}").status_code == 404
    assert other_api.get("/projects").json() == []
    assert other_api.get(f"/projects/{project.id}").status_code == 404


BAD_INPUTS = [
    ({"visual_prompt": ""}, "visual_prompt"),
    ({"visual_prompt": "   "}, "visual_prompt"),
    ({"visual_prompt": 42}, "visual_prompt"),
    ({"visual_prompt": ["a"]}, "visual_prompt"),
    ({"visual_prompt": "x" * 801}, "visual_prompt"),
    ({"visual_prompt": "nul\x00byte"}, "visual_prompt"),
    ({"visual_prompt": "\u200b\u200b"}, "visual_prompt"),
    ({"visual_prompt": " \ufeff\u2060\n"}, "visual_prompt"),
    ({"visual_prompt": "\U000e0041\U000e0042"}, "visual_prompt"),
    # Characters that draw nothing though they are not format characters.
    ({"visual_prompt": "\u3164"}, "visual_prompt"),
    ({"visual_prompt": " \u3164 \u115f\u1160 \uffa0 "}, "visual_prompt"),
    ({"visual_prompt": "\u034f\ufe0f\u180b"}, "visual_prompt"),
    ({"visual_prompt": "\u2800\u2800"}, "visual_prompt"),
    ({"visual_prompt": "\U000e0100"}, "visual_prompt"),
    ({"art_style": "\x1c"}, "art_style"),
    ({"art_style": None}, "art_style"),
    ({"art_style": "y" * 181}, "art_style"),
    ({"art_style": "bell\x07"}, "art_style"),
    ({"uuid": ""}, "uuid"),
    ({"uuid": "a/b"}, "uuid"),
    ({"uuid": "../x"}, "uuid"),
    ({"uuid": "u" * 101}, "uuid"),
    ({"uuid": 7}, "uuid"),
    ({"model": "dall-e"}, "model"),
    ({"model": "auto "}, "model"),
    ({"model": "\trecraft-ai\n"}, "model"),
    ({"aspect_ratio": "7:5"}, "aspect_ratio"),
    ({"projectId": 12}, "projectId"),
]


def test_a_prompt_typed_in_another_unicode_form_is_the_same_prompt(api, project, vendors):
    vendors.recraft()
    composed = "Café terrace at night, crème brûlée on the table"
    decomposed = unicodedata.normalize("NFD", composed)

    first = post_image(api, project, visual_prompt=composed, art_style="café photography")
    again = post_image(
        api,
        project,
        visual_prompt=decomposed,
        art_style=unicodedata.normalize("NFD", "café photography"),
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert GeneratedImage.objects.get().visual_prompt == composed
    assert vendors.calls("recraft") == 1


@pytest.mark.django_db(transaction=True)
def test_a_prompt_stored_in_another_unicode_form_before_still_replays(api, project, vendors):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    decomposed = unicodedata.normalize("NFD", SEED_POST["visual_prompt"] + " at the café")
    before_nfc = [("imagegen", "0003_batch_membership")]
    executor = MigrationExecutor(connection)
    executor.migrate(before_nfc)
    # The model as it was then: today's has columns that migration state does not.
    then = executor.loader.project_state(before_nfc).apps.get_model("imagegen", "GeneratedImage")
    then.objects.create(
        id="c0mww0zamailq0ijsou9lll0m",
        project_id=project.pk,
        user_id=project.owner_id,
        uuid=SEED_POST["uuid"],
        visual_prompt=decomposed,
        art_style=SEED_POST["art_style"],
        aspect_ratio="16:9",
        status="succeeded",
        s3_key=f"images/{project.pk}/{SEED_POST['uuid']}.jpg",
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    response = post_image(api, project, visual_prompt=decomposed)

    assert response.status_code == 200, response.json()
    assert len(vendors.mock.calls) == 0


def test_the_length_limit_holds_for_the_prompt_that_is_stored_and_sent(api, project, vendors):
    vendors.recraft()

    response = post_image(api, project, visual_prompt="\u0958" * 800)  # two each in NFC

    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid input: visual_prompt: Must be at most 800 characters in Unicode's composed "
        "form (NFC), which some characters double; this is 1600."
    )
    assert len(vendors.mock.calls) == 0
    assert not GeneratedImage.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUTS)
def test_bad_input_is_a_400_that_changes_nothing(api, project, vendors, overrides, field):
    response = post_image(api, project, **overrides)

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert field in body["errors"]
    assert field in body["message"] or "Invalid input" in body["message"]
    assert GeneratedImage.objects.count() == 0
    assert len(vendors.mock.calls) == 0


@pytest.mark.parametrize("missing", ["visual_prompt", "art_style", "uuid", "projectId"])
def test_missing_field_is_a_400(api, project, vendors, missing):
    body = {**SEED_POST, "projectId": project.id}
    del body[missing]

    response = api.post("/image-gen", body, format="json")

    assert response.status_code == 400
    assert missing in response.json()["errors"]


def test_unknown_project_is_a_404(api, vendors):
    response = api.post("/image-gen", {**SEED_POST, "projectId": "nope"}, format="json")

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert len(vendors.mock.calls) == 0


def test_malformed_json_is_a_400(api):
    response = api.generic("POST", "/image-gen", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["success"] is False


def test_wrong_content_type_is_a_415(api):
    response = api.generic("POST", "/image-gen", "a=b", content_type="text/plain")

    assert response.status_code == 415


def test_json_array_body_is_a_400(api):
    response = api.post("/image-gen", [1, 2], format="json")

    assert response.status_code == 400


def test_options_describes_the_body_post_reads(api, project, vendors):
    described = api.options("/image-gen").json()["actions"]["POST"]
    full = {**SEED_POST, "projectId": project.id}
    vendors.recraft()

    response = api.post(
        "/image-gen",
        {name: full[name] for name, field in described.items() if field["required"]},
        format="json",
    )

    assert set(described) >= {"visual_prompt", "art_style", "uuid", "projectId", "model"}
    assert response.status_code == 201, response.json()


def test_unknown_url_is_json_404(api):
    response = api.get("/no-such-endpoint")

    assert response.status_code == 404
    assert response.json()["success"] is False


@pytest.mark.parametrize("path", ["/image-gen", "/image-gen/batch"])
def test_a_project_that_is_not_the_callers_is_a_404_naming_it(api, other_project, vendors, path):
    body = {"projectId": other_project.id, **SEED_POST}
    if path.endswith("batch"):
        body = {"projectId": other_project.id, "items": [SEED_POST]}

    response = api.post(path, body, format="json")

    assert response.status_code == 404
    assert response.json()["message"] == (
        f"Not found: project '{other_project.id}' does not exist or you do not have access to it."
    )
    assert vendors.calls("recraft") == 0
    assert not GeneratedImage.objects.exists()


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"aspectRatio": "1:1"}, "aspect_ratio"),
        ({"visualPrompt": "A fox"}, "visual_prompt"),
        ({"artStyle": "watercolor"}, "art_style"),
        ({"project_id": "c0mww0z6el3g6y5pi9grmkqn6"}, "projectId"),
    ],
)
def test_a_field_in_the_records_spelling_is_a_400_naming_the_bodys(
    api, project, vendors, extra, name
):
    response = post_image(api, project, **extra)

    assert response.status_code == 400
    [(field, [message])] = response.json()["errors"].items()
    assert (field, message) == (next(iter(extra)), f"Unknown field; this body spells it {name!r}.")
    assert vendors.calls("recraft") == 0
    assert not GeneratedImage.objects.exists()


def test_a_patch_of_s3key_in_the_records_spelling_is_a_400(api, project):
    image = GeneratedImageFactory(project=project)

    response = api.patch(f"/image-gen/{image.id}", {"s3Key": "images/x/y.jpg"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"s3Key": ["Unknown field; this body spells it 's3_key'."]}
