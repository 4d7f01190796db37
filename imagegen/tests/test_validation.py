"""Bad input is a clear 4xx before any provider call, and changes nothing; limits per user."""

from __future__ import annotations

import base64
import json
import uuid as uuid_lib
from datetime import timedelta

import pytest
import redis
from django.core.cache import caches
from django.utils import timezone

from conftest import S3_BUCKET, new_uuid, settings_in_new_process
from imagegen.models import GeneratedImage
from imagegen.providers.recraft import RecraftProvider
from imagegen.serializers import MAX_ART_STYLE_CHARS, MAX_VISUAL_PROMPT_CHARS
from imagegen.services import compose_prompt
from imagegen.testing import vendor_payloads
from imagegen.tests.factories import GeneratedImageFactory
from imagegen.tests.test_api import SEED_POST, post_image
from projects.models import Project

pytestmark = pytest.mark.django_db


def nothing_written(vendors, *, images: int = 0, projects: int = 1) -> bool:
    return (
        GeneratedImage.objects.count() == images
        and Project.objects.count() == projects
        and len(vendors.mock.calls) == 0
    )


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


# ---------------------------------------------------------------------------------------------
# POST /image-gen fields (test_api.py covers the seed's common mistakes).
# ---------------------------------------------------------------------------------------------
BAD_FIELDS = [
    ({"visual_prompt": "escape \x1b[31m red"}, "visual_prompt"),
    ({"visual_prompt": "delete\x7f"}, "visual_prompt"),
    ({"visual_prompt": "next line\x85"}, "visual_prompt"),
    ({"visual_prompt": None}, "visual_prompt"),
    ({"visual_prompt": True}, "visual_prompt"),
    ({"visual_prompt": {"text": "a"}}, "visual_prompt"),
    ({"visual_prompt": "\n\t "}, "visual_prompt"),
    ({"art_style": 5}, "art_style"),
    ({"art_style": ["oil"]}, "art_style"),
    ({"art_style": "form\x0cfeed"}, "art_style"),
    ({"uuid": "with space"}, "uuid"),
    ({"uuid": "caf\u00e9"}, "uuid"),
    ({"uuid": "a\\b"}, "uuid"),
    ({"uuid": "a:b"}, "uuid"),
    ({"uuid": "nul\x00"}, "uuid"),
    ({"uuid": None}, "uuid"),
    ({"uuid": "   "}, "uuid"),
    ({"uuid": " segment-1"}, "uuid"),
    ({"uuid": "segment-1\n"}, "uuid"),
    ({"projectId": ""}, "projectId"),
    ({"projectId": "no-such-project"}, "projectId"),
    ({"projectId": "p" * 41}, "projectId"),
    ({"projectId": None}, "projectId"),
    ({"projectId": ["p"]}, "projectId"),
    ({"model": None}, "model"),
    ({"model": ["recraft-ai"]}, "model"),
    ({"model": "RECRAFT-AI"}, "model"),
    ({"model": "offline-sketch"}, "model"),
    ({"aspect_ratio": None}, "aspect_ratio"),
    ({"aspect_ratio": 169}, "aspect_ratio"),
    ({"aspect_ratio": "16x9"}, "aspect_ratio"),
    ({"aspect_ratio": " 16:9"}, "aspect_ratio"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_FIELDS)
def test_bad_field_is_a_400_naming_it_that_changes_nothing(api, project, vendors, overrides, field):
    body = assert_error_shape(post_image(api, project, **overrides), 400)

    assert field in body["errors"]
    assert body["message"].startswith(f"Invalid input: {field}")
    assert nothing_written(vendors)


@pytest.mark.parametrize(
    "field", ["visual_prompt", "art_style", "uuid", "projectId", "model", "aspect_ratio"]
)
def test_a_huge_value_is_refused_without_being_echoed(api, project, vendors, field):
    response = post_image(api, project, **{field: "x" * 100_000})

    body = assert_error_shape(response, 400)
    assert list(body["errors"]) == [field]
    assert len(response.content) < 1_000
    assert nothing_written(vendors)


@pytest.mark.parametrize("field", ["model", "aspect_ratio"])
@pytest.mark.parametrize("path", ["/image-gen", "/image-gen/batch"])
def test_a_lone_surrogate_in_a_choice_is_a_400(api, project, vendors, field, path):
    item = {**SEED_POST, field: "\ud800"}
    body = item if path == "/image-gen" else {"items": [item]}
    raw = json.dumps({**body, "projectId": project.id})  # ASCII: \ud800 escaped, as JSON allows

    response = api.post(path, raw, content_type="application/json")

    assert_error_shape(response, 400)
    assert nothing_written(vendors)


def test_the_project_id_is_taken_exactly_as_sent(api, project, vendors):
    body = assert_error_shape(post_image(api, project, projectId=f" {project.id}\n"), 400)

    assert list(body["errors"]) == ["projectId"]
    assert nothing_written(vendors)


def test_uuid_of_one_hundred_allowed_characters_is_accepted(api, project, vendors):
    vendors.recraft()
    uuid = ("Seg_01.a-" * 12)[:100]

    response = post_image(api, project, uuid=uuid)

    assert response.status_code == 201
    assert response.json()["s3_key"] == f"images/{project.id}/{uuid}.jpg"


def test_tabs_and_newlines_in_a_prompt_are_accepted(api, project, vendors):
    vendors.recraft()

    response = post_image(api, project, visual_prompt="First line\n\tsecond line")

    assert response.status_code == 201


def test_prompt_and_style_at_their_limits_reach_the_strictest_route_whole(api, project, vendors):
    vendors.recraft()
    visual_prompt, art_style = "p" * MAX_VISUAL_PROMPT_CHARS, "s" * MAX_ART_STYLE_CHARS
    strictest = RecraftProvider(name="recraft-ai", api_key="k", model="recraftv3")

    response = post_image(api, project, visual_prompt=visual_prompt, art_style=art_style)

    assert response.status_code == 201
    sent = json.loads(vendors.mock.calls[0].request.body)["prompt"]
    assert sent == compose_prompt(visual_prompt, art_style)
    assert len(sent) <= strictest.max_prompt_chars


def test_unknown_fields_are_ignored(api, project, vendors):
    vendors.recraft()

    response = post_image(api, project, status="succeeded", s3_key="images/x.jpg", user=1)

    assert response.status_code == 201
    assert response.json()["s3_key"] == f"images/{project.id}/{SEED_POST['uuid']}.jpg"


# ---------------------------------------------------------------------------------------------
# Bodies that are not a JSON object, or too big.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    ["null", '"a string"', "3", "true", "", '{"visual_prompt": NaN}', "[" * 50_000, b"\xff\xfe{}"],
    ids=["null", "string", "number", "bool", "empty", "nan", "deeply-nested", "not-utf8"],
)
def test_body_that_is_not_a_json_object_is_a_400(api, project, vendors, raw):
    response = api.generic("POST", "/image-gen", raw, content_type="application/json")

    assert_error_shape(response, 400)
    assert nothing_written(vendors)


