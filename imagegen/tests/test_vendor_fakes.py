"""The fakes refuse what the real vendors refuse (PROVIDERS.md), or tests against them prove
nothing about the requests our clients send."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

from imagegen.testing.fake_vendors import FakeVendorServer
from imagegen.testing.vendor_rules import refusal

BEARER = {"Authorization": "Bearer rk-test"}
GOOGLE_KEY = {"x-goog-api-key": "gk-test"}
RECRAFT_OK = {"prompt": "a fox", "model": "recraftv4_1", "size": "1344x768", "n": 1}
GEMINI_OK = {
    "contents": [{"role": "user", "parts": [{"text": "a fox"}]}],
    "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
}


def recraft(payload, headers=BEARER):
    return refusal("recraft", model="", headers=headers, payload=payload)


def gemini(payload, model="gemini-2.5-flash-image", headers=GOOGLE_KEY, query=""):
    return refusal("gemini", model=model, headers=headers, payload=payload, query=query)


def with_image_config(**image_config) -> dict:
    config = {"responseModalities": ["IMAGE"], "imageConfig": image_config}
    return {**GEMINI_OK, "generationConfig": config}


@pytest.mark.parametrize(
    "payload",
    [
        RECRAFT_OK,
        {**RECRAFT_OK, "model": "recraftv3", "style": "realistic_image", "size": "1820x1024"},
        {**RECRAFT_OK, "size": "16:9", "response_format": "b64_json", "image_format": "png"},
        {"prompt": "x" * 10000, "model": "recraftv4_1"},
        {**RECRAFT_OK, "model": "recraftv4_vector"},  # SVG: real, though no use to us
    ],
)
def test_recraft_takes_what_its_documentation_allows(payload):
    assert recraft(payload) is None


@pytest.mark.parametrize(
    ("payload", "headers", "status"),
    [
        (RECRAFT_OK, {}, 401),
        (RECRAFT_OK, {"Authorization": "Token rk-test"}, 401),
        ({**RECRAFT_OK, "model": "recraftv9"}, BEARER, 400),
        ({**RECRAFT_OK, "model": None}, BEARER, 400),
        ({**RECRAFT_OK, "style": "realistic_image"}, BEARER, 400),  # V4 takes no style
        ({**RECRAFT_OK, "size": "1820x1024"}, BEARER, 400),  # a V3 size
        ({**RECRAFT_OK, "size": "999x1"}, BEARER, 400),
        ({**RECRAFT_OK, "n": 9}, BEARER, 400),
        ({**RECRAFT_OK, "response_format": "base64"}, BEARER, 400),
        ({"prompt": "x" * 1001, "model": "recraftv3"}, BEARER, 400),
        ({"model": "recraftv4_1"}, BEARER, 400),
        (["not", "an", "object"], BEARER, 400),
    ],
)
def test_recraft_refuses_what_the_vendor_refuses(payload, headers, status):
    assert recraft(payload, headers)[0] == status


@pytest.mark.parametrize(
    ("payload", "model"),
    [
        (GEMINI_OK, "gemini-2.5-flash-image"),
        (with_image_config(aspectRatio="21:9", imageSize="4K"), "gemini-3-pro-image"),
        (with_image_config(aspect_ratio="1:8", image_size="1K"), "gemini-3.1-flash-lite-image"),
    ],
)
def test_gemini_takes_what_its_documentation_allows(payload, model):
    assert gemini(payload, model) is None


@pytest.mark.parametrize(
    ("payload", "model", "headers", "status", "reason"),
    [
        (GEMINI_OK, "gemini-2.5-flash-image", {}, 403, "PERMISSION_DENIED"),
        (GEMINI_OK, "imagen-3.0-generate-002", GOOGLE_KEY, 404, "NOT_FOUND"),
        ({**GEMINI_OK, "instances": []}, "gemini-2.5-flash-image", GOOGLE_KEY, 400, "Unknown"),
        (
            {**GEMINI_OK, "generationConfig": {"candidateCount": 4}},
            "gemini-2.5-flash-image",
            GOOGLE_KEY,
            400,
            "Multiple candidates",
        ),
        (with_image_config(aspectRatio="7:3"), "gemini-3-pro-image", GOOGLE_KEY, 400, "7:3"),
        (with_image_config(aspectRatio="1:8"), "gemini-3-pro-image", GOOGLE_KEY, 400, "1:8"),
        (
            with_image_config(aspectRatio="1:1", imageSize="1K"),
            "gemini-2.5-flash-image",
            GOOGLE_KEY,
            400,
            "image size",
        ),
        (
            with_image_config(imageSize="2K"),
            "gemini-3.1-flash-lite-image",
            GOOGLE_KEY,
            400,
            "image size",
        ),
        ({"contents": []}, "gemini-2.5-flash-image", GOOGLE_KEY, 400, "contents"),
    ],
)
def test_gemini_refuses_what_the_vendor_refuses(payload, model, headers, status, reason):
    answer = gemini(payload, model, headers)

    assert answer[0] == status
    assert reason in f"{answer[1]['error']['status']} {answer[1]['error']['message']}"


def test_gemini_takes_the_key_as_a_query_parameter_too():
    assert gemini(GEMINI_OK, headers={}, query="key=gk-test") is None


@pytest.fixture(scope="module")
def fake_server():
    with FakeVendorServer() as server:
        yield server


def test_the_loopback_fake_refuses_a_request_without_credentials(fake_server):
    answer = requests.post(
        f"{fake_server.recraft_url}/images/generations", json=RECRAFT_OK, timeout=5
    )

    assert (answer.status_code, answer.text) == (401, "401 request unauthorized")


def test_the_loopback_fake_answers_recraft_with_a_link_unless_asked_for_bytes(fake_server):
    url = f"{fake_server.recraft_url}/images/generations"

    linked = requests.post(url, json=RECRAFT_OK, headers=BEARER, timeout=5).json()
    inline = requests.post(
        url, json={**RECRAFT_OK, "response_format": "b64_json"}, headers=BEARER, timeout=5
    ).json()

    assert set(linked["data"][0]) == {"image_id", "url"}
    assert set(inline["data"][0]) == {"image_id", "b64_json"}


@pytest.mark.parametrize(
    ("model", "mime_type", "image_format"),
    [("gemini-2.5-flash-image", "image/png", "PNG"), ("gemini-3-pro-image", "image/jpeg", "JPEG")],
)
def test_the_loopback_fake_answers_each_gemini_model_in_its_format(
    fake_server, model, mime_type, image_format
):
    answer = requests.post(
        f"{fake_server.gemini_url}/models/{model}:generateContent",
        json=GEMINI_OK,
        headers=GOOGLE_KEY,
        timeout=5,
    ).json()

    inline = answer["candidates"][0]["content"]["parts"][-1]["inlineData"]
    assert inline["mimeType"] == mime_type
    assert Image.open(io.BytesIO(base64.b64decode(inline["data"]))).format == image_format
    assert answer["modelVersion"] == model


def test_the_unit_fake_reports_a_request_the_vendor_would_refuse(vendors):
    vendors.gemini()

    requests.post(vendors.gemini_url, json={"instances": [{"prompt": "a fox"}]}, timeout=5)

    (refused,) = vendors.refused_requests()
    assert "403" in refused  # no key, before anything else
    vendors.mock.calls.reset()  # this test's own bad call is not the code under test's
