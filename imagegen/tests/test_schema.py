"""The OpenAPI schema: committed and fresh, the same whatever is configured, public, seed-true."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30WriteValidator,
    oas30_format_checker,
)
from rest_framework import serializers

from accounts.tokens import TokenObtainStrictSerializer, TokenRefreshOnceSerializer
from config.ids import ID_PATTERN
from imagegen import openapi, services
from imagegen.serializers import (
    BatchItemSerializer,
    GenerationAnswerSerializer,
    ImageBatchCreateSerializer,
    ImageGenerateSerializer,
    ImagePatchSerializer,
    ImageSerializer,
    ImageWithProjectSerializer,
)
from imagegen.tests.factories import GeneratedImageFactory
from projects.serializers import ProjectSerializer

SCHEMA_FILE = Path(django_settings.BASE_DIR) / "openapi.yaml"
FIX = (
    "DJANGO_SETTINGS_MODULE=config.settings.test .venv/bin/python manage.py spectacular "
    "--file openapi.yaml --validate"
)
SEED_REQUEST = {
    "visual_prompt": (
        "A sleek eco-friendly water bottle on a wooden desk with green plants in the background"
    ),
    "art_style": "modern minimalist photography",
    "uuid": "segment-001-image",
    "projectId": "clxyz123abc",
}
SEED_ANSWER = {
    "success": True,
    "model": "recraft-ai",
    "message": "Image generated successfully",
    "image_size_bytes": 245760,
}


def generate(tmp_path: Path) -> str:
    """The schema as `manage.py spectacular` writes it; warnings and invalid output fail."""
    path = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(path), "--validate", "--fail-on-warn")
    return path.read_text()


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def test_committed_schema_is_what_the_code_generates(tmp_path):
    assert generate(tmp_path) == SCHEMA_FILE.read_text(), (
        f"openapi.yaml is out of date with the API; regenerate it: {FIX}"
    )


@pytest.mark.parametrize(
    ("debug", "providers"),
    [
        (False, {}),
        (
            True,
            {"offline-sketch": {"BACKEND": "imagegen.providers.offline.OfflineSketchProvider"}},
        ),
    ],
)
def test_schema_does_not_depend_on_the_configured_providers(tmp_path, settings, debug, providers):
    settings.DEBUG = debug
    settings.IMAGEGEN_PROVIDERS = providers

    assert generate(tmp_path) == SCHEMA_FILE.read_text()


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Bearer expired.or.junk"}])
def test_schema_is_public(client, headers):
    response = client.get("/schema", **headers)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.0.3")


@pytest.mark.django_db
def test_schema_is_served_as_json_too(client):
    response = client.get("/schema", {"format": "json"})

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Image generation API"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("post", "/schema", {}, 405),
        ("get", "/schema", {"HTTP_ACCEPT": "application/xml"}, 406),
        ("get", "/schema?format=foo", {}, 404),
        ("delete", "/docs", {}, 405),
        ("put", "/docs", {}, 405),
    ],
)
def test_schema_and_docs_errors_are_in_the_error_shape(client, method, path, headers, status):
    response = getattr(client, method)(path, **headers)

    assert (response.status_code, response["Content-Type"]) == (status, "application/json")
    assert response.json()["success"] is False


@pytest.mark.django_db
def test_docs_are_public_and_load_swagger_ui_from_our_own_static_files(client):
    response = client.get("/docs", HTTP_AUTHORIZATION="Bearer expired.or.junk")

    html = response.content.decode()
    assert response.status_code == 200
    assert not re.search(r"https?://", html), "the page must not load anything from the internet"
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert {Path(asset).name for asset in assets} >= {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for asset in assets:
        assert finders.find(asset), f"{asset} is not among the static files"
    assert '"/schema"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/docs", "/schema"])
def test_schema_and_docs_answer_options_with_their_methods(client, path):
    response = client.options(path)

    assert response.status_code == 200
    assert {"GET", "HEAD", "OPTIONS"} <= {method.strip() for method in response["Allow"].split(",")}


def test_paths_are_documented_as_the_seed_names_them(schema):
    assert {"/image-gen", "/image-gen/{image_id}", "/projects", "/auth/token"} <= set(
        schema["paths"]
    )
    assert not [path for path in schema["paths"] if path.endswith("/")]


def test_generation_is_documented_with_the_seed_example(schema):
    post = schema["paths"]["/image-gen"]["post"]

    request = post["requestBody"]["content"]["application/json"]["examples"]
    answer = post["responses"]["201"]["content"]["application/json"]["examples"]
    assert request["SeedRequest"]["value"] == SEED_REQUEST
    seed_answer = answer["SeedAnswer"]["value"]
    assert list(seed_answer)[:5] == ["success", "s3_key", "model", "message", "image_size_bytes"]
    assert {key: seed_answer[key] for key in SEED_ANSWER} == SEED_ANSWER


def test_the_headers_clients_act_on_are_documented(schema):
    generate = schema["paths"]["/image-gen"]["post"]
    batch = schema["paths"]["/image-gen/batch"]["post"]

    assert [(p["in"], p["name"]) for p in generate["parameters"]] == [("header", "Prefer")]
    assert set(generate["responses"]["202"]["headers"]) == {"Preference-Applied", "Location"}
    for status in ("409", "429"):
        assert set(generate["responses"][status]["headers"]) == {"Retry-After"}
        assert set(batch["responses"][status]["headers"]) == {"Retry-After"}
    assert set(batch["responses"]["202"]["headers"]) == {"Location"}
    refusals = [
        operation["responses"]["429"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        if "429" in operation["responses"]
    ]
    assert len(refusals) >= 9
    assert all(set(refused["headers"]) == {"Retry-After"} for refused in refusals)
    for path in ("/image-gen", "/projects"):
        assert set(schema["paths"][path]["get"]["responses"]["200"]["headers"]) == {"Link"}


def test_patch_is_documented_with_the_seed_example(schema):
    patch = schema["paths"]["/image-gen/{image_id}"]["patch"]

    answer = patch["responses"]["200"]["content"]["application/json"]["examples"]["SeedAnswer"]
    assert answer["value"]["message"] == "Image prompt, art style, and S3 key updated successfully"
    assert answer["value"]["image"]["project"] == {"id": "clxyz123abc", "name": "My Video Project"}
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ImageUpdateAnswer"
    }


@pytest.mark.parametrize(
    ("example", "serializer"),
    [
        (openapi.GENERATE_ANSWER.value, GenerationAnswerSerializer),
        (openapi.SEED_IMAGE, ImageSerializer),
        (openapi.PATCH_ANSWER.value["image"], ImageWithProjectSerializer),
    ],
)
def test_answer_examples_have_exactly_the_serializer_fields(example, serializer):
    assert list(example) == list(serializer().fields)


@pytest.mark.parametrize(
    ("example", "serializer"),
    [
        (openapi.GENERATE_REQUEST.value, ImageGenerateSerializer),
        (openapi.PATCH_REQUEST.value, ImagePatchSerializer),
    ],
)
def test_request_examples_are_valid_requests(example, serializer):
    assert serializer(data=example).is_valid(), serializer(data=example).errors


def test_every_error_answer_is_documented_in_the_error_shape(schema):
    errors = [
        (path, method, status, answer)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
    ]

    assert errors
    for path, method, status, answer in errors:
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, (path, method, status)
    generation = schema["paths"]["/image-gen"]["post"]["responses"]
    assert {"400", "401", "404", "409", "422", "429", "502", "503", "504"} <= set(generation)


# ---------------------------------------------------------------------------------------------
# What the API really answers is what openapi.yaml says it answers, in every state of an image.
# ---------------------------------------------------------------------------------------------
def assert_documented(schema: dict, path: str, method: str, response) -> None:
    """`response` has a status `method path` documents, and its JSON body fits that answer's
    schema (OpenAPI 3.0 rules: `nullable`, `readOnly`, formats)."""
    answers = schema["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in answers, f"{method.upper()} {path} answered {status}, not documented"
    body_schema = answers[status]["content"]["application/json"]["schema"]
    # The answer's schema refers to components by "#/components/...": give it them as its root.
    validator = OAS30ReadValidator(
        {**body_schema, "components": schema["components"]},
        format_checker=oas30_format_checker,
    )
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(response.json())
    ]
    assert not errors, f"{method.upper()} {path} {status} breaks openapi.yaml: {errors}"


UNFINISHED = {"s3_key": "", "image_size_bytes": None, "width": None, "height": None}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "state",
    [
        {"status": "pending", "model": "", "provider_model": "", "message": "", **UNFINISHED},
        {"status": "running", "provider_model": "", "message": "", **UNFINISHED},
        {"status": "failed", "message": "recraft-ai: the vendor is down (HTTP 503)", **UNFINISHED},
        {"status": "succeeded"},
    ],
    ids=lambda state: state["status"],
)
def test_an_image_in_every_state_is_answered_as_documented(schema, api, project, state):
    image = GeneratedImageFactory(project=project, **state)

    assert_documented(schema, "/image-gen/{image_id}", "get", api.get(f"/image-gen/{image.id}"))
    listed = api.get("/image-gen", {"projectId": project.id})
    assert [record["id"] for record in listed.json()] == [image.id]
    assert_documented(schema, "/image-gen", "get", listed)
    patched = api.patch(f"/image-gen/{image.id}", {"art_style": "ink"}, format="json")
    assert_documented(schema, "/image-gen/{image_id}", "patch", patched)


@pytest.mark.django_db
def test_queued_work_is_answered_as_documented(
    schema, api, project, vendors, django_capture_on_commit_callbacks
):
    item = {"visual_prompt": "A fox in the snow", "art_style": "watercolor", "uuid": "seg-1"}
    with django_capture_on_commit_callbacks():  # queued, never run: the rows stay pending
        accepted = api.post(
            "/image-gen",
            {**item, "uuid": "seg-0", "projectId": project.id},
            format="json",
            HTTP_PREFER="respond-async",
        )
        batch = api.post(
            "/image-gen/batch", {"projectId": project.id, "items": [item]}, format="json"
        )

    assert (accepted.status_code, batch.status_code) == (202, 202)
    assert_documented(schema, "/image-gen", "post", accepted)
    assert_documented(schema, "/image-gen/batch", "post", batch)
    pending = api.get(f"/image-gen/batch/{batch.json()['batchId']}")
    assert {item["status"] for item in pending.json()["items"]} == {"pending"}
    assert_documented(schema, "/image-gen/batch/{batch_id}", "get", pending)
    assert_documented(schema, "/image-gen", "get", api.get("/image-gen"))
    assert len(vendors.mock.calls) == 0


@pytest.mark.django_db
def test_refusals_are_answered_as_documented(schema, api, project, vendors):
    refusals = [
        ("/image-gen", "post", api.post("/image-gen", {"projectId": project.id}, format="json")),
        ("/image-gen/{image_id}", "get", api.get("/image-gen/nosuchimage")),
        ("/image-gen", "get", api.get("/image-gen", {"limit": "0"})),
    ]

    for path, method, response in refusals:
        assert response.status_code in (400, 404)
        assert_documented(schema, path, method, response)


# ---------------------------------------------------------------------------------------------
# What openapi.yaml lets through is what the server takes: no more, no less.
# ---------------------------------------------------------------------------------------------
def matches(pattern: str, value: str) -> bool:
    """Whether `value` matches a schema `pattern` read as ECMA-262, the schema's dialect: there
    `$` ends the value, where Python's also matches before a final newline."""
    return re.search(re.sub(r"\$$", r"\\Z", pattern), value) is not None


