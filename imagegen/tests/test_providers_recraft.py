"""RecraftProvider against Recraft's wire format (PROVIDERS.md), faked with `responses`."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from email.utils import formatdate

import pytest
import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from imagegen.providers.base import (
    GenerationRequest,
    ProviderBadOutput,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderTimeout,
    ProviderUnavailable,
)
from imagegen.providers.recraft import RecraftProvider
from imagegen.providers.registry import get_provider, get_providers
from imagegen.testing import vendor_payloads

pytestmark = pytest.mark.django_db

# PROVIDERS.md: (aspect ratio, V4/V4.1 size, V2/V3 size).
SIZES = [
    ("1:1", "1024x1024", "1024x1024"),
    ("16:9", "1344x768", "1820x1024"),
    ("9:16", "768x1344", "1024x1820"),
    ("4:3", "1216x896", "1365x1024"),
    ("3:4", "896x1216", "1024x1365"),
    ("3:2", "1280x832", "1536x1024"),
    ("2:3", "832x1280", "1024x1536"),
]


def recraft(
    model: str = "recraftv4_1", api_key: str = "test-recraft-key", **options
) -> RecraftProvider:
    return RecraftProvider(
        name="recraft-ai",
        api_key=api_key,
        base_url=settings.RECRAFT_TEST_URL,
        model=model,
        **options,
    )


def generate(provider=None, prompt: str = "a red barn at dawn", aspect_ratio: str = "16:9"):
    provider = provider or get_provider("recraft-ai")
    return provider.generate(
        GenerationRequest(prompt=prompt, aspect_ratio=aspect_ratio), timeout=5.0
    )


def sent_body(vendors, index: int = 0) -> dict:
    return json.loads(vendors.mock.calls[index].request.body)


def test_posts_to_images_generations_with_bearer_auth(vendors):
    vendors.recraft()

    generate()

    request = vendors.mock.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{settings.RECRAFT_TEST_URL}/images/generations"
    assert request.headers["Authorization"] == "Bearer test-recraft-key"
    assert request.headers["Content-Type"] == "application/json"


def test_asks_for_one_inline_image_from_the_configured_v4_model_without_style(vendors):
    vendors.recraft()

    generate(recraft(style="realistic_image", substyle="hdr"), prompt="a red barn at dawn")

    assert sent_body(vendors) == {
        "prompt": "a red barn at dawn",
        "model": "recraftv4_1",
        "size": "1344x768",
        "n": 1,
        "response_format": "b64_json",
    }


@pytest.mark.parametrize("model", ["recraftv4", "recraftv4_1", "recraftv4_pro", "recraftv4_1_pro"])
def test_always_sends_the_configured_model(vendors, model):
    vendors.recraft()

    result = generate(recraft(model))

    assert sent_body(vendors)["model"] == model
    assert result.provider_model == model


def test_model_comes_from_settings(vendors, settings):
    settings.IMAGEGEN_PROVIDERS = {
        "recraft-ai": {
            **settings.IMAGEGEN_PROVIDERS["recraft-ai"],
            "OPTIONS": {
                **settings.IMAGEGEN_PROVIDERS["recraft-ai"]["OPTIONS"],
                "model": "recraftv3",
            },
        }
    }
    vendors.recraft()

    generate()

    assert sent_body(vendors)["model"] == "recraftv3"


def test_v3_model_sends_style_and_substyle(vendors):
    vendors.recraft()

    generate(recraft("recraftv3", style="realistic_image", substyle="natural_light"))

    body = sent_body(vendors)
    assert (body["style"], body["substyle"]) == ("realistic_image", "natural_light")


def test_v3_model_sends_no_substyle_unless_configured(vendors):
    vendors.recraft()

    generate(recraft("recraftv3"))

    body = sent_body(vendors)
    assert body["style"] == "realistic_image"
    assert "substyle" not in body


@pytest.mark.parametrize(("aspect_ratio", "v4_size", "v3_size"), SIZES)
@pytest.mark.parametrize("model", ["recraftv4_1", "recraftv4_pro", "recraftv3"])
def test_aspect_ratio_maps_to_the_model_familys_size_list(
    vendors, model, aspect_ratio, v4_size, v3_size
):
    vendors.recraft()

    generate(recraft(model), aspect_ratio=aspect_ratio)

    assert sent_body(vendors)["size"] == (v4_size if model.startswith("recraftv4") else v3_size)


@pytest.mark.parametrize(
    ("model", "limit"), [("recraftv3", 1000), ("recraftv2", 1000), ("recraftv4_1", 10_000)]
)
def test_prompt_is_held_to_the_model_familys_limit(vendors, model, limit):
    vendors.recraft()
    long_prompt = "x" * (limit + 500)

    generate(recraft(model), prompt=long_prompt)

    assert sent_body(vendors)["prompt"] == long_prompt[:limit]


def test_prompt_within_the_limit_is_sent_whole(vendors):
    vendors.recraft()
    prompt = "y" * 1000

    generate(recraft("recraftv3"), prompt=prompt)

    assert sent_body(vendors)["prompt"] == prompt


def test_vector_model_is_refused_at_configuration(settings):
    settings.IMAGEGEN_PROVIDERS = {
        "recraft-ai": {
            "BACKEND": "imagegen.providers.recraft.RecraftProvider",
            "OPTIONS": {"api_key": "k", "model": "recraftv4_1_vector"},
        }
    }

    with pytest.raises(ImproperlyConfigured, match="SVG"):
        get_providers()


def test_success_returns_the_bytes_id_and_cost(vendors):
    webp = vendor_payloads.image_bytes("WEBP")
    vendors.recraft(body=vendor_payloads.recraft_success(webp, credits=35, image_id="img-42"))

    result = generate()

    assert result.image_bytes == webp
    assert result.vendor_request_id == "img-42"
    assert result.cost_usd == Decimal("0.035")
    assert result.http_status == 200
    assert result.usage == {"credits": 35}


@pytest.mark.parametrize(
    ("credits", "cost"),
    [(40, Decimal("0.04")), (210, Decimal("0.21")), (0, Decimal(0)), (None, Decimal(0))],
)
def test_cost_is_credits_over_a_thousand(vendors, credits, cost):
    body = vendor_payloads.recraft_success()
    body["credits"] = credits
    vendors.recraft(body=body)

    assert generate().cost_usd == cost


def http_date_in(seconds: int) -> str:
    return formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retry_after"),
    [
        (401, b"401 request unauthorized", {}, ProviderMisconfigured, None),
        (402, {"code": "not_enough_credits", "message": "Top up"}, {}, ProviderMisconfigured, None),
        (403, b"forbidden", {}, ProviderMisconfigured, None),
        (429, b"too many requests", {"Retry-After": "7"}, ProviderRateLimited, 7.0),
        (429, b"too many requests", {}, ProviderRateLimited, None),
        (429, b"slow down", {"Retry-After": "soon"}, ProviderRateLimited, None),
        (408, b"request timeout", {}, ProviderUnavailable, None),
        (500, {"code": "internal", "message": "boom"}, {}, ProviderUnavailable, None),
        (502, b"<html><body>Bad Gateway</body></html>", {}, ProviderUnavailable, None),
        (503, b"unavailable", {"Retry-After": "3"}, ProviderUnavailable, 3.0),
        (504, b"", {}, ProviderUnavailable, None),
        (
            400,
            {"code": "invalid_size", "message": "size is invalid"},
            {},
            ProviderRejectedRequest,
            None,
        ),
        (404, b"404 page not found", {}, ProviderRejectedRequest, None),
        (422, b"unprocessable", {}, ProviderRejectedRequest, None),
    ],
)
def test_error_answers_are_classified(vendors, status, body, headers, error, retry_after):
    vendors.recraft(status, body, headers=headers)

    with pytest.raises(error) as raised:
        generate()

    assert type(raised.value) is error
    assert raised.value.http_status == status
    assert raised.value.retry_after == retry_after
    assert raised.value.message.startswith(f"Recraft answered HTTP {status}")


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"401 request unauthorized", "request unauthorized"),
        ({"code": "bad_prompt", "message": "prompt is empty"}, "prompt is empty"),
        ({"code": "bad_prompt"}, "bad_prompt"),
        (b"", "(empty body)"),
    ],
)
def test_error_message_carries_the_vendors_explanation(vendors, body, shown):
    vendors.recraft(400, body)

    with pytest.raises(
        ProviderRejectedRequest, match=shown.replace("(", r"\(").replace(")", r"\)")
    ):
        generate()


def test_retry_after_as_http_date_is_understood(vendors):
    vendors.recraft(429, b"slow down", headers={"Retry-After": http_date_in(10)})

    with pytest.raises(ProviderRateLimited) as raised:
        generate()

    assert 8 <= raised.value.retry_after <= 10


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"<html>200 OK from a proxy</html>",
        [1, 2, 3],
        {"created": 1, "credits": 35},
        {"data": []},
        {"data": "nope"},
        {"data": [None]},
        {"data": [{"image_id": "x", "url": "https://img.recraft.ai/x.webp"}]},
        {"data": [{"image_id": "x", "b64_json": None}]},
        {"data": [{"image_id": "x", "b64_json": 12345}]},
        {"data": [{"image_id": "x", "b64_json": "!!! not base64 !!!"}]},
    ],
)
def test_wrong_shaped_answer_is_bad_output(vendors, body):
    if isinstance(body, list):
        vendors.mock.add("POST", vendors.recraft_url, json=body)
    else:
        vendors.recraft(200, body)

    with pytest.raises(ProviderBadOutput) as raised:
        generate()

    assert raised.value.retryable


def test_answer_over_the_size_cap_is_bad_output(vendors, settings):
    settings.IMAGEGEN_MAX_IMAGE_BYTES = 2000
    # Over the cap even counting base64's growth and the JSON around it.
    big = base64.b64encode(b"\0" * 100_000).decode()
    vendors.recraft(body={"credits": 35, "data": [{"image_id": "x", "b64_json": big}]})

    with pytest.raises(ProviderBadOutput, match="cap"):
        generate()


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (requests.ConnectionError("refused"), ProviderUnavailable),
        (requests.ConnectTimeout("connect timed out"), ProviderTimeout),
        (requests.ReadTimeout("read timed out"), ProviderTimeout),
    ],
)
def test_network_failures_are_retryable(vendors, failure, error):
    vendors.recraft(body=failure)

    with pytest.raises(error) as raised:
        generate()

    assert type(raised.value) is error
    assert raised.value.retryable


def test_a_key_no_header_can_carry_is_misconfiguration_not_an_outage(vendors):
    vendors.recraft()

    with pytest.raises(ProviderMisconfigured, match="API key") as raised:
        generate(recraft(api_key="test-recraft-key\n"))

    assert not raised.value.retryable
    assert "test-recraft-key" not in raised.value.message
    assert len(vendors.mock.calls) == 0


@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e999"])
def test_a_retry_after_that_is_no_number_of_seconds_is_ignored(vendors, value):
    vendors.recraft(429, b"slow down", headers={"Retry-After": value})

    with pytest.raises(ProviderRateLimited) as raised:
        generate()

    assert raised.value.retry_after is None


def test_connect_timeout_and_deadline_come_from_settings(vendors, settings):
    settings.IMAGEGEN_CONNECT_TIMEOUT = 0.75
    vendors.recraft()

    get_provider("recraft-ai").generate(
        GenerationRequest(prompt="a barn", aspect_ratio="1:1"), timeout=4.0
    )

    assert vendors.mock.calls[0].request.req_kwargs["timeout"] == (0.75, 4.0)


def test_describe_masks_the_key():
    described = recraft().describe()

    assert described["api_key"] == "...-key"
    assert "test-recraft-key" not in json.dumps(described)
    assert described["model"] == "recraftv4_1"