ENDPOINTS_WITH_BODIES = [
    ("post", "/image-gen"),
    ("patch", "/image-gen/{image}"),
    ("post", "/projects"),
    ("patch", "/projects/{project}"),
]


@pytest.fixture
def existing_image(project):
    return GeneratedImageFactory(project=project)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS_WITH_BODIES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_body_that_is_not_json_is_a_415(
    api, project, existing_image, vendors, method, path, content_type
):
    url = path.format(image=existing_image.id, project=project.id)
    before = list(GeneratedImage.objects.values()), list(Project.objects.values())

    response = api.generic(method.upper(), url, "visual_prompt=x&name=y", content_type=content_type)

    body = assert_error_shape(response, 415)
    assert content_type.split(";")[0] in body["message"]
    assert (list(GeneratedImage.objects.values()), list(Project.objects.values())) == before
    assert len(vendors.mock.calls) == 0


@pytest.mark.parametrize(("method", "path"), ENDPOINTS_WITH_BODIES)
def test_body_over_the_cap_is_a_json_413(
    api, project, existing_image, vendors, settings, method, path
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    url = path.format(image=existing_image.id, project=project.id)
    oversized = {
        **SEED_POST,
        "uuid": new_uuid(),
        "projectId": project.id,
        "name": "n",
        "padding": "x" * 5000,
    }
    before = list(GeneratedImage.objects.values()), list(Project.objects.values())

    response = getattr(api, method)(url, oversized, format="json")

    body = assert_error_shape(response, 413)
    assert body["code"] == "request_too_large"
    assert "4096 bytes" in body["message"]
    assert (list(GeneratedImage.objects.values()), list(Project.objects.values())) == before
    assert len(vendors.mock.calls) == 0


def test_body_just_under_the_cap_is_accepted(api, project, vendors, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    vendors.recraft()
    body = {**SEED_POST, "projectId": project.id, "padding": ""}
    body["padding"] = "x" * (4096 - len(json.dumps(body).encode()))

    response = api.post("/image-gen", body, format="json")

    assert response.status_code == 201


# ---------------------------------------------------------------------------------------------
# PATCH /image-gen/<id> and POST /projects.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def object_in_project(project, s3_client) -> str:
    key = f"images/{project.id}/uploaded.jpg"
    s3_client.put_object(Bucket=S3_BUCKET, Key=key, Body=UPLOADED_JPEG)
    return key


UPLOADED_JPEG = vendor_payloads.image_bytes("JPEG", (40, 30))


BAD_KEYS = [
    "../{project}/uploaded.jpg",
    "images/{project}/../{project}/uploaded.jpg",
    "images/{project}/./uploaded.jpg",
    "images/{project}//uploaded.jpg",
    "/images/{project}/uploaded.jpg",
    "images/{project}/uploaded.jpg/",
    "images\\{project}\\uploaded.jpg",
    "images/{project}/uploaded\x00.jpg",
    "images/{project}/uploaded\n.jpg",
    "images/{project}/uploaded\x9b.jpg",
    " images/{project}/uploaded.jpg",
    "images/{project}/",
    "images/{project}",
    "images/other-project/uploaded.jpg",
    "images/{project}x/uploaded.jpg",
    "elsewhere/uploaded.jpg",
    "images/{project}/missing.jpg",
    "images/{project}/" + "\u00e9" * 600,
    "images/{project}/" + "k" * 1100,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_patch_refuses_keys_outside_the_images_own_namespace(
    api, project, existing_image, object_in_project, key
):
    before = GeneratedImage.objects.values().get()

    response = api.patch(
        f"/image-gen/{existing_image.id}", {"s3_key": key.format(project=project.id)}, format="json"
    )

    assert_error_shape(response, 400)
    assert "s3_key" in response.json()["message"] or "stored object" in response.json()["message"]
    assert GeneratedImage.objects.values().get() == before


def test_patch_refuses_the_key_of_another_image(api, project, existing_image, s3_client):
    sibling = GeneratedImageFactory(project=project)
    s3_client.put_object(Bucket=S3_BUCKET, Key=sibling.s3_key, Body=b"jpeg")

    response = api.patch(
        f"/image-gen/{existing_image.id}", {"s3_key": sibling.s3_key}, format="json"
    )

    body = assert_error_shape(response, 400)
    assert sibling.id in body["message"]


def test_patch_accepts_an_existing_key_in_the_namespace(api, existing_image, object_in_project):
    response = api.patch(
        f"/image-gen/{existing_image.id}", {"s3_key": object_in_project}, format="json"
    )

    assert response.status_code == 200
    existing_image.refresh_from_db()
    assert existing_image.s3_key == object_in_project


def test_a_new_key_brings_its_objects_size_and_dimensions(api, existing_image, object_in_project):
    response = api.patch(
        f"/image-gen/{existing_image.id}", {"s3_key": object_in_project}, format="json"
    )

    record = response.json()["image"]
    assert (record["imageSizeBytes"], record["width"], record["height"]) == (
        len(UPLOADED_JPEG),
        40,
        30,
    )
    existing_image.refresh_from_db()
    assert (existing_image.image_size_bytes, existing_image.width) == (len(UPLOADED_JPEG), 40)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose header (its SOF0 segment) claims `width` x `height`."""
    data = bytearray(vendor_payloads.image_bytes("JPEG", (8, 8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (vendor_payloads.image_bytes("PNG"), "is no JPEG image: it is PNG, not a JPEG"),
        (b"jpeg", "is no JPEG image: the bytes are not an image in any format we read."),
        (jpeg_claiming(65000, 65000), "is no JPEG image: the bytes are not a decodable raster"),
        (jpeg_claiming(8000, 8000), "is no JPEG image: the image is 8000x8000, too large"),
    ],
)
def test_a_key_to_an_object_that_is_no_jpeg_is_a_400_that_changes_nothing(
    api, project, existing_image, s3_client, body, shown
):
    key = f"images/{project.id}/not-a-jpeg.jpg"
    s3_client.put_object(Bucket=S3_BUCKET, Key=key, Body=body)

    response = api.patch(f"/image-gen/{existing_image.id}", {"s3_key": key}, format="json")

    assert_error_shape(response, 400)
    assert shown in response.json()["message"]
    assert " object at 0x" not in response.json()["message"]
    assert GeneratedImage.objects.get(pk=existing_image.pk).s3_key == existing_image.s3_key


def test_a_key_to_an_object_over_the_image_cap_is_a_400(
    api, existing_image, object_in_project, settings
):
    settings.IMAGEGEN_MAX_IMAGE_BYTES = len(UPLOADED_JPEG) - 1

    response = api.patch(
        f"/image-gen/{existing_image.id}", {"s3_key": object_in_project}, format="json"
    )

    assert_error_shape(response, 400)
    assert "over the" in response.json()["message"]


@pytest.mark.parametrize("status", ["pending", "running", "failed"])
def test_a_key_for_an_image_not_generated_is_a_409_that_changes_nothing(
    api, project, object_in_project, status
):
    image = GeneratedImageFactory(project=project, status=status, s3_key="", image_size_bytes=None)

    response = api.patch(f"/image-gen/{image.id}", {"s3_key": object_in_project}, format="json")

    assert_error_shape(response, 409)
    assert response.json()["code"] == "not_generated"
    assert response.json()["message"] == (
        f"Only a generated image's s3_key can be changed; this one is {status}."
    )
    assert GeneratedImage.objects.get(pk=image.pk).s3_key == ""


BAD_PATCHES = [
    {},
    {"visual_prompt": ""},
    {"visual_prompt": "  "},
    {"visual_prompt": "x" * (MAX_VISUAL_PROMPT_CHARS + 1)},
    {"visual_prompt": "nul\x00"},
    {"visual_prompt": 3},
    {"art_style": None},
    {"art_style": "s" * (MAX_ART_STYLE_CHARS + 1)},
    {"s3_key": ""},
    {"s3_key": 5},
    {"s3_key": None},
    {"visual_prompt": "fine", "s3_key": "../escape.jpg"},
]


@pytest.mark.parametrize("patch", BAD_PATCHES)
def test_bad_patch_is_a_400_that_changes_nothing(api, existing_image, patch):
    before = GeneratedImage.objects.values().get()

    response = api.patch(f"/image-gen/{existing_image.id}", patch, format="json")

    assert_error_shape(response, 400)
    assert GeneratedImage.objects.values().get() == before


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "  "}, {"name": "n" * 201}, {"name": 5}, {"name": "tab\x00"}],
)
def test_bad_project_is_a_400_that_creates_nothing(api, body):
    response = api.post("/projects", body, format="json")

    assert_error_shape(response, 400)
    assert "name" in response.json()["errors"]
    assert Project.objects.count() == 0


# ---------------------------------------------------------------------------------------------
# Rate limit and in-flight cap, per user.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def throttle_rate(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "image-generation": "2/min",
        },
    }


def test_generation_over_the_rate_is_a_429_with_retry_after(api, project, vendors, throttle_rate):
    vendors.recraft()
    answers = [post_image(api, project, uuid=new_uuid()).status_code for _ in range(2)]

    response = post_image(api, project, uuid=new_uuid())

    assert answers == [201, 201]
    body = assert_error_shape(response, 429)
    assert body["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60
    assert body["message"] == f"Too many requests; retry in {response['Retry-After']} s."
    assert GeneratedImage.objects.count() == 2
    assert len(vendors.mock.calls) == 2


def test_rate_limit_is_per_user_and_spares_reads(
    api, other_api, project, other_project, vendors, throttle_rate
):
    vendors.recraft()
    for _ in range(2):
        post_image(api, project, uuid=new_uuid())

    assert post_image(api, project, uuid=new_uuid()).status_code == 429
    assert api.get("/image-gen").status_code == 200
    assert post_image(other_api, other_project, uuid=new_uuid()).status_code == 201


@pytest.fixture
def write_rate(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "writes": "3/min",
        },
    }


def test_other_writes_are_throttled_per_user_apart_from_generation(
    api, other_api, project, vendors, write_rate
):
    image = GeneratedImageFactory(project=project)
    writes = [
        api.post("/projects", {"name": "one"}, format="json").status_code,
        api.patch(f"/projects/{project.id}", {"name": "renamed"}, format="json").status_code,
        api.patch(f"/image-gen/{image.id}", {"art_style": "sepia"}, format="json").status_code,
    ]
    vendors.recraft()

    refused = api.delete(f"/image-gen/{image.id}")

    assert writes == [201, 200, 200]
    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
    assert GeneratedImage.objects.filter(pk=image.pk).exists()
    assert api.get(f"/image-gen/{image.id}").status_code == 200
    assert post_image(api, project, uuid=new_uuid()).status_code == 201
    assert other_api.post("/projects", {"name": "theirs"}, format="json").status_code == 201


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_cache(settings):
    """The shared cache every worker process sees (Redis), under a prefix of this test's own;
    only those keys are removed afterwards (the Redis server is shared)."""
    prefix = f"test-throttle-{uuid_lib.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield caches["default"]
    server = redis.Redis.from_url(REDIS_URL)
    for key in server.scan_iter(match=f"{prefix}:*"):
        server.delete(key)


def test_rate_limit_is_kept_in_the_shared_cache(api, project, vendors, throttle_rate, redis_cache):
    vendors.recraft()
    for _ in range(2):
        post_image(api, project, uuid=new_uuid())

    history = redis_cache.get(f"throttle_image-generation_{project.owner.pk}")
    refused = post_image(api, project, uuid=new_uuid())

    assert len(history) == 2
    assert refused.status_code == 429


def running_images(
    project, count: int, *, started_ago: timedelta = timedelta(0), background: bool = False
) -> None:
    GeneratedImageFactory.create_batch(
        count,
        project=project,
        status=GeneratedImage.Status.RUNNING,
        background=background,
        s3_key="",
        started_at=timezone.now() - started_ago,
    )


def test_generation_past_the_in_flight_cap_is_a_429(api, project, vendors, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    running_images(project, 2)

    response = post_image(api, project, uuid=new_uuid())

    body = assert_error_shape(response, 429)
    assert body["code"] == "too_many_in_flight"
    assert response["Retry-After"] == "5"
    assert "the limit is 2" in body["message"]
    assert nothing_written(vendors, images=2)


def test_in_flight_cap_is_per_user(other_api, project, other_project, vendors, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    running_images(project, 2)
    vendors.recraft()

    response = post_image(other_api, other_project, uuid=new_uuid())

    assert response.status_code == 201


def test_abandoned_generations_do_not_count_against_the_cap(api, project, vendors, settings):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    running_images(project, 2, started_ago=timedelta(seconds=settings.IMAGEGEN_RUNNING_LEASE + 1))
    vendors.recraft()

    response = post_image(api, project, uuid=new_uuid())

    assert response.status_code == 201


def test_a_storyboard_running_on_a_worker_leaves_requests_their_cap(
    api, project, vendors, settings, django_capture_on_commit_callbacks
):
    settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER = 2
    with django_capture_on_commit_callbacks():
        queued = api.post(
            "/image-gen",
            {**SEED_POST, "projectId": project.id, "uuid": new_uuid()},
            format="json",
            HTTP_PREFER="respond-async",
        )
    # A worker took it from pending to running, as two of a storyboard's images.
    GeneratedImage.objects.filter(pk=queued.json()["id"]).update(
        status="running", started_at=timezone.now()
    )
    running_images(project, 2, background=True)
    vendors.recraft()

    response = post_image(api, project, uuid=new_uuid())

    assert response.status_code == 201, response.json()


def test_rate_and_cap_are_read_from_the_environment():
    shown = settings_in_new_process(
        "settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['image-generation'], "
        "settings.IMAGEGEN_MAX_IN_FLIGHT_PER_USER",
        DJANGO_SETTINGS_MODULE="config.settings.base",
        IMAGEGEN_THROTTLE_RATE="7/min",
        IMAGEGEN_MAX_IN_FLIGHT_PER_USER="3",
    )

    assert shown.split() == ["7/min", "3"]


@pytest.mark.parametrize("offset", ["-20:00", "+05:00"])
def test_cursor_with_a_foreign_time_zone_is_a_400(api, offset):
    encoded = base64.b64encode(f"o=0&r=0&p=2024-01-01T00:00:00{offset}".encode()).decode()

    response = api.get("/image-gen", {"cursor": encoded})

    assert response.status_code == 400
    assert "cursor" in response.json()["errors"]
