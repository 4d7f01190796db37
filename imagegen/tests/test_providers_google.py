"""GoogleImageProvider against Gemini's generateContent wire format, faked with `responses`."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from django.conf import settings

from imagegen.providers.base import (
    ContentBlocked,
    GenerationRequest,
    ProviderBadOutput,
    ProviderMisconfigured,
    ProviderNoImage,
    ProviderRateLimited,
    ProviderRejectedRequest,
    ProviderUnavailable,
)
from imagegen.providers.google import GoogleImageProvider
from imagegen.providers.registry import get_provider
from imagegen.testing import vendor_payloads

pytestmark = pytest.mark.django_db

PNG = vendor_payloads.image_bytes("PNG")


def gemini(model: str = "gemini-2.5-flash-image", **options) -> GoogleImageProvider:
    return GoogleImageProvider(
        name="google-imagen",
        api_key="test-gemini-key",
        base_url=settings.GEMINI_TEST_URL,
        model=model,
        **{"prices": settings.GEMINI_IMAGE_TOKEN_PRICES, **options},
    )


def model_url(model: str) -> str:
    return f"{settings.GEMINI_TEST_URL}/models/{model}:generateContent"


def generate(provider=None, prompt: str = "a watercolor fox", aspect_ratio: str = "16:9"):
    provider = provider or get_provider("google-imagen")
    return provider.generate(
        GenerationRequest(prompt=prompt, aspect_ratio=aspect_ratio), timeout=5.0
    )


def test_posts_generate_content_with_the_key_in_a_header(vendors):
    vendors.gemini()

    generate()

    request = vendors.mock.calls[0].request
    assert request.url == model_url("gemini-2.5-flash-image")
    assert request.headers["x-goog-api-key"] == "test-gemini-key"
    assert "key=" not in request.url


def test_asks_for_an_image_only_at_the_aspect_ratio_without_image_size_on_2_5(vendors):
    vendors.gemini()

    generate(prompt="a watercolor fox", aspect_ratio="9:16")

    assert json.loads(vendors.mock.calls[0].request.body) == {
        "contents": [{"role": "user", "parts": [{"text": "a watercolor fox"}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "9:16"},
        },
    }


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("gemini-3-pro-image", "2K"),
        ("gemini-3.1-flash-lite-image", "1K"),  # its only size
        ("gemini-nano-banana-2.1", "4K"),
    ],
)
def test_models_that_take_an_image_size_are_sent_one(vendors, model, size):
    vendors.mock.add("POST", model_url(model), json=vendor_payloads.gemini_success(model=model))

    generate(gemini(model, image_size=size))

    image_config = json.loads(vendors.mock.calls[0].request.body)["generationConfig"]["imageConfig"]
    assert image_config == {"aspectRatio": "16:9", "imageSize": size}


def test_success_returns_the_image_id_and_model(vendors):
    vendors.gemini(body=vendor_payloads.gemini_success(PNG, response_id="resp-7"))

    result = generate()

    assert result.image_bytes == PNG
    assert result.mime_type == "image/png"
    assert result.vendor_request_id == "resp-7"
    assert result.provider_model == "gemini-2.5-flash-image"
    assert result.usage == vendor_payloads.gemini_success()["usageMetadata"]


def test_a_usage_block_too_big_to_be_a_bill_is_not_kept(vendors):
    body = vendor_payloads.gemini_success(PNG)
    body["usageMetadata"]["padding"] = "x" * 5000
    vendors.gemini(body=body)

    assert generate().usage == {}


def test_takes_the_last_image_part_and_skips_thought_drafts(vendors):
    vendors.gemini(body=vendor_payloads.gemini_success(PNG, with_thought_draft=True))

    assert generate().image_bytes == PNG


def test_takes_the_last_of_several_final_images(vendors):
    first = vendor_payloads.image_bytes("PNG", color="red")
    body = vendor_payloads.gemini_success(PNG)
    parts = body["candidates"][0]["content"]["parts"]
    parts.insert(
        0, {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(first).decode()}}
    )
    vendors.gemini(body=body)

    assert generate().image_bytes == PNG


def test_ignores_non_image_inline_data(vendors):
    body = vendor_payloads.gemini_success(PNG)
    body["candidates"][0]["content"]["parts"].append(
        {"inlineData": {"mimeType": "text/plain", "data": base64.b64encode(b"hello").decode()}}
    )
    vendors.gemini(body=body)

    assert generate().image_bytes == PNG


def test_reads_snake_case_inline_data(vendors):
    body = vendor_payloads.gemini_success(PNG)
    body["candidates"][0]["content"]["parts"] = [
        {"inline_data": {"mime_type": "image/webp", "data": base64.b64encode(PNG).decode()}}
    ]
    vendors.gemini(body=body)

    result = generate()

    assert (result.image_bytes, result.mime_type) == (PNG, "image/webp")


def test_reads_the_mime_type_it_is_given(vendors):
    jpeg = vendor_payloads.image_bytes("JPEG")
    vendors.gemini(body=vendor_payloads.gemini_success(jpeg, mime_type="image/jpeg"))

    assert generate().mime_type == "image/jpeg"


@pytest.mark.parametrize("padded", [True, False])
def test_decodes_url_safe_base64(vendors, padded):
    # Bytes whose base64 needs '-' and '_' in the URL-safe alphabet, then a real image.
    data = b"\xfb\xef\xbe\xff" + PNG
    body = vendor_payloads.gemini_success(data, urlsafe=True)
    encoded = body["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"]
    assert "-" in encoded or "_" in encoded
    if not padded:
        body["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"] = encoded.rstrip("=")
    vendors.gemini(body=body)

    assert generate().image_bytes == data


@pytest.mark.parametrize(
    ("model", "tokens", "cost"),
    [
        ("gemini-2.5-flash-image", 1290, Decimal("0.038700")),
        ("gemini-3-pro-image", 1120, Decimal("0.134400")),
    ],
)
def test_cost_is_image_tokens_times_the_models_price(vendors, model, tokens, cost):
    vendors.mock.add(
        "POST",
        model_url(model),
        json=vendor_payloads.gemini_success(PNG, model=model, image_tokens=tokens),
    )

    assert generate(gemini(model)).cost_usd == cost


def test_a_model_missing_from_the_price_table_costs_nothing_rather_than_failing(vendors):
    model = "gemini-nano-banana-2.1"
    vendors.mock.add("POST", model_url(model), json=vendor_payloads.gemini_success(model=model))
    unpriced = {name: p for name, p in settings.GEMINI_IMAGE_TOKEN_PRICES.items() if name != model}

    assert generate(gemini(model, prices=unpriced)).cost_usd == Decimal(0)


def test_cost_follows_the_model_version_that_answered(vendors):
    vendors.gemini(body=vendor_payloads.gemini_success(PNG, model="gemini-3-pro-image"))

    result = generate()

    assert result.provider_model == "gemini-3-pro-image"
    assert result.cost_usd == Decimal("0.154800")


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        {"candidatesTokensDetails": []},
        {"candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 40}]},
        {"candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": "many"}]},
        {"candidatesTokensDetails": 5},
        {"candidatesTokensDetails": [None, "IMAGE"]},
        "1290 tokens",
    ],
)
def test_missing_or_odd_usage_costs_nothing_and_does_not_crash(vendors, usage):
    body = vendor_payloads.gemini_success(PNG)
    body["usageMetadata"] = usage
    vendors.gemini(body=body)

    result = generate()

    assert result.image_bytes == PNG
    assert result.cost_usd == Decimal(0)


@pytest.mark.parametrize(
    "reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "OTHER", "IMAGE_SAFETY"]
)
def test_refused_prompt_is_a_block_with_its_reason(vendors, reason):
    vendors.gemini(body=vendor_payloads.gemini_prompt_blocked(reason))

    with pytest.raises(ContentBlocked) as raised:
        generate()

    assert raised.value.block_reason == reason
    assert reason in raised.value.message
    assert raised.value.vendor_request_id == "gm-blocked-1"
    assert raised.value.usage == {"promptTokenCount": 12, "totalTokenCount": 12}
    assert not raised.value.retryable


@pytest.mark.parametrize(
    "reason",
    [
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "SAFETY",
        "PROHIBITED_CONTENT",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    ],
)
@pytest.mark.parametrize("content", [None, {}, {"role": "model", "parts": []}])
def test_refused_image_is_a_block_with_the_vendors_explanation(vendors, reason, content):
    vendors.gemini(
        body=vendor_payloads.gemini_finished_without_image(
            reason, "The image may depict a real person.", content=content
        )
    )

    with pytest.raises(ContentBlocked) as raised:
        generate()

    assert raised.value.block_reason == f"{reason}: The image may depict a real person."
    assert not raised.value.retryable


def test_refused_image_without_a_message_names_the_reason_alone(vendors):
    vendors.gemini(body=vendor_payloads.gemini_finished_without_image("IMAGE_SAFETY"))

    with pytest.raises(ContentBlocked) as raised:
        generate()

    assert raised.value.block_reason == "IMAGE_SAFETY"


@pytest.mark.parametrize(
    "reason",
    ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "STOP", "MAX_TOKENS", "SOMETHING_NEW_IN_2027", ""],
)
def test_no_image_for_any_other_reason_is_worth_a_retry(vendors, reason):
    vendors.gemini(
        body=vendor_payloads.gemini_finished_without_image(
            reason, content={"role": "model", "parts": [{"text": "Here is a description."}]}
        )
    )

    with pytest.raises(ProviderNoImage) as raised:
        generate()

    assert raised.value.retryable
    assert (reason or "missing") in raised.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"modelVersion": "gemini-2.5-flash-image", "responseId": "r"},
        {"candidates": []},
        {"candidates": "none"},
        {"candidates": None, "promptFeedback": {}},
    ],
)
def test_answer_without_candidates_or_block_reason_is_bad_output(vendors, body):
    vendors.gemini(body=body)

    with pytest.raises(ProviderBadOutput):
        generate()


@pytest.mark.parametrize(
    "body",
    [
        {"candidates": [None]},
        {"candidates": [{"content": {"parts": "x"}, "finishReason": "STOP"}]},
        {"candidates": [{"content": {"parts": [None, 3, {"inlineData": "x"}]}}]},
        {"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]},
        {"candidates": [{"content": [], "finishReason": 7}]},
        {"candidates": [{"content": {}}], "promptFeedback": "SAFETY"},
    ],
)
def test_wrong_shaped_candidates_are_a_retryable_failure(vendors, body):
    vendors.gemini(body=body)

    with pytest.raises((ProviderNoImage, ProviderBadOutput)) as raised:
        generate()

    assert raised.value.retryable


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b"null"])
def test_answer_that_is_not_a_json_object_is_bad_output(vendors, body):
    vendors.gemini(200, body)

    with pytest.raises(ProviderBadOutput):
        generate()


def test_invalid_base64_is_bad_output(vendors):
    body = vendor_payloads.gemini_success(PNG)
    body["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"] = "@@not*base64@@"
    vendors.gemini(body=body)

    with pytest.raises(ProviderBadOutput, match="base64"):
        generate()


@pytest.mark.parametrize(
    ("status", "body", "error", "retry_after"),
    [
        (400, vendor_payloads.gemini_invalid_key(), ProviderMisconfigured, None),
        (401, vendor_payloads.gemini_error(401, "UNAUTHENTICATED"), ProviderMisconfigured, None),
        (
            403,
            vendor_payloads.gemini_error(
                403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers"
            ),
            ProviderMisconfigured,
            None,
        ),
        (
            404,
            vendor_payloads.gemini_error(404, "NOT_FOUND", "model not found"),
            ProviderMisconfigured,
            None,
        ),
        (
            400,
            vendor_payloads.gemini_error(400, "INVALID_ARGUMENT", "aspectRatio is invalid"),
            ProviderRejectedRequest,
            None,
        ),
        (
            429,
            vendor_payloads.gemini_error(
                429, "RESOURCE_EXHAUSTED", details=[vendor_payloads.gemini_retry_info("17s")]
            ),
            ProviderRateLimited,
            17.0,
        ),
        (
            429,
            vendor_payloads.gemini_error(
                429, "RESOURCE_EXHAUSTED", details=[vendor_payloads.gemini_retry_info("0.5s")]
            ),
            ProviderRateLimited,
            0.5,
        ),
        (429, vendor_payloads.gemini_error(429, "RESOURCE_EXHAUSTED"), ProviderRateLimited, None),
        (500, vendor_payloads.gemini_error(500, "INTERNAL"), ProviderUnavailable, None),
        (
            503,
            vendor_payloads.gemini_error(503, "UNAVAILABLE", "The model is overloaded"),
            ProviderUnavailable,
            None,
        ),
        (504, vendor_payloads.gemini_error(504, "DEADLINE_EXCEEDED"), ProviderUnavailable, None),
        (502, b"<html><body>502 Bad Gateway</body></html>", ProviderUnavailable, None),
        (408, b"", ProviderUnavailable, None),
    ],
)
def test_error_answers_are_classified(vendors, status, body, error, retry_after):
    vendors.gemini(status, body)

    with pytest.raises(error) as raised:
        generate()

    assert type(raised.value) is error
    assert raised.value.http_status == status
    assert raised.value.retry_after == retry_after


def test_error_message_names_the_status_and_googles_explanation(vendors):
    vendors.gemini(503, vendor_payloads.gemini_error(503, "UNAVAILABLE", "The model is overloaded"))

    with pytest.raises(ProviderUnavailable) as raised:
        generate()

    assert raised.value.message == "Google answered HTTP 503 UNAVAILABLE: The model is overloaded"


def test_error_from_a_proxy_shows_the_start_of_its_page(vendors):
    vendors.gemini(502, b"<html><body>502 Bad Gateway</body></html>")

    with pytest.raises(ProviderUnavailable, match="502 Bad Gateway"):
        generate()


@pytest.mark.parametrize(
    "error",
    [
        {"error": "quota"},
        {"error": {"code": 429, "details": 5}},
        {"error": {"code": 429, "details": [None, "x", {"@type": 3}]}},
        {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo"}]}},
        {"error": {"details": [{"@type": "google.rpc.RetryInfo", "retryDelay": "soon"}]}},
        ["not", "an", "object"],
    ],
)
def test_odd_error_bodies_are_classified_by_status(vendors, error):
    vendors.gemini(429, json.dumps(error).encode())

    with pytest.raises(ProviderRateLimited) as raised:
        generate()

    assert raised.value.retry_after is None


def test_describe_masks_the_key():
    described = gemini().describe()

    assert "test-gemini-key" not in json.dumps(described)
    assert described["model"] == "gemini-2.5-flash-image"