def query_parameter(schema: dict, path: str, method: str, name: str) -> dict:
    operation = schema["paths"][path][method]
    return next(parameter for parameter in operation["parameters"] if parameter["name"] == name)


def test_list_limit_starts_at_one_and_a_larger_one_is_capped_not_refused(schema):
    limit = query_parameter(schema, "/image-gen", "get", "limit")

    assert limit["schema"] == {"type": "integer", "minimum": 1}
    assert f"at most {django_settings.IMAGEGEN_LIST_MAX_LIMIT}" in limit["description"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["id", "projectId"])
def test_list_filters_take_what_an_id_looks_like_and_nothing_else_finds_images(
    schema, api, project, name
):
    pattern = query_parameter(schema, "/image-gen", "get", name)["schema"]["pattern"]
    image = GeneratedImageFactory(project=project)
    own_id = image.id if name == "id" else project.id

    assert matches(pattern, own_id)
    assert api.get("/image-gen", {name: own_id}).status_code == 200
    for value in ["", f" {own_id}", f"{own_id}\n", f"{own_id}-x", "x" * 41]:
        assert not matches(pattern, value), repr(value)
        assert api.get("/image-gen", {name: value}).status_code in (400, 404), repr(value)


def request_schema_accepts(schema: dict, component: str, body: object) -> bool:
    validator = OAS30WriteValidator(
        {"$ref": f"#/components/schemas/{component}", "components": schema["components"]},
        format_checker=oas30_format_checker,
    )
    return validator.is_valid(body)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "component", "serializer", "bodies"),
    [
        (
            "/image-gen/{image_id}",
            "PatchedImagePatchRequest",
            ImagePatchSerializer,
            [
                {},
                {"id": "x"},
                {"art_style": ""},
                {"visual_prompt": "A fox"},
                {"s3_key": "images/clxyz123abc/k.jpg"},
            ],
        ),
        (
            "/projects/{id}",
            "PatchedProjectRequest",
            partial(ProjectSerializer, partial=True),
            [{}, {"id": "x"}, {"name": "Renamed"}],
        ),
    ],
)
def test_patch_bodies_need_what_the_server_needs(schema, path, component, serializer, bodies):
    assert schema["paths"][path]["patch"]["requestBody"]["required"] is True
    for body in bodies:
        expected = serializer(data=body).is_valid()
        assert request_schema_accepts(schema, component, body) is expected, body


