"""Property-based fuzz of the write endpoints: never a 5xx, always the error shape, and a refused
request writes nothing and calls no vendor."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from imagegen.models import GeneratedImage
from imagegen.providers.base import ASPECT_RATIOS
from imagegen.serializers import MAX_ART_STYLE_CHARS, MAX_VISUAL_PROMPT_CHARS
from imagegen.tests.factories import GeneratedImageFactory
from projects.models import Project

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Placeholders for ids known only once the fixtures exist.
OWN_PROJECT, OTHER_PROJECT, OWN_NAMESPACE = "<own-project>", "<other-project>", "<own-namespace>"

any_text = st.text(st.characters(exclude_categories=[]), max_size=40)  # surrogates and controls
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
huge_text = st.sampled_from(["x", "é", "\u202e", " ", "\x00"]).flatmap(
    lambda char: st.integers(0, 200_000).map(lambda length: char * length)
)


def near_limit(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit - 3, limit + 3).map(lambda length: "p" * length)


wild = st.one_of(any_text, huge_text, json_values)


def mostly(usual: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` nine times in ten: most bodies get past some checks, some get past all."""
    return st.integers(0, 9).flatmap(lambda roll: rare if roll == 0 else usual)


def field(*plausible: st.SearchStrategy) -> st.SearchStrategy:
    """A plausible value for a field, or now and then anything JSON can carry."""
    return mostly(st.one_of(*plausible), wild)


def body_of(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Objects with these fields, sometimes one or two left out, with unknown fields added; now
    and then a JSON value that is not an object at all."""
    complete = st.fixed_dictionaries(fields)
    left_out = mostly(st.just(set()), st.sets(st.sampled_from(list(fields)), max_size=2))
    extras = st.dictionaries(st.text(max_size=12), json_values, max_size=2)
    objects = st.tuples(complete, left_out, extras).map(
        lambda parts: {
            **parts[2],
            **{name: item for name, item in parts[0].items() if name not in parts[1]},
        }
    )
    return mostly(objects, json_values)


readable = st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=80)
prompts = st.one_of(readable, st.sampled_from(["A red bicycle", "  a lake  ", "a\nb\tc"]))
generate_bodies = body_of(
    {
        "visual_prompt": field(prompts, near_limit(MAX_VISUAL_PROMPT_CHARS)),
        "art_style": field(prompts, near_limit(MAX_ART_STYLE_CHARS), st.just("")),
        # A few uuids recur, so replays and conflicts happen too.
        "uuid": field(
            st.sampled_from(["seg-1", "seg-2"]), st.from_regex(r"\A[A-Za-z0-9._-]{1,100}\Z")
        ),
        "projectId": field(st.sampled_from([OWN_PROJECT, OWN_PROJECT, OTHER_PROJECT, "nope"])),
        "model": field(st.sampled_from(["auto", "recraft-ai", "google-imagen", "dall-e"])),
        "aspect_ratio": field(st.sampled_from([*ASPECT_RATIOS, "7:5"])),
    }
)
UPLOADED = "uploaded.jpg"  # stored in the image's namespace by the PATCH test
keys = mostly(
    st.just(OWN_NAMESPACE + UPLOADED),
    st.tuples(
        st.sampled_from([OWN_NAMESPACE, "images/", "/", "../", "images/other/", ""]),
        st.sampled_from(["", UPLOADED, "../x.jpg", "./x.jpg", "/x.jpg", "a\\b", "a\x00b", "x/"]),
    ).map("".join),
)
patch_bodies = body_of(
    {
        "visual_prompt": field(prompts),
        "art_style": field(prompts, st.just("")),
        "s3_key": field(keys),
        "id": json_values,
        "model": json_values,
        "success": json_values,
        "userId": json_values,
        "imageSizeBytes": json_values,
        "costUsd": json_values,
    }
)
project_bodies = body_of({"name": field(prompts, near_limit(200)), "userId": json_values})


def resolve(body: Any, *, project: Project, other_project: Project) -> Any:
    names = {
        OWN_PROJECT: project.id,
        OTHER_PROJECT: other_project.id,
        OWN_NAMESPACE: f"images/{project.id}/",
    }
    if isinstance(body, dict):
        return {
            field: resolve(item, project=project, other_project=other_project)
            for field, item in body.items()
        }
    if isinstance(body, str):
        for placeholder, real in names.items():
            body = body.replace(placeholder, real)
    return body


def everything() -> tuple[list[dict], list[dict]]:
    return (
        list(Project.objects.order_by("pk").values()),
        list(GeneratedImage.objects.order_by("pk").values()),
    )


@pytest.fixture
def send(api, project, other_project, vendors):
    """Send one fuzzed body and check the properties every answer must have."""
    vendors.recraft()
    vendors.gemini()

    def send_one(method: str, path: str, body: Any) -> None:
        raw = json.dumps(resolve(body, project=project, other_project=other_project))
        before, calls_before = everything(), len(vendors.mock.calls)

        response = api.generic(method, path, raw, content_type="application/json")

        assert response.status_code < 500, response.content[:500]
        assert response["Content-Type"] == "application/json"
        assert b"Traceback" not in response.content
        event(f"HTTP {response.status_code}")  # shown by --hypothesis-show-statistics
        if response.status_code >= 400:
            answer = response.json()
            assert answer["success"] is False
            assert isinstance(answer["message"], str)
            assert answer["message"]
            assert everything() == before
            assert len(vendors.mock.calls) == calls_before

    return send_one


@FUZZ
@given(body=generate_bodies)
def test_fuzzed_generation_requests(send, body):
    send("POST", "/image-gen", body)


@pytest.fixture
def patched_image(project) -> GeneratedImage:
    """One image for all examples, and an object in its namespace that a PATCH may point at."""
    default_storage.save(f"images/{project.id}/{UPLOADED}", ContentFile(b"jpeg"))
    return GeneratedImageFactory(project=project)


@FUZZ
@given(body=patch_bodies)
def test_fuzzed_image_patches(send, patched_image, body):
    send("PATCH", f"/image-gen/{patched_image.id}", body)


@FUZZ
@given(body=project_bodies)
def test_fuzzed_project_creation(send, body):
    send("POST", "/projects", body)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzzed_raw_bytes(api, vendors, raw):
    before = everything()

    response = api.generic("POST", "/image-gen", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert everything() == before
    assert len(vendors.mock.calls) == 0