def test_batch_items_are_documented_as_batch_items_up_to_the_maximum(schema):
    limit = django_settings.IMAGEGEN_BATCH_MAX_ITEMS

    def body(count: int) -> dict:
        item = {"visual_prompt": "A fox", "art_style": "ink"}
        return {
            "projectId": "clxyz123abc",
            "items": [{**item, "uuid": f"seg-{n}"} for n in range(count)],
        }

    for sample in [body(0), body(1), body(limit), body(limit + 1), {**body(1), "items": [{}]}]:
        expected = ImageBatchCreateSerializer(data=sample).is_valid()
        assert request_schema_accepts(schema, "ImageBatchCreateRequest", sample) is expected
    item = schema["components"]["schemas"]["BatchItemRequest"]
    assert list(item["properties"]) == list(BatchItemSerializer().fields)


def test_model_is_auto_or_a_route_of_a_server_with_every_vendor(schema):
    models = schema["components"]["schemas"]["ModelEnum"]["enum"]

    # The test settings configure every vendor, as a server with both vendor keys does.
    assert models == ["auto", *django_settings.IMAGEGEN_PROVIDERS]
    for model in [*models, "offline-sketch", "Auto"]:
        body = {**SEED_REQUEST, "model": model}
        expected = ImageGenerateSerializer(data=body).is_valid()
        assert request_schema_accepts(schema, "ImageGenerateRequest", body) is expected, model


# Every character a text pattern names, and its neighbours: C0 and C1 controls, Latin-1, all
# that `str.strip()` removes, a zero-width no-break space (not whitespace to Python) and an emoji.
CHARACTERS = [chr(code) for code in range(0x100)] + [
    character for character in map(chr, range(0x100, 0x3001)) if character.isspace()
]
TEXT_SAMPLES = [
    "",
    "  A fox  ",
    "\ufeff",
    "\U0001f98a",
    # Format characters: nothing visible alone, or with whitespace.
    "\u200b",
    "\u200b\u200d \u2060",
    "\u00ad\u200e",
    "A\u200bfox",
    "\u200b\x1c",
    # Nothing visible, though not format characters: fillers, variation selectors, braille blank.
    "\u3164",
    "\u115f \uffa0",
    "\u034f\ufe0f\u180b",
    "\u2800",
    "A\u3164fox",
    *CHARACTERS,
    *(f"A{character}fox" for character in CHARACTERS),
    *(f"{character}\u3000\t" for character in CHARACTERS),
]


KEY_SAMPLES = [
    *(f"images/clxyz123abc/{text}" for text in TEXT_SAMPLES),
    *(f"images/clxyz123abc/a/{text}.jpg" for text in TEXT_SAMPLES),
    "images/clxyz123abc/segment-001.jpg",
    "images/clxyz123abc/../other/segment-001.jpg",
    "images/clxyz123abc/./segment-001.jpg",
    "images/clxyz123abc/...",
    "images/clxyz123abc/.hidden",
    "images/clxyz123abc/..x",
    "images/clxyz123abc/",
    "images/clxyz123abc//x.jpg",
    "images/clxyz123abc/x.jpg/",
    "/images/clxyz123abc/x.jpg",
    "images/clxyz123abc/a\\b.jpg",
    "images/clxyz123abc/\udc80.jpg",
    "images/not-an-id!/x.jpg",
    "images/x.jpg",
    "other/clxyz123abc/x.jpg",
    "k.jpg",
]


def test_s3_key_takes_in_the_schema_the_keys_of_the_server_shape(schema):
    field = ImagePatchSerializer().fields["s3_key"]
    field_schema = schema["components"]["schemas"]["PatchedImagePatchRequest"]["properties"][
        "s3_key"
    ]
    validator = OAS30WriteValidator(field_schema, format_checker=oas30_format_checker)

    for sample in KEY_SAMPLES:
        try:
            field.run_validation(sample)
        except serializers.ValidationError:
            expected = False
        else:
            prefix, project, *_ = [*sample.split("/"), ""]
            expected = (
                services.is_plain_key(sample)
                and prefix == "images"
                and re.fullmatch(ID_PATTERN, project) is not None
            )
        assert validator.is_valid(sample) is expected, sample


@pytest.mark.parametrize(
    ("component", "name", "field"),
    [
        *(
            ("ImageGenerateRequest", name, ImageGenerateSerializer().fields[name])
            for name in ["visual_prompt", "art_style"]
        ),
        ("ProjectRequest", "name", ProjectSerializer().fields["name"]),
        ("TokenObtainStrictRequest", "username", TokenObtainStrictSerializer().fields["username"]),
        ("TokenObtainStrictRequest", "password", TokenObtainStrictSerializer().fields["password"]),
        ("TokenRefreshRequest", "refresh", TokenRefreshOnceSerializer().fields["refresh"]),
    ],
)
def test_text_fields_take_in_the_schema_exactly_what_the_server_takes(
    schema, component, name, field
):
    field_schema = schema["components"]["schemas"][component]["properties"][name]
    validator = OAS30WriteValidator(
        {**field_schema, "components": schema["components"]}, format_checker=oas30_format_checker
    )

    for sample in TEXT_SAMPLES:
        try:
            field.run_validation(sample)
        except serializers.ValidationError:
            expected = False
        else:
            expected = True
        assert validator.is_valid(sample) is expected, (name, sample)
